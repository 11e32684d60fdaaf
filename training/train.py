"""Train a model directory: catalog of training brands -> features -> brand + risk classifiers -> policy.

``python -m training.train --config quick --data DIR --out runs/quick`` (or ``detector train``). Held-out brands
(sha1(slug) % 10 == 0) are refused anywhere in the training or validation data. ``--extra-data DIR`` (repeatable)
appends other dataset folders to this one's marketplace, e.g. moderator feedback exported by :mod:`training.feedback`;
see :func:`merge_datasets`. ``--companion-data DIR`` (repeatable) adds another marketplace instead, e.g. the same
listings drawn by another photo composer: its listings are featurized against a registry of its own brands, references
and known fakes, and its train and val listings join training and validation (thresholds are then chosen over both).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from detector.bundle import save_model_dir
from detector.dataclass_config import build_config
from detector.embedder import WHITENING_PREFIX, create_embedder, get_model_config
from detector.features import FeatureConfig, Featurizer, brand_infos
from detector.policy import get_policy
from indexes.catalog import Catalog
from training.classifier import (ClassifierConfig, LabelledFeatures, best_authorized, best_confidences,
                                 choose_thresholds, fit_classifier, listing_ids, out_of_fold_trials,
                                 text_named_brandless_confidences, text_named_rows, unregistered_confidences)
from training.data import Dataset, load_dataset, photo_only_copies, text_only_copies
from training.pipeline import (FEATURES_FILE, concat_features, dataset_digest, dataset_path, featurize_records,
                               features_key, label_features, load_features, register_brands, save_features,
                               subset_features)
from training.splits import is_heldout_brand, split_hash
from training.whitening import WhiteningConfig, fit_fingerprint_whitening, photos_digest, whitening_photos

__all__ = ["FEATURES_FILE", "TrainConfig", "get_train_config", "list_train_configs", "load_finetune_run",
           "merge_datasets", "train", "assert_no_heldout", "main"]

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"


# the policy bounds whose trials can include out-of-fold training listings: the authentic-blocked cap (block
# threshold), unregistered logos (brand threshold), brand-less listings whose text names a brand (text brand threshold)
OUT_OF_FOLD_BOUNDS = ("authentic_blocked", "brand", "text_brand")


@dataclass
class TrainConfig:
    """One training run (named JSON files in ``training/configs``)."""

    name: str
    embedder: str = "effnet-lite0-minilm"  # model config name (detector/configs/models)
    policy: str = "default"  # base policy whose target precisions the thresholds aim for
    seed: int = 0
    batch_size: int = 16  # listings per featurizer call
    max_listings: int | None = None  # cap per split (quick runs)
    index_factory: str = "IDMap2,Flat"
    features: dict[str, Any] = field(default_factory=dict)  # FeatureConfig fields
    classifier: dict[str, Any] = field(default_factory=dict)  # ClassifierConfig fields
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig fields for `detector data generate`
    finetune: dict[str, Any] | None = None  # FinetuneConfig fields; None keeps the packaged towers' projections
    fingerprint_whitening: dict[str, Any] | None = None  # WhiteningConfig fields; None keeps raw fingerprints
    # ModelConfig fields set over the embedder's config (also over a reused one), e.g. {"fingerprints": {"border": 0.06}}
    embedder_overrides: dict[str, Any] = field(default_factory=dict)
    extra_data: list[str] = field(default_factory=list)  # dataset folders appended by merge_datasets (not capped)
    # dataset folders featurized against their own registry; their train / val listings join training / validation
    companion_data: list[str] = field(default_factory=list)
    # share of train / val listings showing a logo that are also used as photo-only copies (no brand in the text)
    photo_only_fraction: float = 0.0
    # share of train / val listings selling a registered brand's goods that are also used as text-only copies (the
    # photos of a logo-less listing instead of their own; training.data.text_only_copy)
    text_only_fraction: float = 0.0
    # bounds of the policy whose trials also include training listings scored out of fold (a subset of
    # OUT_OF_FOLD_BOUNDS; training.classifier.out_of_fold_trials): several times validation's listings, so a cut is
    # no longer the single riskiest validation listing's score
    out_of_fold_bounds: list[str] = field(default_factory=list)
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        config = build_config(cls, d, "train config")
        unknown = sorted(set(config.out_of_fold_bounds) - set(OUT_OF_FOLD_BOUNDS))
        if unknown:
            raise ValueError(f"train config: unknown out_of_fold_bounds {unknown}; known: {list(OUT_OF_FOLD_BOUNDS)}")
        return config


def list_train_configs() -> list[str]:
    """Names of the shipped training configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def get_train_config(name: str | Path) -> TrainConfig:
    """A shipped config by name or a JSON file; unknown names list the known ones."""
    path = Path(name)
    if path.suffix != ".json":
        path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown train config {str(name)!r}; known: {list_train_configs()}")
    return TrainConfig.from_dict(json.loads(path.read_text()))


