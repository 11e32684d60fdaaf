"""Brand-from-title matching on some splits, fast: for text-matcher experiments (no model, no images).

``python -m training.title_probe --data DIR --splits train,val [--registry split|all] [--show 20]``
``python -m training.title_probe --fresh-seeds 28-37 --splits test`` (titles of seeds never generated: no images)

Builds a :class:`~detector.text.BrandTextMatcher` from a registry and matches every title of the chosen splits:

- ``--registry split``: the registered brands of those splits with their names and aliases, as training and
  evaluation register them;
- ``--registry all``: also every simple-icons brand outside the held-out split by its title, and the splits'
  unregistered brands, as production would have them (every brand registered): plain product and colour words that
  are brand names ("Orange", "Sky", "Canvas", "Kit") then compete with the listing's own brand.

A title's brand is the matcher's best non-``generic`` match, as the featurizer reads it. Prints, for titles that name
the listing's brand plainly and for disguised ones (``meta.obfuscation``), the share named right and the share
naming another brand, and how many titles of listings without a brand (generic products, unregistered logos)
name one; ``--show N`` lists that many errors of each kind. Never pass ``test`` while choosing a design.
"""

from __future__ import annotations

import argparse
import collections
from typing import Any, Sequence

import simple_icons_pack as sip
from rich.console import Console
from rich.table import Table

from detector.text import BrandTextMatcher
from training.data import DataConfig, load_dataset, plan_listings
from training.splits import is_heldout_brand

__all__ = ["registry_names", "title_probe", "main"]


def registry_names(brands: Sequence[dict[str, Any]], splits: set[str], registry: str) -> dict[str, list[str]]:
    """slug -> [name, *aliases] of the brands the matcher knows (see the module notes for ``registry``)."""
    names: dict[str, list[str]] = {}
    if registry == "all":
        for icon in (v for k, v in vars(sip).items() if k.startswith("SI_")):
            if not is_heldout_brand(icon.slug):
                names[icon.slug] = [icon.title]
    for b in brands:
        if b["split"] in splits and (b["registered"] or registry == "all"):
            names[b["slug"]] = [b["name"], *b["aliases"]]
    return names


def title_probe(records: Sequence[dict[str, Any]], names: dict[str, list[str]]) -> dict[str, Any]:
    """Counts and errors of title matching over ``records`` (listing dicts) against ``names``."""
    matcher = BrandTextMatcher(list(names.items()))
    counts: collections.Counter[str] = collections.Counter()
    errors: dict[str, list[tuple[str, str, str]]] = collections.defaultdict(list)
    for r in records:
        top = next((m for m in matcher.match(r["title"]) if not m.generic), None)
        slug = r.get("brand_slug")
        if slug is not None and slug in names:
            group = "disguised" if (r.get("meta") or {}).get("obfuscation") else "plain"
            counts[f"{group}_n"] += 1
            if top is not None and top.brand_id == slug:
                counts[f"{group}_right"] += 1
            elif top is not None:
                counts[f"{group}_wrong"] += 1
                errors[f"{group}_wrong"].append((slug, r["title"], top.brand_id))
            else:
                errors[f"{group}_none"].append((slug, r["title"], "-"))
        elif slug is None and (r.get("meta") or {}).get("kind") in ("generic", "unregistered_logo"):
            counts["unbranded_n"] += 1
            if top is not None and top.brand_id != (r.get("meta") or {}).get("logo_slug"):
                counts["unbranded_named"] += 1
                errors["unbranded_named"].append(("-", r["title"], top.brand_id))
    return {"counts": dict(counts), "rates": _rates(counts), "errors": dict(errors)}


def _rates(counts: collections.Counter[str]) -> dict[str, float]:
    rates = {}
    for group in ("plain", "disguised"):
        n = counts[f"{group}_n"]
        rates[f"{group}_top1"] = counts[f"{group}_right"] / n if n else float("nan")
        rates[f"{group}_other_brand"] = counts[f"{group}_wrong"] / n if n else float("nan")
    n = counts["unbranded_n"]
    rates["unbranded_named"] = counts["unbranded_named"] / n if n else float("nan")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="dataset folder")
    source.add_argument("--fresh-seeds", metavar="A-B",
                        help="plan the listings of data seeds A..B (no images; --n-brands brands each) and match "
                             "their titles, one registry per seed, counts pooled: a check on titles no design has "
                             "seen (use --splits test, and seeds no earlier check used)")
    parser.add_argument("--n-brands", type=int, default=600, help="brands per planned seed (--fresh-seeds)")
    parser.add_argument("--splits", default="train,val", help="comma-separated; never 'test' while choosing a design")
    parser.add_argument("--registry", choices=("split", "all"), default="split")
    parser.add_argument("--show", type=int, default=0, help="errors listed per kind")
    args = parser.parse_args(argv)
    splits = set(args.splits.split(","))
    if args.data:
        dataset = load_dataset(args.data)
        sources, label = [(dataset.brands, dataset.listings)], args.data
    else:
        lo, _, hi = args.fresh_seeds.partition("-")
        seeds = range(int(lo), int(hi or lo) + 1)
        sources = [plan_listings(DataConfig(n_brands=args.n_brands, seed=s)) for s in seeds]
        label = f"seeds {seeds.start}-{seeds.stop - 1}"
    counts: collections.Counter[str] = collections.Counter()
    errors: dict[str, list[tuple[str, str, str]]] = collections.defaultdict(list)
    n_names = 0
    for brands, listings in sources:
        names = registry_names(brands, splits, args.registry)
        n_names += len(names)
        one = title_probe([r for r in listings if r["split"] in splits], names)
        counts.update(one["counts"])
        for kind, rows in one["errors"].items():
            errors[kind] += rows
    rates = _rates(counts)
    table = Table(title=f"titles of {args.splits} of {label}, registry '{args.registry}' "
                        f"({n_names / len(sources):.0f} brands)")
    for col in ("titles", "n", "brand named", "another brand named"):
        table.add_column(col, justify="right" if col != "titles" else "left")
    for group in ("plain", "disguised"):
        table.add_row(group, str(counts.get(f"{group}_n", 0)), f"{rates[f'{group}_top1']:.4f}",
                      f"{rates[f'{group}_other_brand']:.4f}")
    table.add_row("no brand (generic, unregistered logo)", str(counts.get("unbranded_n", 0)), "",
                  f"{rates['unbranded_named']:.4f}")
    console = Console()
    console.print(table)
    for kind, rows in sorted(errors.items()):
        for slug, title, named in rows[: args.show]:
            console.print(f"{kind:16} {slug:20} {title!r} -> {named}", markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
