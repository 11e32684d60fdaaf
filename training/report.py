"""HTML evaluation report with plots: ROC/PR, risk histograms, brand top-k, signal ablation, confusion, worst errors."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve  # noqa: E402

from detector.bundle import ModelBundle  # noqa: E402
from detector.features import risk_vector  # noqa: E402
from training.classifier import LabelledFeatures  # noqa: E402
from training.data import Dataset  # noqa: E402
from training.metrics import decisions_for  # noqa: E402

__all__ = ["write_report", "brand_topk", "signal_ablation"]

LABEL_COLOURS = {"counterfeit": "#d62728", "authentic": "#2ca02c", "unbranded": "#1f77b4"}


def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def brand_topk(data: LabelledFeatures, ks: tuple[int, ...] = (1, 3, 5, 10)) -> dict[int, float]:
    """Share of branded listings whose true brand is among the k closest brands by image evidence alone."""
    hits = {k: [] for k in ks}
    for lf, truth in zip(data.features, data.brand_ids):
        if truth is None:
            continue
        ranked = []
        for m in sorted((m for m in lf.evidence if m.kind == "authentic"), key=lambda m: -m.similarity):
            if m.brand_id not in ranked:
                ranked.append(m.brand_id)
        for k in ks:
            hits[k].append(truth in ranked[:k])
    return {k: float(np.mean(v)) if v else float("nan") for k, v in hits.items()}


def signal_ablation(data: LabelledFeatures, bundle: ModelBundle) -> dict[str, float]:
    """AUC when one risk signal is replaced by its median (how much the classifier leans on each signal)."""
    y = np.array([lab == "counterfeit" for lab in data.labels])
    if y.min() == y.max():
        return {}
    names = bundle.classifier.risk_features
    x = np.stack([risk_vector(lf, names) for lf in data.features])
    model = bundle.classifier.risk_model
    out = {"(none)": float(roc_auc_score(y, model.predict_proba(x)[:, 1]))}
    for j, name in enumerate(names):
        xa = x.copy()
        xa[:, j] = np.median(x[:, j])
        out[name] = float(roc_auc_score(y, model.predict_proba(xa)[:, 1]))
    return out


def _thumb(dataset: Dataset, rel: str, side: int = 120) -> str:
    img = dataset.open_image(rel).convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def write_report(
    out_dir: Path, data: LabelledFeatures, risks: np.ndarray, bundle: ModelBundle, metrics: dict[str, Any],
    dataset: Dataset, n_worst: int = 12,
) -> Path:
    """Write plots and ``report.html`` into ``out_dir``; returns the report path."""
    out_dir = Path(out_dir)
    y = np.array([lab == "counterfeit" for lab in data.labels])
    plots = []
    if 0 < y.sum() < len(y):
        fpr, tpr, _ = roc_curve(y, risks)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (AUC {metrics['auc']})")
        plots.append(_save(fig, out_dir / "roc.png"))
        prec, rec, _ = precision_recall_curve(y, risks)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(rec, prec)
        ax.set(xlabel="recall", ylabel="precision", title="precision-recall (counterfeit)")
        plots.append(_save(fig, out_dir / "pr.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    for lab, colour in LABEL_COLOURS.items():
        r = [float(x) for x, l in zip(risks, data.labels) if l == lab]
        if r:
            ax.hist(r, bins=30, range=(0, 1), alpha=0.55, label=f"{lab} ({len(r)})", color=colour)
    for t, name in ((bundle.policy.review_threshold, "review"), (bundle.policy.block_threshold, "block")):
        ax.axvline(t, color="black", ls="--", lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.9, name, rotation=90, ha="right")
    ax.set(xlabel="risk", ylabel="listings", title="risk by label", yscale="log")
    ax.legend()
    plots.append(_save(fig, out_dir / "risk_hist.png"))

    topk = brand_topk(data)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.bar([str(k) for k in topk], list(topk.values()))
    ax.set(xlabel="k", ylabel="accuracy", ylim=(0, 1), title="brand from photo, top-k")
    plots.append(_save(fig, out_dir / "brand_topk.png"))

    ablation = signal_ablation(data, bundle)
    if ablation:
        names = list(ablation)
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.barh(names, [ablation[n] for n in names])
        ax.set(xlabel="AUC with the signal neutralised", xlim=(min(ablation.values()) - 0.02, 1.0),
               title="per-signal ablation")
        ax.invert_yaxis()
        plots.append(_save(fig, out_dir / "ablation.png"))

    decisions = decisions_for(data, risks, bundle.policy)
    labels = ("counterfeit", "authentic", "unbranded")
    confusion = {lab: {d: 0 for d in ("allow", "review", "block")} for lab in labels}
    for lab, d in zip(data.labels, decisions):
        confusion[lab][d] += 1

    errors = []
    for i, (lab, d) in enumerate(zip(data.labels, decisions)):
        wrong = (lab == "counterfeit" and d == "allow") or (lab != "counterfeit" and d == "block")
        if wrong:
            gap = float(risks[i]) if lab != "counterfeit" else 1.0 - float(risks[i])
            errors.append((gap, i))
    errors.sort(reverse=True)

    rows = []
    for _, i in errors[:n_worst]:
        rec = data.records[i] if data.records else {}
        thumbs = "".join(f'<img src="{_thumb(dataset, p)}">' for p in rec.get("images", [])[:3])
        rows.append(f"<tr><td>{thumbs}</td><td>{html.escape(rec.get('title', ''))}<br><small>"
                    f"{html.escape(json.dumps((rec.get('meta') or {}).get('kind')))} price {rec.get('price')} "
                    f"seller {html.escape(str(rec.get('seller_id')))}</small></td><td>{data.labels[i]}</td>"
                    f"<td>{decisions[i]}</td><td>{float(risks[i]):.3f}</td></tr>")
    conf_rows = "".join(
        f"<tr><th>{lab}</th>" + "".join(f"<td>{confusion[lab][d]}</td>" for d in ("allow", "review", "block")) + "</tr>"
        for lab in labels)
    metric_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                          for k, v in metrics.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation {metrics.get('model_version')}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} img{{margin:2px}}</style></head><body>
<h1>Counterfeit detector evaluation</h1>
<p>model <b>{metrics.get('model_version')}</b>, split <b>{metrics.get('split')}</b>, gallery
<b>{metrics.get('gallery')}</b>, {metrics.get('n_listings')} listings.</p>
<h2>Metrics</h2><table>{metric_rows}</table>
<h2>Plots</h2>{''.join(f'<img src="{p}">' for p in plots)}
<h2>Decisions by label (policy {html.escape(bundle.policy.name)})</h2>
<table><tr><th></th><th>allow</th><th>review</th><th>block</th></tr>{conf_rows}</table>
<h2>Brand from photo, top-k</h2><p>{html.escape(json.dumps({k: round(v, 4) for k, v in topk.items()}))}</p>
<h2>Worst errors</h2><table><tr><th>photos</th><th>listing</th><th>label</th><th>decision</th><th>risk</th></tr>
{''.join(rows)}</table></body></html>"""
    path = out_dir / "report.html"
    path.write_text(page)
    (out_dir / "ablation.json").write_text(json.dumps(ablation, indent=2) + "\n")
    return path
