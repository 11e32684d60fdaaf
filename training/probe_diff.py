"""Paired comparison of two probes of the same listings: is arm B's photo top-1 really above arm A's?

``python -m training.probe_diff RUN_A/probe.json RUN_B/probe.json [--boot 10000] [--level 0.9] [--seed 0]``

Two ``training.probe`` runs on the same data, split, limit and seed score the same listings, so their difference is
paired: only the listings one arm names and the other misses carry it. Prints both arms' top-1 (the model variant)
over those listings, B − A with a percentile bootstrap interval, and the exact McNemar test's p-value on the
discordant listings. A validation split holds a few dozen brands with many listings each, and a brand's listings
are won or lost together (they share its references), so the bootstrap resamples brands, not listings, when the
probes name them (McNemar's test still counts listings as independent: read it as the optimistic one). A pilot's
rule such as "B ≥ A + 0.02" on 500 listings says little when that interval is ±0.03 wide or more; this shows how
wide it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.stats import binomtest

__all__ = ["paired_difference", "compare_probes", "main"]


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


def compare_probes(a: dict[str, Any], b: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """:func:`paired_difference` of two ``probe.json`` results, their listings matched by id, grouped by brand
    when the probes name the listings' brands."""
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
    groups = [brand[i] for i in ids] if all(brand.values()) else None
    return paired_difference([hits[0][i] for i in ids], [hits[1][i] for i in ids], groups, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.probe_diff A/probe.json B/probe.json [--boot N] [--level L] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m training.probe_diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="arm A's probe.json")
    parser.add_argument("b", type=Path, help="arm B's probe.json (the difference is B - A)")
    parser.add_argument("--boot", type=int, default=10_000, help="bootstrap resamples (of brands, else listings)")
    parser.add_argument("--level", type=float, default=0.9, help="two-sided level of the interval")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        d = compare_probes(json.loads(args.a.read_text()), json.loads(args.b.read_text()),
                           n_boot=args.boot, level=args.level, seed=args.seed)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    unit = "listings" if d["n_groups"] == d["n"] else f"brands ({d['n_groups']})"
    print(f"{d['n']} listings, resampled by {unit}: top-1 A {d['top1_a']:.3f}, B {d['top1_b']:.3f}; "
          f"B - A {d['difference']:+.3f} ({d['level']:.0%} interval {d['interval'][0]:+.3f} to "
          f"{d['interval'][1]:+.3f}); "
          f"named by A only {d['only_a']}, by B only {d['only_b']}, McNemar p = {d['mcnemar_p']:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
