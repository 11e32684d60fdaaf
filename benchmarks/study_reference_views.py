"""Which views of a reference should its one vector average? A study on one dataset split.

``python benchmarks/study_reference_views.py DATASET [--split val] [--limit 500] [--model default]
[--variant '{"low_res": [48], "sizes": [160]}' ...]``

Embeds the photos of ``--limit`` sampled logo listings once (every region at the model's input sizes), then, per
variant (``ReferenceConfig`` fields over the model's own; the model's setting is always the first row), embeds every
registered brand's references with :meth:`Embedder.embed_references` and scores brands by photo evidence alone, as
``training.probe`` does (best region x best reference). Prints, per variant: photo top-1 over registered brands'
listings, the share of unregistered logos scoring above the 10th percentile of correct matches, and the share of
listings named right *and* above a threshold that lets 10 % of the unregistered logos through (an operating point
that charges a view for the look-alikes it raises). The figures in ``docs/results.md`` ("more views in each
reference vector") were measured by scratch code computing the same thing (500 listings per split). Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
from rich.console import Console
from rich.table import Table

from detector.bundle import load_model
from training.data import load_dataset
from training.evaluate import sample_records
from training.probe import brand_scores, embed_gallery, embed_photo_regions

DEFAULT_VARIANTS = ('{"low_res": [48]}', '{"sizes": [160]}', '{"low_res": [48], "sizes": [160]}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="val", help="never 'test' while choosing a design")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--model", default="default")
    parser.add_argument("--variant", action="append", default=None, metavar="JSON",
                        help="ReferenceConfig fields to try (repeatable)")
    args = parser.parse_args()
    embedder = load_model(args.model).embedder
    dataset = load_dataset(args.data)
    records = [r for r in dataset.listings_for(args.split) if r["images"] and (r.get("meta") or {}).get("logo_slug")]
    records = sample_records(records, args.limit, 0)
    sizes = [embedder.config.preprocess.image_size, *embedder.config.regions.extra_sizes]
    regions = [np.concatenate([r[s] for s in sizes], axis=1) for r in embed_photo_regions(embedder, dataset, records,
                                                                                           sizes)]
    own = embedder.config.references
    table = Table(title=f"{args.data} {args.split}: {len(records)} logo listings")
    for col in ("references", "photo top-1", "unregistered > p10(hits)", "named above u90"):
        table.add_column(col)
    for variant in ("{}", *(args.variant or DEFAULT_VARIANTS)):
        embedder.config.references = dataclasses.replace(own, **json.loads(variant))
        gallery = embed_gallery(embedder, dataset)
        index = {s: i for i, s in enumerate(gallery.slugs)}
        right, unregistered = [], []
        for rec, reg in zip(records, regions):
            scores = brand_scores(reg, gallery)
            best = int(np.argmax(scores))
            truth = index.get(rec.get("brand_slug"))
            if truth is None:
                unregistered.append(scores[best])
            else:
                right.append(scores[best] if best == truth else -np.inf)
        right_arr = np.array(right)
        hits = right_arr[np.isfinite(right_arr)]
        p10, u90 = np.percentile(hits, 10), np.percentile(unregistered, 90)
        table.add_row(variant if variant != "{}" else "the model's own", f"{len(hits) / len(right_arr):.3f}",
                      f"{np.mean(np.array(unregistered) > p10):.3f}", f"{np.mean(right_arr > u90):.3f}")
    embedder.config.references = own
    Console().print(table)


if __name__ == "__main__":
    main()
