"""Small stages shared by training, evaluation and the demo: dataset -> catalog -> features -> labelled features."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
from pathlib import Path
from typing import Any, Iterable, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from detector.features import FeatureConfig, Featurizer, ListingFeatures
from detector.listing import Listing
from indexes.catalog import AssetInput, Catalog
from training.classifier import LabelledFeatures, subset_features
from training.data import Dataset

__all__ = ["FEATURES_FILE", "progress_bar", "register_brands", "load_listing", "featurize_records", "label_features",
           "subset_features", "concat_features", "dataset_digest", "features_key", "save_features", "load_features"]

log = logging.getLogger(__name__)


def progress_bar(enabled: bool = True) -> Progress:
    """A rich progress bar (disabled output when ``enabled`` is False)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not enabled, transient=False)


def register_brands(
    catalog: Catalog,
    dataset: Dataset,
    splits: Iterable[str],
    progress: bool = True,
    brand_limit: int | None = None,
) -> dict[str, int]:
    """Register the dataset's registered brands of ``splits`` with their assets; returns slug -> brand_id.

    Brands already in the catalog (same name) are reused with the assets they have, so calling this again on a
    seeded registry adds nothing.
    """
    splits = set(splits)
    brands = [b for b in dataset.brands if b["registered"] and b["split"] in splits]
    if brand_limit is not None:
        brands = brands[:brand_limit]
    existing = {b.name.casefold(): b.id for b in catalog.registry.list_brands()}
    slug_to_id: dict[str, int] = {}
    added: set[str] = set()
    new = []
    for b in brands:
        if b["name"].casefold() in existing:
            slug_to_id[b["slug"]] = existing[b["name"].casefold()]
        else:
            existing[b["name"].casefold()] = -1  # two dataset brands with one display name: keep the first
            new.append(b)
    if new:
        ids, _ = catalog.add_brands([
            dict(name=b["name"], aliases=b["aliases"], authorized_sellers=b["authorized_sellers"],
                 min_price=b["min_price"], currency=b["currency"]) for b in new])
        for b, brand_id in zip(new, ids):
            slug_to_id[b["slug"]] = brand_id
            added.add(b["slug"])
    assets = [a for a in dataset.assets if a["brand_slug"] in added and a["split"] in splits]
    items = [AssetInput(slug_to_id[a["brand_slug"]], a["kind"], dataset.image_path(a["image"]).read_bytes(),
                        a.get("title"), a.get("source")) for a in assets]
    with progress_bar(progress) as bar:
        task = bar.add_task(f"registering {len(items)} assets of {len(brands)} brands", total=len(items))
        if items:
            catalog.add_assets(items, progress=lambda done, total: bar.update(task, completed=done))
    return slug_to_id


def load_listing(dataset: Dataset, rec: dict[str, Any]) -> Listing:
    """A dataset record as the :class:`Listing` the service would decode."""
    images = [dataset.open_image(p).convert("RGB") for p in rec.get("images", [])]
    return Listing(rec["listing_id"], rec.get("title", ""), rec.get("description", ""), rec.get("price"),
                   rec.get("currency"), rec.get("seller_id"), images)


def featurize_records(
    featurizer: Featurizer,
    dataset: Dataset,
    records: Sequence[dict[str, Any]],
    batch_size: int = 16,
    progress: bool = True,
    description: str = "featurizing",
) -> list[ListingFeatures]:
    """Features of dataset records, in batches, with a progress bar."""
    out: list[ListingFeatures] = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{description} {len(records)} listings", total=len(records))
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            out += featurizer.featurize([load_listing(dataset, r) for r in chunk])
            bar.update(task, advance=len(chunk))
    return out


def label_features(
    records: Sequence[dict[str, Any]], features: list[ListingFeatures], slug_to_id: dict[str, int]
) -> LabelledFeatures:
    """Attach labels, true brand ids and fold groups to features."""
    brand_ids = [slug_to_id.get(r["brand_slug"]) if r.get("brand_slug") else None for r in records]
    groups = [r.get("brand_slug") or (r.get("meta") or {}).get("logo_slug") or r["listing_id"] for r in records]
    return LabelledFeatures(features, [r["label"] for r in records], brand_ids, groups, list(records))