def _brand_slugs_of(rec: dict[str, Any]) -> set[str]:
    meta = rec.get("meta") or {}
    return {s for s in (rec.get("brand_slug"), meta.get("logo_slug"), meta.get("mentioned_brand")) if s}


def assert_no_heldout(records: Sequence[dict[str, Any]], brands: Sequence[dict[str, Any]] = ()) -> None:
    """Raise if any record or brand touches a held-out brand (sha1(slug) % 10 == 0)."""
    bad = sorted({s for r in records for s in _brand_slugs_of(r) if is_heldout_brand(s)}
                 | {b["slug"] for b in brands if is_heldout_brand(b["slug"])})
    if bad:
        raise ValueError(f"held-out brands in training data: {bad[:10]} ({len(bad)} in all)")


def _absolute(dataset: Dataset, rel: str) -> str:
    """A dataset-relative path as an absolute one (``Dataset.image_path`` keeps absolute paths as they are)."""
    return str((dataset.root / rel).resolve())


def merge_datasets(main: Dataset, extras: Sequence[Dataset]) -> tuple[Dataset, list[list[dict[str, Any]]]]:
    """Append the train and val listings of ``extras`` (with their new brands and those brands' assets) to ``main``.

    Splits stay per brand: a brand already in ``main`` (or an earlier extra) keeps that split and its assets, and an
    appended listing of it follows that split, so it is dropped when that split is ``test``. Listings an extra puts
    in ``test`` are never appended. Appended image paths are made absolute, so ``Dataset.image_path`` opens them
    from their own folder.

    Returns:
        The merged dataset (``main``'s root and manifest) and, per extra, the listings appended from it.

    Raises:
        ValueError: An appended listing id already exists.
    """
    split_of = {b["slug"]: b["split"] for b in main.brands}
    brands, assets, listings = list(main.brands), list(main.assets), list(main.listings)
    ids = {r["listing_id"] for r in listings}
    appended: list[list[dict[str, Any]]] = []
    for extra in extras:
        rows: list[dict[str, Any]] = []
        new = [b for b in extra.brands if b["slug"] not in split_of]
        split_of.update((b["slug"], b["split"]) for b in new)
        brands += new
        new_slugs = {b["slug"] for b in new}
        assets += [{**a, "image": _absolute(extra, a["image"])} for a in extra.assets if a["brand_slug"] in new_slugs]
        for rec in extra.listings:
            split = split_of.get(rec.get("brand_slug"), rec["split"]) if rec["split"] != "test" else "test"
            if split == "test":
                continue
            if rec["listing_id"] in ids:
                raise ValueError(f"listing {rec['listing_id']!r} of {extra.root} is already in the training data")
            ids.add(rec["listing_id"])
            rows.append({**rec, "split": split, "images": [_absolute(extra, p) for p in rec.get("images", [])]})
        log.info("appending %d listings and %d brands of %s (%d listings left out: test split or test brand)",
                 len(rows), len(new), extra.root, len(extra.listings) - len(rows))
        appended.append(rows)
        listings += rows
    merged = dataclasses.replace(main, brands=brands, assets=assets, listings=listings)
    return merged, appended


Records = dict[str, list[dict[str, Any]]]  # dataset rows per split


class _Companion(NamedTuple):
    """A companion marketplace of a run: its dataset and the listings the run takes from it."""

    dataset: Dataset
    records: Records  # with copies
    originals: Records  # what split hashes identify
    copies: dict[str, dict[str, int]]  # copies per kind and split


