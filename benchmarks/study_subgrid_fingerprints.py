"""Would query-side sub-grid fingerprints meet re-framed re-uploads? A study on one dataset split.

``python benchmarks/study_subgrid_fingerprints.py DATASET [--split val] [--model default] [--fresh 400]``

A known fake's stored fingerprint is the shipped one (``Embedder.embed_fingerprints``). Each query photo gets its
usual fingerprint plus, per sub-grid side ``s`` in a variant, one fingerprint of every ``s`` x ``s`` sub-grid of its
feature map (same layout: the whole sub-grid and two 0.6 windows per axis at 0 and 0.3 of its side, whitened as
usual), all from the one backbone pass. A photo's similarity to a known fake is the best over its views. Prints, per
variant: re-upload listings whose most distinctive known-fake hit (largest margin over that photo's runner-up) is of
the right brand, the re-used photo's similarity to its own known fake (5th percentile, median), and fresh listings'
best known-fake similarity and margin (95th percentiles). Written before the service had it, as a measurement to
decide whether building it was worth a classifier refit; the service's path is now ``fingerprints.query_subgrids``
(``Embedder.embed_query_regions``; ``tests/test_embedder.py`` checks it gives the fingerprints computed here).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
import torch.nn.functional as F

from detector.bundle import load_model
from training.data import load_dataset

VARIANTS = ((), (9,), (8,), (9, 8), (7,))  # sub-grid sides (cells of the 10 x 10 map at 320 px)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--split", default="val")
    ap.add_argument("--model", default="default")
    ap.add_argument("--fresh", type=int, default=400, help="fresh (not re-upload) listings sampled")
    args = ap.parse_args()

    ds = load_dataset(args.dataset)
    emb = load_model(args.model).embedder
    visual = emb.model.visual
    known = {a["asset_id"]: a for a in ds.assets_for(args.split, "known_fake")}
    records = ds.listings_for(args.split)
    reuploads = [r for r in records
                 if (r["meta"] or {}).get("kind") == "reupload" and r["meta"]["reupload_of"] in known]
    fresh = [r for r in records if (r["meta"] or {}).get("kind") != "reupload"]
    random.Random(0).shuffle(fresh)
    fresh = fresh[: args.fresh]

    @torch.inference_mode()
    def feature_maps(images):
        out = []
        for i in range(0, len(images), 16):
            x = torch.stack([emb.preprocess(im.convert("RGB")) for im in images[i : i + 16]])
            out.append(visual.trunk.forward_features(x.contiguous(memory_format=torch.channels_last)))
        return torch.cat(out)

    @torch.inference_mode()
    def raw_fingerprint(fmap, side, ox, oy):
        sub = fmap[:, :, oy : oy + side, ox : ox + side]
        k, step = round(0.6 * side), round(0.3 * side)
        windows = [sub.mean((2, 3))]
        windows += [sub[:, :, y : y + k, x : x + k].mean((2, 3)) for y in (0, step) for x in (0, step)]
        parts = torch.stack([F.normalize(visual.head(w).float(), dim=-1) for w in windows], 1)
        return F.normalize(parts.flatten(1), dim=-1).numpy()

    def query_views(fmap, sides):
        grid = fmap.shape[-1]
        views = [raw_fingerprint(fmap, grid, 0, 0)]
        for s in sides:
            views += [raw_fingerprint(fmap, s, ox, oy) for oy in range(grid - s + 1) for ox in range(grid - s + 1)]
        raw = np.stack(views, 1)
        return emb.fingerprint_whitening(raw.reshape(-1, raw.shape[-1])).reshape(*raw.shape[:2], -1)

    def photos(rows):
        images, owner = [], []
        for j, r in enumerate(rows):
            images += [ds.open_image(p) for p in r["images"]]
            owner += [j] * len(r["images"])
        return images, np.asarray(owner)

    ids = list(known)
    brand_of = np.asarray([known[a]["brand_slug"] for a in ids])
    stored = emb.embed_fingerprints([ds.open_image(known[a]["image"]) for a in ids])
    re_images, re_owner = photos(reuploads)
    fresh_images, _ = photos(fresh)
    re_maps, fresh_maps = feature_maps(re_images), feature_maps(fresh_images)
    print(f"{args.dataset} {args.split}: {len(ids)} known fakes, {len(reuploads)} re-uploads, {len(fresh)} fresh")
    for sides in VARIANTS:
        re_sims = (query_views(re_maps, sides) @ stored.T).max(1)  # (photos, known fakes): best view
        fresh_sims = np.sort((query_views(fresh_maps, sides) @ stored.T).max(1), axis=1)
        named, own = 0, []
        for j, r in enumerate(reuploads):
            rows = np.flatnonzero(re_owner == j)
            best = max(rows, key=lambda p: np.diff(np.sort(re_sims[p])[-2:])[0])
            named += brand_of[int(np.argmax(re_sims[best]))] == r["brand_slug"]
            own.append(re_sims[rows[0], ids.index(r["meta"]["reupload_of"])])  # photo 0 is the re-used one
        margins = fresh_sims[:, -1] - fresh_sims[:, -2]
        print(f"sub-grids {list(sides) or 'none'}: named {named}/{len(reuploads)}, own similarity p5 "
              f"{np.percentile(own, 5):.3f} median {np.median(own):.3f}; fresh best p95 "
              f"{np.percentile(fresh_sims[:, -1], 95):.3f}, margin p95 {np.percentile(margins, 95):.3f}", flush=True)


if __name__ == "__main__":
    main()
