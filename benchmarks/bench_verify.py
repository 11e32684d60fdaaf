"""Cost of checking a photo's known-fake hits by keypoint matching (detector.verify), per photo.

``python benchmarks/bench_verify.py [--photos 40] [--k 3]``

Generates listing photos (training.render), stores ``k`` known-fake photos per query, and times what the featurizer
adds per photo with ``fake_verify_k = k``: ORB keypoints of the query as is and mirrored, and ``k`` RANSAC matches
(stored photos' keypoints are cached, so they are timed separately, once).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from detector.verify import KeypointVerifier
from training import render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    icons = render.list_icons()[: args.photos]
    photos = [render.compose_listing_photo(render.render_logo(icon, 256), rng, 640) for icon in icons]
    stored_photos = [render.make_reupload(p, rng) for p in photos]
    verifier = KeypointVerifier()

    t0 = time.perf_counter()
    stored = [verifier.keypoints(p) for p in stored_photos]
    t_stored = (time.perf_counter() - t0) / len(stored)
    t0 = time.perf_counter()
    counts = [verifier.verify(p, [stored[(i + j) % len(stored)] for j in range(args.k)]) for i, p in enumerate(photos)]
    t_query = (time.perf_counter() - t0) / len(photos)
    own = [c[0] for c in counts]
    others = [n for c in counts for n in c[1:]]
    print(f"{len(photos)} photos of 640 px, {args.k} known-fake hits each")
    print(f"stored photo keypoints (once per known fake, cached): {t_stored * 1000:.1f} ms")
    print(f"per query photo (keypoints as is + mirrored, {args.k} matches): {t_query * 1000:.1f} ms "
          f"({1.0 / t_query:.1f} photos/s)")
    print(f"inliers, own re-upload: median {np.median(own):.0f} (min {min(own)}); "
          f"other photos: median {np.median(others):.0f} (max {max(others)})")


if __name__ == "__main__":
    main()