def _select_listings(dataset: Dataset, config: TrainConfig, appended: Sequence[list[dict[str, Any]]] = ()
                     ) -> tuple[Records, Records, dict[str, dict[str, int]]]:
    """A dataset's train and val listings for a run: capped at ``config.max_listings`` (seeded), then the ``appended``
    listings of ``merge_datasets`` (never capped: e.g. a moderator's verdict), then photo- and text-only copies.

    Returns the records per split, the originals (what split hashes identify) and the number of copies per kind.
    """
    rng = np.random.default_rng(config.seed)
    records = {}
    for split in ("train", "val"):
        recs = dataset.listings_for(split)
        if config.max_listings is not None and len(recs) > config.max_listings:
            recs = [recs[i] for i in sorted(rng.choice(len(recs), config.max_listings, replace=False))]
        records[split] = recs + [r for rows in appended for r in rows if r["split"] == split]
    originals = {split: list(recs) for split, recs in records.items()}
    copies: dict[str, dict[str, int]] = {"photo_only": {}, "text_only": {}}
    for split in records:  # the copies follow the cap, so a run's listing count is cap + copies
        for kind, make in (("photo_only", photo_only_copies), ("text_only", text_only_copies)):
            made = make(originals[split], getattr(config, f"{kind}_fraction"), config.seed)
            records[split] += made
            copies[kind][split] = len(made)
    return records, originals, copies


def _resume_features(out_dir: Path, key: dict[str, Any], records: Records, name: str
                     ) -> tuple[dict[str, LabelledFeatures], dict[str, int]] | None:
    """Features an earlier, cut-off run into the same folder saved for exactly this key and these listings (a run
    saves each dataset's features as soon as they are computed), or ``None``."""
    if not (out_dir / name).is_file():
        return None
    try:
        part, ids = load_features(out_dir, key, records, name)
    except ValueError as e:
        log.info("not resuming from %s: %s", out_dir / name, e)
        return None
    log.info("resumed %s: features saved by an earlier run into %s", name, out_dir)
    return part, ids


def _featurize(embedder: Any, feature_config: FeatureConfig, dataset: Dataset, records: Records, config: TrainConfig,
               out_dir: Path, progress: bool) -> tuple[dict[str, LabelledFeatures], dict[str, int]]:
    """Features of a dataset's train and val listings against a temporary registry of its train and val brands."""
    home = Path(tempfile.mkdtemp(prefix="train-catalog-", dir=out_dir))
    try:
        catalog = Catalog.open(home, embedder, index_factory=config.index_factory)
        slug_to_id = register_brands(catalog, dataset, ("train", "val"), progress=progress)
        featurizer = Featurizer(embedder, catalog, brand_infos(catalog.registry.list_brands()), feature_config)
        labelled = {}
        for split in ("train", "val"):
            feats = featurize_records(featurizer, dataset, records[split], config.batch_size, progress,
                                      description=f"{dataset.root.name} {split}:")
            labelled[split] = label_features(records[split], feats, slug_to_id)
        catalog.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return labelled, slug_to_id


