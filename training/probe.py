"""Brand-from-photo retrieval on one split, fast: for embedder experiments (input sizes, how brand scores pool).

``python -m training.probe --model default --data DIR --split val --limit 500 [--extra-sizes 512] [--out DIR]
[--weights RUN/finetune_weights.safetensors] [--references '{"low_res": [48]}']``

Embeds the registered brands' reference assets (every split, as the evaluation gallery ``all``) and the photos of a
split's listings that show a logo, then ranks brands by photo evidence alone, brute force, for several variants: each
input size alone and together (``--extra-sizes`` adds sizes the model does not use), and a brand score taken as the
best reference or the mean over the brand's references. No registry, no FAISS, no classifier: a few minutes on 2
cores for 500 listings, where a full ``training.evaluate`` run takes ten. The ``max`` variant over the model's own
sizes is the image evidence the service computes (``brand_top1_photo``), up to FAISS's top-k cut.

Prints a table and writes ``probe.json`` (with the most frequent confusions, and in ``listings`` whether the model
variant named each registered brand's listing, for paired comparisons: :mod:`training.probe_diff`) under ``--out``
when given. Listings of
unregistered brands' logos are scored too: ``unregistered_above_p10`` is the share whose best brand score exceeds the
10th percentile of correct matches' scores (how many look-alikes a threshold that keeps 90 % of hits lets through).
With ``--known-marks`` it also asks whether other known marks tell a look-alike from a real match
(``known_marks``): a bank of simple-icons marks that are neither held out nor any of the dataset's brands (so no
listing's own logo is in it, in any split: the situation of a held-out brand's look-alike at test), embedded as
references; for the model variant, each listing's best brand score and the cosine of any of its regions to the
nearest bank mark, and the ROC AUC of "own brand, top-1" against "unregistered logo" for the score alone and for
the score minus that cosine. ``--max-known-marks`` takes a seeded sample of the bank (the full bank, ~2,600 marks
in two variants, takes ~10 min to embed on 2 cores).

With ``--unseen-by RUN ...`` only listings of brands none of those fine-tuning runs trained on are probed
(:func:`training.finetune.trained_slugs`): a pilot fine-tuned on a subset of the brands can then be judged on the
training split's other brands too, several times the validation split's brands (the unit a comparison resamples).

On a dataset drawn with ``photo_style`` "scenes" (:mod:`training.scenes`), "render3d" (:mod:`training.render3d`) or
"snapshots" (:mod:`training.snapshots`), ``by_scene`` gives the model variant's top-1 with each photo scored alone,
by the scene, object or item it shows.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from detector.bundle import load_embedder_weights, load_model, resolve_model_path
from detector.embedder import Embedder, create_embedder
from sklearn.metrics import roc_auc_score

from training import render
from training.data import DataConfig, Dataset, load_dataset, photo_scenes
from training.evaluate import sample_records
from training.pipeline import dataset_path, progress_bar
from training.splits import is_heldout_brand

__all__ = ["brand_scores", "embed_gallery", "embed_photo_regions", "known_mark_slugs", "embed_known_marks", "probe",
           "main"]

POOLS = ("max", "mean")


@dataclasses.dataclass
class Gallery:
    """Reference vectors of the registered brands and the brand (index into ``slugs``) of each."""

    vectors: np.ndarray  # (A, dim)
    brand: np.ndarray  # (A,) int
    slugs: list[str]


def embed_gallery(embedder: Embedder, dataset: Dataset, progress: bool = True) -> Gallery:
    """Embed the authentic reference assets of every registered brand, as the service would on registration."""
    slugs = [b["slug"] for b in dataset.brands if b["registered"]]
    index = {s: i for i, s in enumerate(slugs)}
    assets = [a for a in dataset.assets if a["kind"] == "authentic" and a["brand_slug"] in index]
    vectors = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"embedding {len(assets)} references", total=len(assets))
        for start in range(0, len(assets), 32):
            chunk = assets[start : start + 32]
            vectors.append(embedder.embed_references([dataset.open_image(a["image"]) for a in chunk]))
            bar.update(task, advance=len(chunk))
    brand = np.array([index[a["brand_slug"]] for a in assets], dtype=np.int64)
    return Gallery(np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), np.float32), brand, slugs)


def embed_photo_regions(
    embedder: Embedder, dataset: Dataset, records: Sequence[dict[str, Any]], sizes: Sequence[int], progress: bool = True
) -> list[dict[int, np.ndarray]]:
    """Per listing, its photos' region embeddings ``(I, R, dim)`` at each input size (one backbone pass per size)."""
    out = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"embedding the photos of {len(records)} listings", total=len(records))
        for rec in records:
            images = [dataset.open_image(p) for p in rec["images"]]
            out.append({s: embedder.embed_regions_at(images, s) for s in sizes})
            bar.update(task, advance=1)
    return out


