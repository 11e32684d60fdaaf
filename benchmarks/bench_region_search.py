"""What a photo's region queries cost in the authentic index, per window layout and catalog size.

``python benchmarks/bench_region_search.py [--photos 2] [--sizes 1000,10000,30000] [--repeats 5]``

Each listing photo is searched once per region (``Embedder.boxes``) in a flat inner-product index, as
``Catalog`` builds it by default (``IDMap2,Flat``), for ``FeatureConfig.image_k`` neighbours. The region counts come
from the default model config's layout and from the same config with every window at ``stride_fraction``, so the
cost of ``RegionConfig.window_strides`` is read off one run. Vectors are random unit vectors (search cost does not
depend on their values). Prints median milliseconds per listing; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import faiss
import numpy as np

from detector.embedder import get_model_config, region_boxes
from detector.features import FeatureConfig


def region_counts() -> dict[str, int]:
    """Regions a photo is searched with: the default layout, and the same without ``window_strides``."""
    config = get_model_config("effnet-lite0-minilm")
    grids = [-(-s // 32) for s in (config.preprocess.image_size, *config.regions.extra_sizes)]  # blocks 0-5: stride 32
    plain = dataclasses.replace(config.regions, window_strides=())
    return {
        "default layout": sum(len(region_boxes(g, config.regions)) for g in grids),
        "every window at stride_fraction": sum(len(region_boxes(g, plain)) for g in grids),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=2, help="photos per listing")
    parser.add_argument("--sizes", default="1000,10000,30000", help="reference vectors in the index")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    k = FeatureConfig().image_k
    counts = region_counts()
    load = os.getloadavg()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, load average {load[0]:.2f}; "
          f"k={k}, {args.photos} photos a listing")
    print(f"{'index vectors':>13} {'layout':>34} {'queries':>8} {'ms / listing':>13}")
    for n in (int(s) for s in args.sizes.split(",")):
        base = rng.standard_normal((n, 512)).astype(np.float32)
        faiss.normalize_L2(base)
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(512))
        index.add_with_ids(base, np.arange(n, dtype=np.int64))
        for name, regions in counts.items():
            queries = rng.standard_normal((regions * args.photos, 512)).astype(np.float32)
            faiss.normalize_L2(queries)
            index.search(queries, k)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                index.search(queries, k)
                times.append(time.perf_counter() - t0)
            print(f"{n:>13} {name:>34} {len(queries):>8} {1000 * statistics.median(times):>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
