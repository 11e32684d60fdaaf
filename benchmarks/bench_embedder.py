"""Throughput of ``Embedder.embed_image_regions`` per image-tower runtime, and the latency of ``Scorer.score``.

Prints figures; asserts nothing. Variants run interleaved in each round, so background load on the machine hits
them alike; compare variants within one run, not across runs or machines.

    python benchmarks/bench_embedder.py [--photos 64] [--batch 16] [--rounds 3] [--no-score]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from detector.embedder import Embedder, create_embedder
from detector.listing import Listing
from detector.onnx_runtime import OnnxImageTower, export_image_tower_cached
from detector.vectors import l2_normalize
from training.render import compose_listing_photo, list_icons, render_logo

log = logging.getLogger(__name__)


def render_photos(n: int, size: int = 320, seed: int = 0) -> list[Image.Image]:
    """``n`` marketplace-style listing photos, each with a real logo on a product mock-up."""
    rng = np.random.default_rng(seed)
    icons = list_icons()
    picks = rng.choice(len(icons), size=n, replace=False)
    return [compose_listing_photo(render_logo(icons[int(i)], 192), rng, size=size) for i in picks]


@torch.inference_mode()
def embed_regions_contiguous(embedder: Embedder, images: Sequence[Image.Image]) -> np.ndarray:
    """``embed_image_regions``'s torch path at the main size with NCHW-contiguous tensors (the library uses
    channels_last)."""
    visual = embedder.model.visual
    out = []
    for i in range(0, len(images), embedder.batch_size):
        x = torch.stack([embedder.preprocess(im.convert("RGB")) for im in images[i : i + embedder.batch_size]])
        out.append(visual.head(embedder.pool_regions(visual.trunk.forward_features(x))).float().numpy())
    return l2_normalize(np.concatenate(out))


def preprocess_only(embedder: Embedder, images: Sequence[Image.Image]) -> np.ndarray:
    """The PIL -> tensor work every variant does, on its own."""
    return torch.stack([embedder.preprocess(im.convert("RGB")) for im in images]).numpy()


def bench_runtimes(embedder: Embedder, photos: list[Image.Image], onnx_path: Path, rounds: int) -> None:
    """img/s of each runtime over ``photos``; variants interleaved per round."""
    trunk = embedder.model.visual.trunk

    def eager_contiguous(images: Sequence[Image.Image]) -> np.ndarray:
        trunk.to(memory_format=torch.contiguous_format)
        try:
            return embed_regions_contiguous(embedder, images)
        finally:
            trunk.to(memory_format=torch.channels_last)

    def channels_last(images: Sequence[Image.Image], main_size_only: bool = False) -> np.ndarray:
        embedder.image_runtime = None
        return embedder.embed_image_regions(images, main_size_only=main_size_only)

    embedder.use_onnx(onnx_path)  # the library default: idle ORT threads do not spin
    towers = {"default": embedder.image_runtime,
              "spinning": OnnxImageTower(onnx_path, embedder.model_id, allow_spinning=True)}
    embedder.image_runtime = None

    def onnx(images: Sequence[Image.Image], tower: str = "default", main_size_only: bool = False) -> np.ndarray:
        embedder.image_runtime = towers[tower]
        try:
            return embedder.embed_image_regions(images, main_size_only=main_size_only)
        finally:
            embedder.image_runtime = None

    sizes = "+".join(str(s) for s in (embedder.config.preprocess.image_size, *embedder.config.regions.extra_sizes))
    cfg = embedder.config  # the same model with query-side fingerprint views (fingerprints.query_subgrids)
    viewed = Embedder(embedder.model, embedder.preprocess, embedder.tokenizer, dataclasses.replace(
        cfg, fingerprints=dataclasses.replace(cfg.fingerprints, query_subgrids=(0.9,))), version=embedder.version,
        batch_size=embedder.batch_size, fingerprint_whitening=embedder.fingerprint_whitening)

    variants: dict[str, Callable[[Sequence[Image.Image]], np.ndarray]] = {
        "preprocess only (PIL -> tensor)": lambda ims: preprocess_only(embedder, ims),
        "torch eager, contiguous NCHW, main size": eager_contiguous,
        "torch eager, channels_last, main size": lambda ims: channels_last(ims, main_size_only=True),
        f"torch eager, channels_last, {sizes} (default)": channels_last,
        f"torch eager, channels_last, {sizes}, 0.9 sub-grid views": lambda ims: viewed.embed_query_regions(ims)[0],
        "ONNX Runtime fp32 (CPU EP), main size": lambda ims: onnx(ims, main_size_only=True),
        f"ONNX Runtime fp32 (CPU EP), {sizes}": onnx,
        "ONNX Runtime fp32, spinning threads, main size": lambda ims: onnx(ims, "spinning", main_size_only=True),
    }
    outputs: dict[str, np.ndarray] = {}
    for name, fn in variants.items():  # warm-up: one batch each (allocators, ORT session and kernel selection)
        fn(photos[: embedder.batch_size])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            outputs[name] = fn(photos)
            times[name].append(time.perf_counter() - t0)
    reference = outputs[f"torch eager, channels_last, {sizes} (default)"]
    print(f"\nembed_image_regions: {len(photos)} photos {photos[0].size[0]}x{photos[0].size[1]}, batch "
          f"{embedder.batch_size}, {rounds} rounds, torch threads {torch.get_num_threads()}, "
          f"ORT intra-op threads {towers['default'].num_threads}")
    print(f"{'variant':52s} {'median img/s':>12s} {'best img/s':>11s} {'max|diff| vs default':>22s}")
    for name, ts in times.items():
        out = outputs[name]  # main-size variants are compared on the main size's (leading) regions
        diff = "" if name.startswith("preprocess") else f"{np.abs(out - reference[:, : out.shape[1]]).max():.2e}"
        print(f"{name:52s} {len(photos) / statistics.median(ts):12.1f} {len(photos) / min(ts):11.1f} {diff:>22s}")


def bench_score(photos: list[Image.Image], onnx_cache: Path, n_brands: int, repeats: int) -> None:
    """Median latency of one ``Scorer.score`` call (a 2-photo listing), OCR off/on, torch/ONNX image tower."""
    from detector.bundle import load_model
    from detector.scoring import Scorer
    from indexes.catalog import Catalog

    bundle = load_model("default")
    icons = list_icons()[:n_brands]
    listing = Listing("bench-1", title="hoodie 1:1 quality, brand new", price=25.0, currency="USD",
                      images=photos[:2])
    with tempfile.TemporaryDirectory() as home, Catalog.open(home, bundle.embedder) as catalog:
        ids, _ = catalog.add_brands([{"name": icon.title} for icon in icons])
        for brand_id, icon in zip(ids, icons):
            catalog.add_asset(brand_id, "authentic", render_logo(icon, 160, background="FFFFFF").convert("RGB"))
        onnx_path = export_image_tower_cached(bundle.embedder, onnx_cache)
        print(f"\nScorer.score: one listing with {len(listing.images)} photos, catalog of {n_brands} brands, "
              f"median of {repeats} after a warm-up")
        for ocr in (False, True):
            scorer_bundle = dataclasses.replace(
                bundle, feature_config=dataclasses.replace(bundle.feature_config, ocr=ocr))
            scorer = Scorer(scorer_bundle, catalog)
            for runtime in ("torch", "onnx"):
                if runtime == "onnx":
                    bundle.embedder.use_onnx(onnx_path)
                else:
                    bundle.embedder.image_runtime = None
                scorer.score(listing)
                latencies, stages = [], []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    result = scorer.score(listing)
                    latencies.append(time.perf_counter() - t0)
                    stages.append(result.timings_ms)
                stage_ms = "  ".join(f"{k} {statistics.median(s[k] for s in stages):.0f}" for k in ("embed", "ocr"))
                print(f"  OCR {'on ' if ocr else 'off'}  image tower {runtime:5s}  "
                      f"{1000 * statistics.median(latencies):8.1f} ms   (stage medians, ms: {stage_ms})")
        bundle.embedder.image_runtime = None


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--score-repeats", type=int, default=5)
    parser.add_argument("--brands", type=int, default=30, help="brands in the scoring catalog")
    parser.add_argument("--no-score", action="store_true", help="skip the Scorer.score timing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    load = os.getloadavg()
    print(f"CPU cores {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"(background load slows every variant; compare within this run)")
    t0 = time.perf_counter()
    photos = render_photos(args.photos)
    print(f"rendered {len(photos)} photos in {time.perf_counter() - t0:.1f} s")
    embedder = create_embedder(batch_size=args.batch)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        onnx_path = export_image_tower_cached(embedder, cache)
        print(f"ONNX export {time.perf_counter() - t0:.1f} s, {onnx_path.stat().st_size / 1e6:.1f} MB")
        bench_runtimes(embedder, photos, onnx_path, args.rounds)
        if not args.no_score:
            bench_score(photos, Path(cache), args.brands, args.score_repeats)


if __name__ == "__main__":
    main()
