"""Brand-level data splits: held-out brands, train/val/test assignment and split fingerprints.

Splits are made per brand, never per listing, so that no brand's logo or name leaks from the
evaluation splits into training. Brands whose slug hashes to 0 mod 10 are *held out*: they are
only ever placed in ``test`` and must never be used to train or tune a model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SPLITS",
    "BrandSplit",
    "assign_brand_splits",
    "is_heldout_brand",
    "split_hash",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class BrandSplit:
    """Where one brand goes: its split, whether it is in the registry, and whether it is held out."""

    slug: str
    split: str  # one of SPLITS
    registered: bool  # False: its logo only appears on "unbranded" goods (a mark nobody protects)
    heldout: bool  # True: sha1 rule; always split "test"


def is_heldout_brand(slug: str) -> bool:
    """Return True when a brand must never be used for training or tuning (sha1(slug) % 10 == 0)."""
    return int(hashlib.sha1(slug.encode()).hexdigest(), 16) % 10 == 0


def _rank_key(seed: int, slug: str, purpose: str) -> str:
    """Seeded per-slug sort key, so a brand's rank does not depend on the input order or on other brands."""
    return hashlib.sha256(f"{seed}:{purpose}:{slug}".encode()).hexdigest()


def _quota(n: int, fraction: float) -> int:
    """Number of items out of n for a fraction; at least 1 and at most n-1 once n >= 2 and 0 < fraction < 1."""
    if n == 0 or fraction <= 0.0:
        return 0
    if fraction >= 1.0:
        return n
    k = round(n * fraction)
    if n >= 2:
        k = min(max(k, 1), n - 1)
    return k


def assign_brand_splits(
    slugs: Iterable[str],
    seed: int,
    val_fraction: float = 0.15,
    unregistered_fraction: float = 0.3,
) -> dict[str, BrandSplit]:
    """Assign every brand a split and a registered flag.

    Held-out brands (see :func:`is_heldout_brand`) always go to ``test``; a share of them is
    unregistered so that test contains distractor logos the model has never seen. The other
    brands go to ``train`` or ``val``, each with the same unregistered share, whose logos are
    used on "unbranded" listings. Counts are exact (rounded) per group, and a brand's position
    comes from a seeded hash of its slug, so the result is deterministic and independent of the
    order of ``slugs``.

    Args:
        slugs: Brand slugs (duplicates are ignored).
        seed: Seed of the assignment.
        val_fraction: Share of the non-held-out brands, registered and unregistered alike, put in ``val``.
        unregistered_fraction: Share of brands, in each of the two groups, left out of the registry.

    Returns:
        A dict from slug to :class:`BrandSplit`, ordered by slug.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 <= unregistered_fraction < 1.0:
        raise ValueError(f"unregistered_fraction must be in [0, 1), got {unregistered_fraction}")
    unique = sorted(set(slugs))
    heldout = [s for s in unique if is_heldout_brand(s)]
    seen = [s for s in unique if not is_heldout_brand(s)]

    def registered_split(group: list[str]) -> tuple[list[str], list[str]]:
        ranked = sorted(group, key=lambda s: _rank_key(seed, s, "registered"))
        k = _quota(len(ranked), unregistered_fraction)
        return ranked[k:], ranked[:k]

    result: dict[str, BrandSplit] = {}
    reg, unreg = registered_split(heldout)
    for slug in reg:
        result[slug] = BrandSplit(slug, "test", registered=True, heldout=True)
    for slug in unreg:
        result[slug] = BrandSplit(slug, "test", registered=False, heldout=True)

    reg, unreg = registered_split(seen)
    for group, registered in ((reg, True), (unreg, False)):
        # Stratified by registration so that val has both registered brands and unbranded logos.
        ranked = sorted(group, key=lambda s: _rank_key(seed, s, "val"))
        k = _quota(len(ranked), val_fraction)
        for i, slug in enumerate(ranked):
            result[slug] = BrandSplit(slug, "val" if i < k else "train", registered=registered, heldout=False)
    return dict(sorted(result.items()))


def split_hash(records: Iterable[Mapping[str, Any] | str], id_key: str = "listing_id") -> str:
    """Fingerprint a split: sha256 of its sorted ids, one per line.

    Args:
        records: Ids, or mappings holding the id under ``id_key``.
        id_key: Key of the id when records are mappings.

    Returns:
        The hex sha256 digest.
    """
    ids = sorted(r if isinstance(r, str) else str(r[id_key]) for r in records)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()
