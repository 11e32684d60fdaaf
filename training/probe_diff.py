"""Paired comparison of two probes of the same listings: is arm B's photo top-1 really above arm A's?

``python -m training.probe_diff RUN_A/probe.json RUN_B/probe.json [A2 B2 ...] [--boot N] [--level L] [--seed S]``

Two ``training.probe`` runs on the same data, split, limit and seed score the same listings, so their difference is
paired: only the listings one arm names and the other misses carry it. Prints both arms' top-1 (the model variant)
over those listings, B − A with a percentile bootstrap interval, and the exact McNemar test's p-value on the
discordant listings. A validation split holds a few dozen brands with many listings each, and a brand's listings
are won or lost together (they share its references), so the bootstrap resamples brands, not listings, when the
probes name them (McNemar's test still counts listings as independent: read it as the optimistic one). A pilot's
rule such as "B ≥ A + 0.02" on 500 listings says little when that interval is ±0.03 wide or more; this shows how
wide it is. More pairs (the same split drawn by several composers) are also pooled into one difference, whose
bootstrap draws a brand's listings in every set at once: the sets share brands, so they are no independent checks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.stats import binomtest

__all__ = ["paired_difference", "compare_probes", "compare_probe_pairs", "main"]


def paired_difference(a: Sequence[bool], b: Sequence[bool], groups: Sequence[str] | None = None,
                      n_boot: int = 10_000, level: float = 0.9, seed: int = 0) -> dict[str, Any]:
    """B − A of two arms' hits on the same listings (``a[i]``, ``b[i]``: listing i named by arm A, B). With
    ``groups`` (listing i's brand) the bootstrap draws whole groups, else single listings."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape or not len(a):
        raise ValueError(f"paired hits need two equally long, non-empty lists (got {a.shape} and {b.shape})")
    if groups is None:
        group = np.arange(len(a))
    elif len(groups) != len(a):
        raise ValueError(f"{len(groups)} groups for {len(a)} listings")
    else:
        group = np.unique(np.asarray(groups), return_inverse=True)[1]
    diff = b.astype(np.float64) - a.astype(np.float64)
    # a resample takes each group w times (multinomial weights); its difference is over the listings it holds
    sums, counts = np.bincount(group, weights=diff), np.bincount(group).astype(np.float64)
    n_groups = len(counts)
    weights = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)
    means = (weights @ sums) / (weights @ counts)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    p = binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"n": len(a), "n_groups": n_groups, "top1_a": round(float(a.mean()), 4),
            "top1_b": round(float(b.mean()), 4), "difference": float(diff.mean()),
            "interval": [round(float(lo), 4), round(float(hi), 4)], "level": level, "only_a": only_a,
            "only_b": only_b, "mcnemar_p": float(p)}


def _paired_rows(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[bool], list[bool], list[str | None]]:
    """The listings two ``probe.json`` results share, by id: ids, A's and B's hits, each listing's brand (or None)."""
    hits = []
    for result in (a, b):
        if "listings" not in result:
            raise ValueError("a probe.json without per-listing hits (written before training.probe kept them)")
        hits.append({row["listing_id"]: bool(row["hit"]) for row in result["listings"]})
    if hits[0].keys() != hits[1].keys():
        raise ValueError(f"the probes scored different listings ({len(hits[0])} and {len(hits[1])}, "
                         f"{len(hits[0].keys() & hits[1].keys())} shared): same --data, --split, --limit and --seed?")
    brand = {row["listing_id"]: row.get("brand_slug") for row in a["listings"]}
    ids = sorted(hits[0])
    return ids, [hits[0][i] for i in ids], [hits[1][i] for i in ids], [brand[i] for i in ids]


def compare_probes(a: dict[str, Any], b: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """:func:`paired_difference` of two ``probe.json`` results, their listings matched by id, grouped by brand
    when the probes name the listings' brands."""
    return compare_probe_pairs([(a, b)], **kwargs)


def compare_probe_pairs(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], **kwargs: Any) -> dict[str, Any]:
    """:func:`paired_difference` pooled over several pairs of probes (e.g. the same validation listings drawn by
    several composers): one difference over all their listings, with a bootstrap that draws a brand's listings in
    every pair together (or a listing id's, when the probes name no brands), since the sets share brands and listings
    and are no independent checks."""
    ids, a, b, brands = [], [], [], []
    for pa, pb in pairs:
        pair_ids, hits_a, hits_b, pair_brands = _paired_rows(pa, pb)
        ids += pair_ids
        a += hits_a
        b += hits_b
        brands += pair_brands
    by_brand = all(brands)
    return {**paired_difference(a, b, brands if by_brand else ids, **kwargs),
            "resampled": "brands" if by_brand else "listings"}


def _line(d: dict[str, Any]) -> str:
    return (f"{d['n']} listings, resampled by {d['resampled']} ({d['n_groups']}): "
            f"top-1 A {d['top1_a']:.3f}, B {d['top1_b']:.3f}; "
            f"B - A {d['difference']:+.3f} ({d['level']:.0%} interval {d['interval'][0]:+.3f} to "
            f"{d['interval'][1]:+.3f}); "
            f"named by A only {d['only_a']}, by B only {d['only_b']}, McNemar p = {d['mcnemar_p']:.3g}")


def main(argv: list[str] | None = None) -> int:
    """``python -m training.probe_diff A/probe.json B/probe.json [A2 B2 ...] [--boot N] [--level L] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m training.probe_diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("probes", type=Path, nargs="+", metavar="A B",
                        help="arm A's and arm B's probe.json (the difference is B - A); more pairs (e.g. the same "
                             "split drawn by other composers) are compared each and pooled")
    parser.add_argument("--boot", type=int, default=10_000, help="bootstrap resamples (of brands, else listings)")
    parser.add_argument("--level", type=float, default=0.9, help="two-sided level of the interval")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.probes) % 2:
        parser.error(f"{len(args.probes)} probe files: give them in pairs, A then B")
    kwargs = {"n_boot": args.boot, "level": args.level, "seed": args.seed}
    try:
        pairs = [(json.loads(args.probes[k].read_text()), json.loads(args.probes[k + 1].read_text()))
                 for k in range(0, len(args.probes), 2)]
        results = [compare_probes(a, b, **kwargs) for a, b in pairs]
        pooled = compare_probe_pairs(pairs, **kwargs) if len(pairs) > 1 else None
    except (OSError, ValueError) as e:
        parser.error(str(e))
    for k, d in enumerate(results):
        print(("" if len(pairs) == 1 else f"{args.probes[2 * k + 1]}: ") + _line(d))
    if pooled is not None:
        print(f"pooled over {len(pairs)} pairs: " + _line(pooled))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