def dataset_path(path: str | Path) -> Path:
    """Resolve a dataset folder, failing clearly when it has no manifest."""
    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"{path} is not a dataset folder (no manifest.json); run `detector data generate`")
    return path


def concat_features(parts: Sequence[LabelledFeatures]) -> LabelledFeatures:
    """The listings of ``parts``, one after the other."""
    return LabelledFeatures([f for p in parts for f in p.features], [x for p in parts for x in p.labels],
                            [x for p in parts for x in p.brand_ids], [x for p in parts for x in p.groups],
                            [x for p in parts for x in p.records])


FEATURES_FILE = "features.pkl"  # listing features of a run or evaluation, so classifiers can be refitted or rescored


def dataset_digest(dataset: Dataset) -> str:
    """Which generated dataset this is. Records alone do not say: one seed drawn by two photo composers gives the
    same listing rows and relative image paths, but other photos (and other known-fake images in the registry)."""
    manifest = {k: dataset.manifest.get(k) for k in ("generator", "seed", "config", "counts", "split_hashes")}
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


def features_key(embedder: Any, feature_config: FeatureConfig, dataset: Dataset, splits: Sequence[str],
                 index_factory: str) -> dict[str, Any]:
    """What listing features depend on besides the listings: embedder (config and weights), feature config, index,
    registry (the registered brands of ``splits`` and their assets) and the dataset they were drawn from."""
    registered = sorted((b["slug"], b["split"]) for b in dataset.brands if b["registered"] and b["split"] in splits)
    slugs = {slug for slug, _ in registered}
    assets = sorted(a["image"] for a in dataset.assets if a["brand_slug"] in slugs)
    digest = hashlib.sha256(json.dumps([registered, assets]).encode()).hexdigest()
    return {"embedder": embedder.model_id, "embedder_config": json.loads(json.dumps(embedder.config.to_dict())),
            "feature_config": dataclasses.asdict(feature_config), "index_factory": index_factory,
            "registry": digest, "dataset": dataset_digest(dataset)}


def _record_digest(rec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()


def save_features(run_dir: str | Path, key: dict[str, Any], labelled: dict[str, LabelledFeatures],
                  slug_to_id: dict[str, int], name: str = FEATURES_FILE) -> Path:
    """Write listing features (file ``name`` in ``run_dir``) with the key they were computed for."""
    path = Path(run_dir) / name
    digests = {split: [_record_digest(r) for r in data.records] for split, data in labelled.items()}
    with path.open("wb") as f:
        pickle.dump({"key": key, "labelled": labelled, "digests": digests, "slug_to_id": slug_to_id}, f,
                    protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_features(run_dir: str | Path, key: dict[str, Any], records: dict[str, list[dict[str, Any]]],
                  name: str = FEATURES_FILE) -> tuple[dict[str, LabelledFeatures], dict[str, int]]:
    """The features a run saved (file ``name``) of ``records``, if they were computed for ``key``.

    Each split's listings must be among the run's, with the same content (a listing's features do not depend on the
    others), so a config that uses fewer copies (a smaller photo- or text-only fraction, same seed) reuses them too.

    Raises:
        FileNotFoundError: the run saved no features.
        ValueError: they were computed for another embedder, feature config, registry or dataset, or some listings
            are not among them.
    """
    path = Path(run_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: that run saved no features")
    with path.open("rb") as f:
        saved = pickle.load(f)  # a file this code wrote into a run folder, not one a client sent
    differ = sorted(k for k in set(key) | set(saved["key"]) if key.get(k) != saved["key"].get(k))
    if differ:
        raise ValueError(f"{path} was computed for another {', '.join(differ)} than this run's; featurize again")
    out = {}
    for split, recs in records.items():
        data = saved["labelled"][split]
        where = {d: i for i, d in enumerate(saved["digests"][split])}
        missing = [r["listing_id"] for r in recs if _record_digest(r) not in where]
        if missing:
            raise ValueError(f"{path} has no features of {len(missing)} {split} listings of this run (e.g. "
                             f"{missing[:3]}): other listings; featurize again")
        out[split] = subset_features(data, [where[_record_digest(r)] for r in recs])
    return out, saved["slug_to_id"]