def known_mark_slugs(dataset: Dataset, limit: int | None = None, seed: int = 0) -> list[str]:
    """The simple-icons marks of the known-marks bank: neither held out nor a brand of ``dataset`` (registered or
    not, any split), sorted; ``limit`` keeps a seeded sample of them."""
    in_data = {b["slug"] for b in dataset.brands}
    slugs = [i.slug for i in render.list_icons() if i.slug not in in_data and not is_heldout_brand(i.slug)]
    if limit is not None and limit < len(slugs):
        slugs = sorted(np.random.default_rng(seed).choice(slugs, size=limit, replace=False).tolist())
    return slugs


def embed_known_marks(embedder: Embedder, slugs: Sequence[str], progress: bool = True) -> np.ndarray:
    """The marks ``slugs`` rendered as brands' references are (``render.REFERENCE_VARIANTS``) and embedded by
    ``embed_references``: ``(len(slugs) * variants, dim)``."""
    vectors = [np.zeros((0, embedder.dim), np.float32)]
    with progress_bar(progress) as bar:
        task = bar.add_task(f"embedding {len(slugs)} known marks", total=len(slugs))
        for start in range(0, len(slugs), 16):
            chunk = [render.get_icon(s) for s in slugs[start : start + 16]]
            images = [render.render_reference(icon, v).convert("RGB") for icon in chunk
                      for v in render.REFERENCE_VARIANTS]
            vectors.append(np.asarray(embedder.embed_references(images), np.float32))
            bar.update(task, advance=len(chunk))
    return np.concatenate(vectors)


def _known_marks_report(rows: Sequence[tuple[str, float, float]], n_vectors: int) -> dict[str, Any]:
    """``rows``: per listing (``hit`` / ``miss`` / ``unregistered``, best brand score, best cosine to the bank)."""
    kinds = np.array([r[0] for r in rows])
    score, known = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    keep = kinds != "miss"
    out: dict[str, Any] = {"n_vectors": n_vectors, "n_hits": int((kinds == "hit").sum()),
                           "n_unregistered": int((kinds == "unregistered").sum())}
    if out["n_hits"] and out["n_unregistered"]:
        y = kinds[keep] == "hit"
        for name, value in (("score", score), ("score_minus_known", score - known)):
            p10 = np.percentile(value[kinds == "hit"], 10)
            out[name] = {"auc_hit_vs_unregistered": round(float(roc_auc_score(y, value[keep])), 4),
                         "unregistered_above_p10": round(float(np.mean(value[kinds == "unregistered"] > p10)), 4)}
    return out


def brand_scores(regions: np.ndarray, gallery: Gallery, pool: str = "max") -> np.ndarray:
    """Each brand's photo evidence ``(n_brands,)``: best region of any photo against the brand's references, taken
    as the best reference (``max``) or the mean over them (``mean``); brands without references score -inf."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    sim = regions.reshape(-1, regions.shape[-1]).astype(np.float32) @ gallery.vectors.T  # (regions, A)
    out = np.full(len(gallery.slugs), -np.inf, np.float32)
    for b in np.unique(gallery.brand):
        cols = sim[:, gallery.brand == b]
        out[b] = (cols.max(axis=1) if pool == "max" else cols.mean(axis=1)).max()
    return out


def _variants(sizes: Sequence[int], model_sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Each size alone, the model's sizes together, and every size together."""
    out = [(s,) for s in sizes]
    for combo in (tuple(model_sizes), tuple(sizes)):
        if len(combo) > 1 and combo not in out:
            out.append(combo)
    return out


