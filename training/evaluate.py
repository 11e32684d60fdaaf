"""Evaluate a model on a dataset's test split (held-out brands): metrics.json, plots and an HTML report.

``python -m training.evaluate --model default --data DIR --out DIR`` (or ``detector evaluate``). The evaluation
registry holds the registered brands of the chosen splits (``--gallery all`` adds the training brands as
distractors, as in production where every brand is registered).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from detector.bundle import ModelBundle, load_model
from detector.features import Featurizer, brand_infos
from indexes.catalog import Catalog
from training.classifier import LabelledFeatures
from training.data import load_dataset, photo_only_copy, text_only_copies
from training.metrics import (compute_metrics, decisions_for, fake_top_brand, image_top_brand, photo_top_brand,
                              title_top_brand)
from training.pipeline import (dataset_path, featurize_records, features_key, label_features, load_features,
                               register_brands, save_features)

__all__ = ["evaluate", "score_split", "sample_records", "main"]

log = logging.getLogger(__name__)

GALLERIES = {"all": ("train", "val", "test"), "test": ("test",)}
INDEX_FACTORY = "IDMap2,Flat"  # exact search: evaluation measures the model, not an approximate index


def sample_records(records: list[dict[str, Any]], max_listings: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """At most ``max_listings`` of ``records``, a seeded random sample in their original order."""
    if max_listings is None or len(records) <= max_listings:
        return records
    rng = np.random.default_rng(seed)
    return [records[i] for i in sorted(rng.choice(len(records), max_listings, replace=False))]


def score_split(
    bundle: ModelBundle,
    data_dir: str | Path,
    split: str = "test",
    gallery: str = "all",
    max_listings: int | None = None,
    home: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
    photo_only: bool = False,
    text_only: bool = False,
    features_from: str | Path | None = None,
    features_out: str | Path | None = None,
) -> tuple[LabelledFeatures, np.ndarray]:
    """Features and risks of a split's listings, scored against a registry built from the dataset.

    ``photo_only`` scores the photo-only copies (:func:`training.data.photo_only_copy`) of the listings that show a
    logo instead: brand recognition from the photos alone, end to end. ``text_only`` scores the text-only copies
    (:func:`training.data.text_only_copy`: photos that show no mark) of the listings selling a registered brand's
    goods: what the text, price and seller signals do on their own.

    ``home`` keeps the registry (e.g. for the demo server); by default a temporary one is used and removed. A kept
    home whose indexes another model or framing built is rebuilt (the report is logged).

    ``features_out`` saves the listing features there (``training.pipeline.FEATURES_FILE``); ``features_from``
    scores the features an earlier evaluation saved instead of featurizing again, which another model with the same
    embedder and feature config may do (e.g. a refitted classifier): anything else is refused.
    """
    dataset = load_dataset(dataset_path(data_dir))
    if photo_only and text_only:
        raise ValueError("photo_only and text_only copies are two separate evaluations; ask for one")
    records = dataset.listings_for(split)
    if photo_only:
        records = [c for c in map(photo_only_copy, records) if c is not None]
    if text_only:
        records = text_only_copies(records, 1.0, seed)
    records = sample_records(records, max_listings, seed)
    key = features_key(bundle.embedder, bundle.feature_config, dataset, GALLERIES[gallery], INDEX_FACTORY)
    if features_from is not None:
        data = load_features(features_from, key, {split: records})[0][split]
        bundle.classifier.set_brand_confidence(data.features)
        return data, bundle.classifier.predict_risk(data.features)
    tmp = home is None
    home = Path(tempfile.mkdtemp(prefix="eval-catalog-")) if tmp else Path(home)
    try:
        catalog = Catalog.open(home, bundle.embedder, index_factory=INDEX_FACTORY, repair=not tmp)
        slug_to_id = register_brands(catalog, dataset, GALLERIES[gallery], progress=progress)
        featurizer = Featurizer(bundle.embedder, catalog, brand_infos(catalog.registry.list_brands()), bundle.feature_config)
        feats = featurize_records(featurizer, dataset, records, progress=progress, description=f"{split}:")
        catalog.close()
    finally:
        if tmp:
            shutil.rmtree(home, ignore_errors=True)
    data = label_features(records, feats, slug_to_id)
    if features_out is not None:
        save_features(features_out, key, {split: data}, slug_to_id)
    bundle.classifier.set_brand_confidence(data.features)
    return data, bundle.classifier.predict_risk(data.features)


def evaluate(
    model: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    split: str = "test",
    gallery: str = "all",
    max_listings: int | None = None,
    progress: bool = True,
    report: bool = True,
    photo_only: bool = False,
    text_only: bool = False,
    features_from: str | Path | None = None,
) -> dict[str, Any]:
    """Score a split, write ``metrics.json``, the listing features (unless ``features_from`` gives them: an earlier
    evaluation's folder, see :func:`score_split`) and the HTML report; return the metrics."""
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = load_model(model)
    data, risks = score_split(bundle, data_dir, split, gallery, max_listings, progress=progress, photo_only=photo_only,
                              text_only=text_only, features_from=features_from,
                              features_out=None if features_from is not None else out_dir)
    metrics = compute_metrics(data, risks, bundle.policy)
    metrics["model_version"] = bundle.version
    metrics["split"], metrics["gallery"], metrics["photo_only"] = split, gallery, photo_only
    metrics["text_only"] = text_only
    metrics["features_from"] = str(Path(features_from).resolve()) if features_from is not None else None
    metrics["wall_time_s"] = round(time.time() - t0, 1)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_predictions(out_dir / "predictions.jsonl", data, risks, bundle.policy)
    if report:
        from training.report import write_report

        write_report(out_dir, data, risks, bundle, metrics, load_dataset(dataset_path(data_dir)))
    return metrics


def compare(model_a: str | Path, model_b: str | Path, data_dir: str | Path, out_dir: str | Path,
            split: str = "test", gallery: str = "all", max_listings: int | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Evaluate two models on the same split and return their numeric metrics with deltas (b - a)."""
    out_dir = Path(out_dir)
    runs = {}
    for name, model in (("a", model_a), ("b", model_b)):
        runs[name] = evaluate(model, data_dir, out_dir / name, split, gallery, max_listings, progress, report=False)
    rows = {}
    for key, a in runs["a"].items():
        b = runs["b"].get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            rows[key] = {"a": a, "b": b, "delta": round(b - a, 4)}
    result = {"a": str(model_a), "b": str(model_b), "version_a": runs["a"]["model_version"],
              "version_b": runs["b"]["model_version"], "split": split, "metrics": rows}
    (out_dir / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def write_predictions(path: Path, data: LabelledFeatures, risks: np.ndarray, policy) -> None:
    """One JSON line per listing: id, label, risk, decision and the brand found (for audits and independent checks)."""
    decisions = decisions_for(data, risks, policy)
    with open(path, "w") as f:
        for i, lf in enumerate(data.features):
            best = lf.best()
            present = policy.names(best)
            f.write(json.dumps({
                "listing_id": lf.listing_id, "label": data.labels[i], "true_brand_id": data.brand_ids[i],
                "risk": float(risks[i]), "decision": decisions[i],
                "brand_id": best.brand_id if present else None,
                "brand_confidence": round(best.confidence, 4) if best else 0.0,
                "candidate_brand_id": best.brand_id if best else None,
                "candidate_authorized_seller": bool(best and best.features.get("authorized_seller")),
                "image_brand_id": image_top_brand(lf), "photo_brand_id": photo_top_brand(lf),
                "title_brand_id": title_top_brand(lf),
                "known_fake_brand_id": fake_top_brand(lf)[0],
            }) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m training.evaluate --model M --data DIR --out DIR``."""
    parser = argparse.ArgumentParser(prog="training.evaluate", description=__doc__)
    parser.add_argument("--model", default="default", help="model directory, 'default' or BentoML tag")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--gallery", default="all", choices=sorted(GALLERIES))
    parser.add_argument("--max-listings", type=int, default=None)
    parser.add_argument("--photo-only", action="store_true",
                        help="score the listings that show a logo with the brand kept out of their text")
    parser.add_argument("--text-only", action="store_true",
                        help="score the listings selling a registered brand's goods with photos that show no mark")
    parser.add_argument("--features-from", metavar="EVAL_DIR", default=None,
                        help="score the features an earlier evaluation saved (same embedder and feature config)")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = evaluate(args.model, args.data, args.out, args.split, args.gallery, args.max_listings,
                       progress=not args.no_progress, report=not args.no_report, photo_only=args.photo_only,
                       text_only=args.text_only, features_from=args.features_from)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