def _as_saved(delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors rounded as the model directory stores them (fp16), so training features are what serving computes."""
    return {k: v.to(torch.float16).to(torch.float32) for k, v in delta.items()}


def _half(group: str, seed: int) -> int:
    return int(hashlib.sha1(f"{seed}:{group}".encode()).hexdigest(), 16) % 2


def _subset(data: LabelledFeatures, keep: list[bool]) -> LabelledFeatures:
    return subset_features(data, [i for i, k in enumerate(keep) if k])


def load_finetune_run(run_dir: str | Path, config: TrainConfig,
                      val_slugs: set[str] = frozenset()) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The fine-tuned weights and report an earlier run of ``config`` saved in ``run_dir`` (see ``finetune``).

    Lets a run whose fine-tuning finished but whose classifier stage was stopped go on without fine-tuning again.
    ``val_slugs`` (this run's validation brands) must all have been kept out of that fine-tuning, as ``train`` keeps
    them out of its own, so thresholds are still tuned on brands new to the embedder.

    Raises:
        FileNotFoundError: ``run_dir`` lacks ``finetune.json`` or its weights file.
        ValueError: ``config`` does not fine-tune, the run fine-tuned with other settings than ``config.finetune``,
            or it trained on some of ``val_slugs`` (or did not record what it left out).
    """
    from training.finetune import WEIGHTS_FILE, FinetuneConfig, load_finetune_weights

    run_dir = Path(run_dir)
    report_path, weights_path = run_dir / "finetune.json", run_dir / WEIGHTS_FILE
    for path in (report_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a finished fine-tuning run folder")
    if config.finetune is None:
        raise ValueError(f"train config {config.name!r} does not fine-tune; use --embedder-from to reuse a model")
    report = json.loads(report_path.read_text())
    wanted = dataclasses.asdict(FinetuneConfig.from_dict(config.finetune))
    # The run's settings read back through the schema (JSON lists become tuples; fields added since it ran take
    # their defaults, which is what it ran with).
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    ran = dataclasses.asdict(FinetuneConfig.from_dict({k: v for k, v in report["config"].items() if k in known}))
    differ = {k: (ran[k], v) for k, v in wanted.items() if ran[k] != v}
    if differ:
        raise ValueError(f"{run_dir} fine-tuned with other settings than config {config.name!r} "
                         f"(field: (run, config)): {differ}")
    seen = sorted(set(val_slugs) - set(report.get("excluded_slugs") or ()))
    if seen:
        raise ValueError(f"{run_dir}'s fine-tuning did not leave out {len(seen)} of this run's validation brands "
                         f"(e.g. {seen[:5]}); fine-tune on this dataset instead")
    return load_finetune_weights(weights_path), {"reused_from": {"run": str(run_dir.resolve())}, **report}


class _SourceWhitening(NamedTuple):
    """The fingerprint whitening of a model reused with ``embedder_from``, and what it was fitted for."""

    delta: dict[str, torch.Tensor]  # empty when the model has none
    report: dict[str, Any] | None
    config: WhiteningConfig | None  # as the model's train config set it
    version: str | None
    embedder_config: dict[str, Any]


def _kept_whitening(source: _SourceWhitening | None, embedder_config: dict[str, Any], config: WhiteningConfig,
                    train_records: Sequence[dict[str, Any]], keep: bool
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """A reused model's whitening (delta and report) when it is the one this run would fit, or when ``keep`` asks for
    it; None to fit one. The same one: the same embedder config (a region layout changes the fingerprints), the same
    whitening config and the same sampled training photos (the digest its report records; models trained before the
    digest was recorded are kept only when asked)."""
    if source is None:
        return None
    if not source.delta:
        if keep:
            raise ValueError(f"model {source.version} has no fingerprint whitening to keep")
        return None
    report = dict(source.report or {})
    same = (source.config == config
            and report.get("photos") == photos_digest(whitening_photos(train_records, config))
            and json.dumps(source.embedder_config, sort_keys=True) == json.dumps(embedder_config, sort_keys=True))
    if not (same or keep):
        return None
    return source.delta, {**report, "kept_from": source.version}


def train(config: TrainConfig, data_dir: str | Path, out_dir: str | Path, progress: bool = True,
          weights_delta: dict[str, torch.Tensor] | None = None, embedder_from: str | Path | None = None,
          finetune_from: str | Path | None = None, features_from: str | Path | None = None,
          keep_whitening: bool = False) -> Path:
    """Run one training; returns the model directory (``out_dir/model``) with metrics in its sidecar.

    ``embedder_from`` (a model directory, ``default`` or a BentoML tag) reuses that model's embedder (config and
    fine-tuned weights) instead of fine-tuning: only the classifier and the policy are retrained.
    ``finetune_from`` (a run folder of this config) reuses the weights its fine-tuning saved (``load_finetune_run``).
    ``features_from`` (a finished run folder) reuses its model's whole embedder and the listing features the run
    saved (``FEATURES_FILE``, and one file per companion dataset): only the classifier and the policy are fitted
    again, in seconds. The features must have been computed for the same embedder, feature config, registry, dataset
    and listings (else ValueError); a companion dataset that run did not featurize is featurized now.
    With ``embedder_from``, the known-fake fingerprint whitening is fitted again unless the source model's is the one
    this run would fit (same embedder config and the same sampled training photos, as its report records) or
    ``keep_whitening`` asks to keep it: then the embedder, and the model id features and indexes are keyed by, stay
    the source's.
    """
    if sum(x is not None for x in (embedder_from, finetune_from, features_from)) > 1:
        raise ValueError("embedder_from, finetune_from and features_from all replace fine-tuning; give one")
    t_start = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    dataset = load_dataset(dataset_path(data_dir))
    extras = [load_dataset(dataset_path(p)) for p in config.extra_data]
    merged, appended = merge_datasets(dataset, extras)
    records, originals, copies = _select_listings(dataset, config, appended)
    dataset = merged
    assert_no_heldout(records["train"] + records["val"], [b for b in dataset.brands if b["split"] in ("train", "val")])
    companions = []
    for path in config.companion_data:
        other = load_dataset(dataset_path(path))
        companion = _Companion(other, *_select_listings(other, config))
        assert_no_heldout(companion.records["train"] + companion.records["val"],
                          [b for b in other.brands if b["split"] in ("train", "val")])
        companions.append(companion)

    feature_config = FeatureConfig.from_dict(config.features)
    finetune_report = None
    embedder_config: dict[str, Any] = get_model_config(config.embedder).to_dict()
    # Validation brands stay unseen by the embedder too, so thresholds are tuned on brands new to the model.
    val_slugs = {b["slug"] for ds in (dataset, *(c.dataset for c in companions)) for b in ds.brands
                 if b["split"] == "val"}
    whitening_report = None
    source_whitening = None  # the whitening of the model reused as embedder_from, kept or fitted again below
    if embedder_from is not None or features_from is not None:
        from detector.bundle import load_embedder_weights, resolve_model_path

        source_ref = embedder_from if embedder_from is not None else Path(features_from) / "model"
        embedder_config, weights_delta = load_embedder_weights(source_ref)
        source = json.loads((resolve_model_path(source_ref) / "model.json").read_text())
        finetune_report = {"reused_from": {"model": str(source_ref), "version": source.get("version")},
                           **(source.get("finetune") or {})}
        if features_from is not None:  # the whole embedder, whitening included, as its features were computed
            whitening_report = source.get("fingerprint_whitening")
        else:
            fitted_for = (source.get("train_config") or {}).get("fingerprint_whitening")
            source_whitening = _SourceWhitening(
                {k: v for k, v in (weights_delta or {}).items() if k.startswith(WHITENING_PREFIX)},
                source.get("fingerprint_whitening"),
                None if fitted_for is None else WhiteningConfig.from_dict(fitted_for), source.get("version"),
                embedder_config)
    elif finetune_from is not None:
        weights_delta, finetune_report = load_finetune_run(finetune_from, config, val_slugs)
    elif config.finetune is not None and weights_delta is None:
        from training.finetune import FinetuneConfig, finetune

        weights_delta, finetune_report = finetune(FinetuneConfig.from_dict(config.finetune), config.embedder,
                                                  out_dir, progress=progress, exclude_slugs=val_slugs)
    if keep_whitening and (source_whitening is None or config.fingerprint_whitening is None):
        raise ValueError("keep_whitening keeps the whitening of the model given as embedder_from, for a config that "
                         "whitens fingerprints")
    if config.embedder_overrides:
        embedder_config = {**embedder_config, **{  # a nested section is updated, not replaced
            key: {**embedder_config.get(key, {}), **value} if isinstance(value, dict) else value
            for key, value in config.embedder_overrides.items()}}
    if weights_delta is not None and features_from is None:  # a reused model's whitening is kept or refitted below
        weights_delta = _as_saved({k: v for k, v in weights_delta.items() if not k.startswith(WHITENING_PREFIX)})
    if config.fingerprint_whitening is not None and features_from is None:
        whitening_config = WhiteningConfig.from_dict(config.fingerprint_whitening)
        kept = _kept_whitening(source_whitening, embedder_config, whitening_config, records["train"], keep_whitening)
        if kept is not None:
            whitening_delta, whitening_report = kept
        else:
            whitening, whitening_report = fit_fingerprint_whitening(
                create_embedder(embedder_config, weights_delta=weights_delta), dataset, records["train"],
                whitening_config, progress)
            whitening_delta = whitening.to_delta()
        weights_delta = {**(weights_delta or {}), **_as_saved(whitening_delta)}
        log.info("fingerprint whitening: %s", whitening_report)
    embedder = create_embedder(embedder_config, weights_delta=weights_delta)
    parts, slug_to_id = [], {}
    for i, (ds, recs) in enumerate([(dataset, records), *((c.dataset, c.records) for c in companions)]):
        key = features_key(embedder, feature_config, ds, ("train", "val"), config.index_factory)
        name = FEATURES_FILE if i == 0 else f"features-{dataset_digest(ds)[:12]}.pkl"
        if features_from is not None and (i == 0 or (Path(features_from) / name).is_file()):
            part, ids = load_features(features_from, key, recs, name)
        elif (resumed := _resume_features(out_dir, key, recs, name)) is not None:
            part, ids = resumed
        else:  # a companion the reused run did not featurize is featurized now
            part, ids = _featurize(embedder, feature_config, ds, recs, config, out_dir, progress)
        save_features(out_dir, key, part, ids, name)
        parts.append(part)
        if i == 0:
            slug_to_id = ids  # the main dataset's registry (the sidecar counts its brands)
    labelled = {split: concat_features([part[split] for part in parts]) for split in ("train", "val")}

    val = labelled["val"]
    calib = _subset(val, [_half(g, config.seed) == 0 for g in val.groups])
    classifier_config = ClassifierConfig(**config.classifier)
    base_policy = get_policy(config.policy)
    oof = None
    if config.out_of_fold_bounds:  # before the final fit, which sets train's brand confidences last
        oof = out_of_fold_trials(labelled["train"], calib, classifier_config, base_policy)
        log.info("scored out of fold: %d authentic training listings, %d unregistered logos, %d brand-less listings "
                 "naming a brand", len(set(oof.authentic.ids)), len(oof.unregistered), len(oof.text_brandless))
    clf = fit_classifier(labelled["train"], calib, classifier_config)
    # Thresholds use all of validation: brand confidences come from a model fitted on train only, and the risk is a
    # monotone map (two sigmoid parameters fitted on the calibration half) of a model fitted on train, so which
    # validation listings a risk threshold separates does not depend on that half. Twice the listings make the
    # "at most this share of authentic listings blocked" cut an order statistic of ~300 listings instead of ~150.
    clf.set_brand_confidence(val.features)
    risks = clf.predict_risk(val.features)
    brand_report: dict[str, Any] = {}
    # A policy with a text brand threshold bounds text-named and image-named candidates each by its own listings.
    text_named = text_named_rows(val, base_policy)
    split = base_policy.text_brand_threshold is not None
    unregistered = unregistered_confidences(val, skip=text_named if split else None)
    brandless = text_named_brandless_confidences(val, text_named)
    bounds = set(config.out_of_fold_bounds)
    if oof is not None and "brand" in bounds:
        unregistered = np.concatenate([unregistered, oof.unregistered])
    if oof is not None and "text_brand" in bounds:
        brandless = np.concatenate([brandless, oof.text_brandless])
    policy = choose_thresholds(risks, val.labels, unregistered, base_policy, report=brand_report,
                               brand_conf=best_confidences(val), authorized=best_authorized(val), ids=listing_ids(val),
                               text_named=text_named, brand_conf_text_brandless=brandless,
                               more_authentic=oof.authentic if oof is not None and "authentic_blocked" in bounds
                               else None)
    policy.name = f"{config.name}-tuned"
    log.info("brand threshold: %s", brand_report)

    from training.metrics import compute_metrics

    val_metrics = compute_metrics(val, risks, policy)
    val_by_dataset = {}
    if companions:  # each marketplace's validation listings alone, scored by the policy chosen over all of them
        start = 0
        for path, part in zip([str(data_dir), *config.companion_data], parts):
            pick = list(range(start, start + len(part["val"].labels)))
            start += len(pick)
            val_by_dataset[path] = compute_metrics(subset_features(val, pick), risks[pick], policy)
    extra = {
        "train_config": dataclasses.asdict(config),
        "data": {
            "path": str(Path(data_dir).resolve()),
            "manifest_format": dataset.manifest.get("format_version"),
            "seed": dataset.manifest.get("seed"),
            "split_hashes": {s: split_hash(originals[s]) for s in originals},
            "n_listings": {s: len(originals[s]) for s in originals},
            "photo_only_copies": copies["photo_only"],
            "text_only_copies": copies["text_only"],
            "n_brands_registered": len(slug_to_id),
            "extra_data": [{"path": str(e.root.resolve()), "generator": e.manifest.get("generator"),
                            "n_listings": {s: sum(r["split"] == s for r in rows) for s in records}}
                           for e, rows in zip(extras, appended)],
            "companion_data": [{"path": str(c.dataset.root.resolve()), "generator": c.dataset.manifest.get("generator"),
                                "seed": c.dataset.manifest.get("seed"),
                                "photo_style": (c.dataset.manifest.get("config") or {}).get("photo_style"),
                                "split_hashes": {s: split_hash(recs) for s, recs in c.originals.items()},
                                "n_listings": {s: len(recs) for s, recs in c.originals.items()},
                                "photo_only_copies": c.copies["photo_only"], "text_only_copies": c.copies["text_only"]}
                               for c in companions],
            "heldout_rule": "int(sha1(slug).hexdigest(), 16) % 10 == 0 brands excluded from training and tuning",
        },
        "metrics": {"val": val_metrics, **({"val_by_dataset": val_by_dataset} if val_by_dataset else {})},
        "brand_threshold": brand_report,
        "finetune": finetune_report,
        "fingerprint_whitening": whitening_report,
        "wall_time_s": round(time.time() - t_start, 1),
    }
    model_dir = save_model_dir(out_dir / "model", embedder_config=embedder_config,
                               classifier=clf, policy=policy, feature_config=feature_config,
                               weights_delta=weights_delta, extra=extra)
    log.info("model written to %s in %.0f s", model_dir, time.time() - t_start)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m training.train --config NAME --data DIR --out DIR [--extra-data DIR ...] [--companion-data DIR
    ...]``."""
    parser = argparse.ArgumentParser(prog="training.train", description=__doc__)
    parser.add_argument("--config", default="quick", help=f"train config name or JSON file ({list_train_configs()})")
    parser.add_argument("--data", required=True, help="dataset folder (see docs/data_format.md)")
    parser.add_argument("--out", required=True, help="run folder; the model lands in OUT/model")
    parser.add_argument("--extra-data", action="append", default=[], metavar="DIR",
                        help="dataset folder whose train/val listings are appended (repeatable), e.g. feedback")
    parser.add_argument("--companion-data", action="append", default=[], metavar="DIR",
                        help="another marketplace, e.g. the same listings drawn by another photo composer: featurized "
                             "against its own registry, its train/val listings join training and validation "
                             "(repeatable)")
    parser.add_argument("--embedder-from", metavar="MODEL", default=None,
                        help="reuse this model's embedder (directory, 'default' or BentoML tag) instead of "
                             "fine-tuning; retrains only the classifier and policy")
    parser.add_argument("--finetune-from", metavar="RUN", default=None,
                        help="reuse the fine-tuned weights an earlier run of this config saved in RUN "
                             "(finetune.json + finetune_weights.safetensors) instead of fine-tuning again")
    parser.add_argument("--features-from", metavar="RUN", default=None,
                        help="reuse a finished run's embedder and the listing features it saved (features.pkl, "
                             "and one file per companion dataset; others are featurized): refits only the "
                             "classifier and the policy (seconds)")
    parser.add_argument("--keep-whitening", action="store_true",
                        help="with --embedder-from: keep that model's known-fake fingerprint whitening instead of "
                             "fitting it again (kept anyway when its report shows it was fitted on this run's "
                             "training photos); the embedder id stays the source's, so features and indexes "
                             "computed with it stay valid")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--register", action="store_true", help="also add the model to the BentoML model store")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = get_train_config(args.config)
    config.extra_data = [*config.extra_data, *args.extra_data]
    config.companion_data = [*config.companion_data, *args.companion_data]
    model_dir = train(config, args.data, args.out, progress=not args.no_progress, embedder_from=args.embedder_from,
                      finetune_from=args.finetune_from, features_from=args.features_from,
                      keep_whitening=args.keep_whitening)
    out = {"model_dir": str(model_dir), "metrics": json.loads((model_dir / "model.json").read_text())["metrics"]}
    if args.register:
        from detector.bundle import register_bento_model

        out["bento_tag"] = register_bento_model(model_dir)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