def probe(
    embedder: Embedder,
    dataset: Dataset,
    split: str = "val",
    limit: int | None = 500,
    extra_sizes: Sequence[int] = (),
    seed: int = 0,
    progress: bool = True,
    known_marks: np.ndarray | None = None,
    skip_brands: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Photo top-1 / top-5 of each variant on the split's logo listings, and with ``known_marks``
    (``embed_known_marks``) the known-marks statistics (see module docstring). Listings whose logo is one of
    ``skip_brands`` (e.g. brands a fine-tuning run trained on, ``training.finetune.trained_slugs``) are left out
    before sampling; those brands stay registered."""
    records = [r for r in dataset.listings_for(split)
               if r["images"] and (r.get("meta") or {}).get("logo_slug") not in {None, "", *skip_brands}]
    records = sample_records(records, limit, seed)
    gallery = embed_gallery(embedder, dataset, progress)
    index = {s: i for i, s in enumerate(gallery.slugs)}
    truth = [index.get(r["brand_slug"]) if r.get("brand_slug") else None for r in records]
    model_sizes = [embedder.config.preprocess.image_size, *embedder.config.regions.extra_sizes]
    sizes = list(dict.fromkeys([*model_sizes, *extra_sizes]))
    regions = embed_photo_regions(embedder, dataset, records, sizes, progress)

    # A brand's score over several sizes is the best of its per-size scores (the best region of all), so each
    # listing is scored once per size and pool, and a variant takes the maximum over its sizes.
    per_listing = [{(s, pool): brand_scores(per_size[s], gallery, pool) for s in sizes for pool in POOLS}
                   for per_size in regions]
    results: list[dict[str, Any]] = []
    listings: list[dict[str, Any]] = []
    for combo in _variants(sizes, model_sizes):
        for pool in POOLS:
            is_model = list(combo) == model_sizes and pool == "max"  # the image evidence the service computes
            hits, top5, hit_scores, unreg_scores = [], [], [], []
            confusions: collections.Counter[tuple[str, str]] = collections.Counter()
            for rec, by_size, t in zip(records, per_listing, truth):
                scores = np.max([by_size[s, pool] for s in combo], axis=0)
                best = int(np.argmax(scores))
                if t is None:
                    unreg_scores.append(float(scores[best]))
                    continue
                hits.append(best == t)
                top5.append(bool((scores > scores[t]).sum() < 5))
                if is_model:
                    listings.append({"listing_id": rec["listing_id"], "brand_slug": rec["brand_slug"],
                                     "hit": bool(best == t)})
                if best == t:
                    hit_scores.append(float(scores[best]))
                else:
                    confusions[(gallery.slugs[t], gallery.slugs[best])] += 1
            p10 = float(np.percentile(hit_scores, 10)) if hit_scores else float("nan")
            results.append({
                "sizes": list(combo), "pool": pool, "model": is_model,
                "n_registered": len(hits), "top1": round(float(np.mean(hits)), 4) if hits else None,
                "top5": round(float(np.mean(top5)), 4) if top5 else None,
                "n_unregistered": len(unreg_scores),
                "unregistered_above_p10": round(float(np.mean(np.array(unreg_scores) > p10)), 4)
                if unreg_scores else None,
                "confusions": [[a, b, n] for (a, b), n in confusions.most_common(10)],
            })
    out = {"split": split, "n_listings": len(records), "n_brands": len(gallery.slugs), "model_sizes": model_sizes,
           "variants": results, "by_scene": _by_scene(dataset, records, truth, regions, model_sizes, gallery),
           "listings": listings}
    if known_marks is not None:
        rows = []
        for by_size, t, per_size in zip(per_listing, truth, regions):
            scores = np.max([by_size[s, "max"] for s in model_sizes], axis=0)
            best = int(np.argmax(scores))
            flat = np.concatenate([per_size[s].reshape(-1, per_size[s].shape[-1]) for s in model_sizes])
            known = float((flat.astype(np.float32) @ known_marks.T).max()) if len(known_marks) else -1.0
            rows.append(("unregistered" if t is None else "hit" if best == t else "miss", float(scores[best]), known))
        out["known_marks"] = _known_marks_report(rows, len(known_marks))
    return out


def _by_scene(dataset: Dataset, records: Sequence[dict[str, Any]], truth: Sequence[int | None],
              regions: Sequence[dict[int, np.ndarray]], sizes: Sequence[int], gallery: Gallery) -> dict[str, Any]:
    """For a dataset drawn with another composer than the mock-ups (:data:`training.data.PHOTO_STYLES`): the model
    variant's top-1 with each registered brand's photo scored alone, by the scene, object or item it shows (``{}`` for
    other datasets)."""
    if (dataset.manifest.get("config") or {}).get("photo_style") in (None, "mockup"):  # or not made by training.data
        return {}
    config = DataConfig(**dataset.manifest["config"])
    hits: dict[str, list[bool]] = collections.defaultdict(list)
    for rec, t, per_size in zip(records, truth, regions):
        if t is None:
            continue
        for k, scene in enumerate(photo_scenes(rec, config)):
            scores = np.max([brand_scores(per_size[s][k : k + 1], gallery) for s in sizes], axis=0)
            hits[scene].append(int(np.argmax(scores)) == t)
    return {scene: {"n_photos": len(h), "top1": round(float(np.mean(h)), 4)} for scene, h in sorted(hits.items())}


def _print(result: dict[str, Any]) -> None:
    table = Table(title=f"brand from photo, {result['split']} ({result['n_listings']} listings, "
                        f"{result['n_brands']} registered brands)")
    for col in ("sizes", "pool", "top-1", "top-5", "unregistered > p10(hits)"):
        table.add_column(col)
    for v in result["variants"]:
        mark = " (model)" if v["model"] else ""
        table.add_row("+".join(map(str, v["sizes"])) + mark, v["pool"], str(v["top1"]), str(v["top5"]),
                      str(v["unregistered_above_p10"]))
    Console().print(table)
    if result.get("known_marks"):
        k = result["known_marks"]
        Console().print(f"known marks ({k['n_vectors']} vectors; {k['n_hits']} hits, {k['n_unregistered']} unregistered "
                        f"logos): {json.dumps({n: k.get(n) for n in ('score', 'score_minus_known')})}")
    if result.get("by_scene"):
        scenes = Table(title="model variant, each photo alone, by scene")
        for col in ("scene", "photos", "top-1"):
            scenes.add_column(col)
        for scene, row in result["by_scene"].items():
            scenes.add_row(scene, str(row["n_photos"]), str(row["top1"]))
        Console().print(scenes)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.probe --model M --data DIR [--split val] [--limit N] [--extra-sizes 512] [--weights F]
    [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="training.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model directory, 'default' or BentoML tag")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val", help="never 'test' while choosing a design")
    parser.add_argument("--limit", type=int, default=500, help="listings sampled from the split (0: all)")
    parser.add_argument("--extra-sizes", default="", help="comma-separated input sides to try beside the model's")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="safetensors of fine-tuned weights to use with MODEL's embedder config instead of its "
                             "own (e.g. a training run's finetune_weights.safetensors)")
    parser.add_argument("--references", default=None, metavar="JSON",
                        help='reference settings to try instead of the model\'s (ReferenceConfig fields), e.g. '
                             '\'{"low_res": [48]}\'')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--known-marks", action="store_true",
                        help="also score each listing against a bank of other known marks (module docstring)")
    parser.add_argument("--max-known-marks", type=int, default=0, help="a seeded sample of that bank (0: all)")
    parser.add_argument("--unseen-by", nargs="+", default=[], metavar="RUN",
                        help="only listings of brands none of these fine-tuning runs trained on (run folders with "
                             "finetune.json): a pilot's training split then has more brands to judge it on")
    parser.add_argument("--out", default=None, help="folder for probe.json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    extra = [int(s) for s in args.extra_sizes.split(",") if s.strip()]
    if any(s < 32 for s in extra):
        parser.error("--extra-sizes must be input sides >= 32 px")
    if args.weights:  # the model's embedder config with other fine-tuned weights (a run's finetune_weights)
        from training.finetune import load_finetune_weights

        embedder_config, _ = load_embedder_weights(args.model)
        embedder = create_embedder(embedder_config, load_finetune_weights(args.weights))
        version = json.loads((resolve_model_path(args.model) / "model.json").read_text())["version"]
    else:
        bundle = load_model(args.model)
        embedder, version = bundle.embedder, bundle.version
    if args.references:
        try:
            embedder.config.references = dataclasses.replace(embedder.config.references,
                                                              **json.loads(args.references))
        except (ValueError, TypeError) as e:
            parser.error(f"--references: {e}")
    skip: set[str] = set()  # the brands any of --unseen-by's runs trained on
    if args.unseen_by:
        from training.finetune import trained_slugs

        for run in args.unseen_by:
            try:
                skip |= trained_slugs(run)
            except (OSError, ValueError) as e:
                parser.error(f"--unseen-by: {e}")
    dataset = load_dataset(dataset_path(args.data))
    bank = None
    if args.known_marks:
        bank = embed_known_marks(embedder, known_mark_slugs(dataset, args.max_known_marks or None, args.seed),
                                 progress=not args.no_progress)
    result = probe(embedder, dataset, args.split, args.limit or None, extra, args.seed,
                   progress=not args.no_progress, known_marks=bank, skip_brands=skip)
    result["unseen_by"] = args.unseen_by
    result["model_version"] = version
    result["weights"] = args.weights
    result["references"] = embedder.references_id.split("#", 1)[1]
    _print(result)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "probe.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
