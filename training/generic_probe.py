"""How well ``img_generic`` (a match's cosine to plain geometric marks) tells decorations from brand marks.

``python -m training.generic_probe --features EVAL_DIR [--model default] [--out DIR]``

Reads the listing features an evaluation saved (``training.evaluate --out EVAL_DIR`` with a model whose
``features.plain_marks`` is on) and sets each candidate's brand confidence with ``--model``'s brand model (a model
trained before the feature ignores it, so the names are the ones that model gives). Then, over candidates with an
authentic image match, it compares two groups:

- **mark**: the listing's named brand (its best candidate, at or above the brand threshold) is the registered brand
  whose mark it shows;
- **decoration**: a brand named on a listing of logo-free generic goods (``meta.kind == "generic"``);
- **decoration_unnamed**: the best candidate, below the brand threshold, of such a listing (what a brand model
  trained with the feature would have to keep below it too);
- **look_alike**: a brand named on a listing showing an unregistered brand's logo.

For each group it prints the count and the medians of ``img_sim`` (the best region's cosine to the brand's
reference), ``img_generic`` (that region's cosine to the nearest plain mark) and their difference, the ROC AUC of
``img_sim`` alone and of ``img_sim - img_generic`` for "mark vs decoration" and for "mark vs both decoration
groups", and for a few cut-offs on the difference
the share of each group below it. Descriptive statistics of one split, not a tuned rule: a brand model trained with
the feature decides how to use it. Writes ``generic_probe.json`` under ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

from detector.bundle import load_model
from detector.policy import PolicyConfig
from training.pipeline import FEATURES_FILE

__all__ = ["probe", "main"]

CUTOFFS = (0.0, 0.02, 0.05, 0.1)
GROUPS = ("mark", "decoration", "decoration_unnamed", "look_alike")


def _rows(labelled: Any, policy: PolicyConfig) -> dict[str, list[dict[str, Any]]]:
    """Each listing's best candidate with an authentic image match, by group (see the module docstring)."""
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in GROUPS}
    for lf, rec, true_brand in zip(labelled.features, labelled.records, labelled.brand_ids):
        best = lf.best()
        if best is None or best.features.get("img_sim", 0.0) <= 0.0 or not best.features.get("img_generic"):
            continue
        named, kind = policy.names(best), (rec.get("meta") or {}).get("kind")
        row = {"listing_id": lf.listing_id, "brand_id": best.brand_id, "confidence": round(best.confidence, 4),
               "img_sim": best.features["img_sim"], "img_generic": best.features["img_generic"]}
        if kind == "generic":
            groups["decoration" if named else "decoration_unnamed"].append(row)
        elif named and kind == "unregistered_logo":
            groups["look_alike"].append(row)
        elif named and true_brand is not None and best.brand_id == true_brand:
            groups["mark"].append(row)
    return groups


def probe(features_dir: str | Path, model: str = "default", split: str = "test") -> dict[str, Any]:
    """The statistics described in the module docstring, as a dict."""
    with (Path(features_dir) / FEATURES_FILE).open("rb") as f:
        saved = pickle.load(f)  # a file an evaluation run wrote, not one a client sent
    if not saved["key"]["feature_config"].get("plain_marks"):
        raise SystemExit(f"{features_dir}: features computed without plain_marks (no img_generic); evaluate a model "
                         "with features.plain_marks on")
    labelled = saved["labelled"][split]
    bundle = load_model(model)
    bundle.classifier.set_brand_confidence(labelled.features)
    groups = _rows(labelled, bundle.policy)
    out: dict[str, Any] = {"features": str(Path(features_dir).resolve()), "model": bundle.version,
                           "brand_threshold": bundle.policy.brand_threshold,
                           "text_brand_threshold": bundle.policy.text_brand_threshold, "groups": {}}
    for name, rows in groups.items():
        sim = np.array([r["img_sim"] for r in rows])
        gen = np.array([r["img_generic"] for r in rows])
        out["groups"][name] = {
            "n": len(rows),
            "median_img_sim": round(float(np.median(sim)), 4) if rows else None,
            "median_img_generic": round(float(np.median(gen)), 4) if rows else None,
            "median_difference": round(float(np.median(sim - gen)), 4) if rows else None,
            "below_cutoff": {str(c): round(float(np.mean(sim - gen < c)), 4) if rows else None for c in CUTOFFS},
        }
    marks = groups["mark"]
    for suffix, negatives in (("", groups["decoration"]), ("_all_decorations",
                                                           groups["decoration"] + groups["decoration_unnamed"])):
        if marks and negatives:
            y = np.r_[np.ones(len(marks)), np.zeros(len(negatives))]
            sim = np.array([r["img_sim"] for r in marks + negatives])
            gen = np.array([r["img_generic"] for r in marks + negatives])
            out[f"auc_img_sim{suffix}"] = round(float(roc_auc_score(y, sim)), 4)
            out[f"auc_difference{suffix}"] = round(float(roc_auc_score(y, sim - gen)), 4)
    out["decorations"] = sorted(groups["decoration"], key=lambda r: r["img_generic"] - r["img_sim"], reverse=True)
    return out


def _print(result: dict[str, Any], console: Console) -> None:
    text_t = result.get("text_brand_threshold")
    named = f"{result['brand_threshold']:.3f}" + (f", {text_t:.3f} when named in its text" if text_t is not None else "")
    table = Table(title=f"img_generic on {result['features']} (model {result['model']}, named: confidence ≥ {named})")
    for col in ("group", "n", "img_sim", "img_generic", "sim − generic",
                *(f"share < {c}" for c in CUTOFFS)):
        table.add_column(col, justify="right")
    for name, g in result["groups"].items():
        table.add_row(name, str(g["n"]), str(g["median_img_sim"]), str(g["median_img_generic"]),
                      str(g["median_difference"]), *(str(v) for v in g["below_cutoff"].values()))
    console.print(table)
    for suffix, what in (("", "decoration"), ("_all_decorations", "decoration + decoration_unnamed")):
        if f"auc_img_sim{suffix}" in result:
            console.print(f"mark vs {what} ROC AUC: img_sim {result[f'auc_img_sim{suffix}']}, "
                          f"img_sim − img_generic {result[f'auc_difference{suffix}']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True, metavar="EVAL_DIR", help="an evaluation's output folder")
    parser.add_argument("--model", default="default", help="whose brand model names the brands")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    result = probe(args.features, args.model, args.split)
    _print(result, Console())
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "generic_probe.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
