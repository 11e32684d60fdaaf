"""Synthetic marketplace listings built around real brand logos (simple-icons), and their loader.

``generate_dataset`` writes a self-describing folder (see ``docs/data_format.md``):

* ``brands.jsonl``   one row per brand: names, aliases, authorised sellers, price floor, split.
* ``assets.jsonl``   reference images of registered brands: clean logo renders ("authentic") and
  photos of confirmed counterfeit listings ("known_fake") that later re-uploads copy.
* ``listings.jsonl`` listings labelled ``counterfeit`` | ``authentic`` | ``unbranded``.
* ``manifest.json``  config, counts, split hashes, format version, package versions.
* ``images/``        JPEG files referenced by relative path.

Splits are by brand (``training.splits``): held-out brands, their logos and their names appear
only in ``test``. The text of every listing is planned in one process from seeded generators; its
images are rendered from per-image seeds, so the output is byte-identical for a config whatever
the number of workers.

Run ``python -m training.data --out DIR --n-brands 40 --seed 0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import re
import shutil
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from training import render, render3d, scenes, snapshots
from training.splits import SPLITS, BrandSplit, assign_brand_splits, is_heldout_brand, split_hash

__all__ = [
    "FORMAT_VERSION",
    "LABELS",
    "PHOTO_STYLES",
    "DataConfig",
    "Dataset",
    "generate_dataset",
    "plan_listings",
    "prepare_dataset_dir",
    "load_dataset",
    "photo_only_copy",
    "photo_scenes",
    "photo_only_copies",
    "text_only_copy",
    "text_only_copies",
    "main",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1.0"
LABELS: tuple[str, ...] = ("counterfeit", "authentic", "unbranded")
# The composers besides the mock-ups, by photo style: how each draws a photo (same signature) and names the scene,
# object or item a photo's seed draws.
_COMPOSERS: dict[str, tuple[Callable[..., Image.Image], Callable[[int], str]]] = {
    "scenes": (scenes.compose_scene_photo, scenes.scene_of),
    "render3d": (render3d.compose_3d_photo, render3d.object_of),
    "snapshots": (snapshots.compose_snapshot_photo, snapshots.kind_of),
}
PHOTO_STYLES: tuple[str, ...] = ("mockup", *_COMPOSERS)


@dataclass
class DataConfig:
    """What to generate. Same config -> byte-identical files."""

    seed: int = 0  # seeds brand sampling, splits, text and images
    n_brands: int | None = None  # simple-icons brands to use (held-out share kept at ~10 %); None = all ~3,470
    listings_per_brand: int = 10  # listings around each registered brand (counterfeit, authentic, compatible)
    listings_per_unregistered_brand: int = 4  # "unbranded" listings showing an unregistered brand's logo
    generic_listings_per_brand: float = 1.0  # logo-less generic listings, per sampled brand
    counterfeit_fraction: float = 0.45  # of a registered brand's listings
    authentic_fraction: float = 0.40  # of a registered brand's listings
    compatible_fraction: float = 0.15  # of a registered brand's listings: "case for <Brand>" on generic goods
    official_seller_fraction: float = 0.5  # of authentic listings sold by an authorised seller (rest: resale)
    resale_discount_fraction: float = 0.35  # of resale listings priced at 0.75-0.95 x the brand's floor
    generic_cheap_fraction: float = 0.5  # of generic listings that are cheap and say "generic"/"unbranded"
    known_fake_fraction: float = 0.2  # of a brand's counterfeits whose photo becomes a known-fake asset (>= 1)
    reuploads_per_known_fake: int = 2  # extra counterfeit listings re-using each known fake's photo
    images_per_listing: tuple[int, int] = (1, 3)  # inclusive range of photos per listing
    photo_size: int = 320  # side of listing photos, pixels
    reference_size: int = 256  # side of authentic reference assets, pixels
    jpeg_quality: int = 92  # quality of written files (photos were already compressed at 35-95)
    val_fraction: float = 0.15  # of non-held-out brands (and of generic listings) in "val"
    unregistered_fraction: float = 0.3  # of brands left out of the registry (their logos become "unbranded")
    generic_test_fraction: float = 0.2  # of logo-less generic listings in "test"
    price_floor_range: tuple[float, float] = (15.0, 600.0)  # log-uniform per-brand minimum genuine price, USD
    # How listing photos are drawn: "mockup" (training.render, what models are trained on), "scenes" (training.scenes,
    # a second composer for checking that results carry over to photos made another way), "render3d"
    # (training.render3d, a third: the mark as a texture on a ray-cast 3-D object) or "snapshots" (training.snapshots,
    # a fourth: a phone snapshot of a flat printed item placed by a homography). Text, prices, sellers, reference
    # assets and file names do not depend on it.
    photo_style: str = "mockup"

    def __post_init__(self) -> None:
        """Validate ranges (a dict loaded from JSON gives lists for tuples)."""
        self.images_per_listing = tuple(self.images_per_listing)  # type: ignore[assignment]
        self.price_floor_range = tuple(self.price_floor_range)  # type: ignore[assignment]
        total = self.counterfeit_fraction + self.authentic_fraction + self.compatible_fraction
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"counterfeit + authentic + compatible fractions must sum to 1, got {total}")
        lo, hi = self.images_per_listing
        if not 1 <= lo <= hi:
            raise ValueError(f"images_per_listing must satisfy 1 <= lo <= hi, got {self.images_per_listing}")
        if self.n_brands is not None and self.n_brands < 2:
            raise ValueError("n_brands must be at least 2 (or None for all)")
        if self.listings_per_brand < 1:
            raise ValueError("listings_per_brand must be >= 1")
        if self.photo_style not in PHOTO_STYLES:
            raise ValueError(f"unknown photo_style {self.photo_style!r}; known: {', '.join(PHOTO_STYLES)}")


# ----------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------

_PRODUCT_NAMES: dict[str, tuple[str, ...]] = {
    "tshirt": ("T-Shirt", "Tee", "Graphic Tee", "Crew Neck T-Shirt", "Cotton T-Shirt"),
    "hoodie": ("Hoodie", "Pullover Hoodie", "Hooded Sweatshirt", "Fleece Hoodie"),
    "box": ("Gift Set", "Boxed Gift Set", "Collector's Box", "Starter Kit"),
    "tote": ("Tote Bag", "Canvas Tote", "Shopping Bag", "Shoulder Tote"),
    "cap": ("Baseball Cap", "Snapback Cap", "Dad Hat", "Trucker Hat"),
    "phone_case": ("Phone Case", "Silicone Phone Case", "Protective Case", "Slim Phone Cover"),
    "sneaker": ("Sneakers", "Running Shoes", "Trainers", "Low Top Sneakers"),
    "mug": ("Coffee Mug", "Ceramic Mug", "Travel Mug"),
    "backpack": ("Backpack", "Laptop Backpack", "Travel Backpack"),
    "bottle": ("Water Bottle", "Insulated Bottle", "Sports Bottle"),
}
_SIZES: dict[str, tuple[str, ...]] = {
    "tshirt": ("S", "M", "L", "XL", "XXL"),
    "hoodie": ("S", "M", "L", "XL", "XXL"),
    "cap": ("One Size", "Adjustable"),
    "phone_case": ('6.1"', '6.7"'),
    "sneaker": ("US 8", "US 9", "US 10", "US 11", "EU 42", "EU 44"),
    "mug": ("11oz", "15oz"),
    "backpack": ("20L", "30L"),
    "bottle": ("500ml", "750ml", "1L"),
}
_COLOURS: dict[str, tuple[int, int, int]] = {
    "Black": (25, 25, 28),
    "White": (240, 240, 236),
    "Navy": (28, 40, 82),
    "Red": (196, 30, 45),
    "Grey": (140, 140, 145),
    "Beige": (214, 196, 160),
    "Olive": (104, 110, 52),
    "Pink": (236, 140, 170),
    "Royal Blue": (40, 80, 200),
    "Green": (40, 140, 70),
    "Yellow": (240, 200, 40),
    "Brown": (110, 70, 40),
    "Burgundy": (110, 20, 40),
    "Sky Blue": (120, 180, 230),
    "Orange": (240, 120, 30),
    "Purple": (110, 60, 160),
}
_ADJECTIVES = ("Classic", "Premium", "Vintage", "Limited Edition", "Lightweight", "Everyday", "Retro", "Essential",
               "New")
_APPAREL_ADJECTIVES = ("Unisex", "Men's", "Women's", "Oversized", "Slim Fit")
_APPAREL = ("tshirt", "hoodie", "cap", "sneaker")
# Descriptions any seller writes, whatever the label: text alone must not give every listing away.
_NEUTRAL_DESCRIPTIONS = (
    "Brand new, ships within 2 business days.",
    "{colour} {product}{size_text}. Ships from the US.",
    "Fast shipping, returns accepted.",
    "Great gift idea. Message me with any questions.",
    "See photos for details. Smoke-free home.",
)
_REPLICA_TERMS: dict[str, tuple[str, ...]] = {
    "replica": ("High-end replica, looks just like the real one.", "Replica made with premium materials."),
    "1:1": ("1:1 copy of the original design.", "1:1 quality, every detail matches."),
    "AAA": ("AAA grade materials, same as original.", "AAA quality, checked before shipping."),
    "dupe": ("The perfect dupe for the {brand} {product}.", "Best dupe on the market, nobody can tell."),
    "mirror quality": ("Mirror quality, indistinguishable from retail.", "Mirror quality stitching and logo."),
    "inspired by": ("Inspired by the {brand} original.", "Design inspired by {brand}, fraction of the price."),
    "high copy": ("High copy version, top grade.", "High copy with original packaging look."),
    "super clone": ("Super clone, best version available.", "Super clone batch, same factory details."),
    "OEM quality": ("OEM quality from the same factory.", "OEM quality, unbranded box."),
    "master copy": ("Master copy, premium finish.",),
    "UA": ("UA version from the original factory line.",),
}
_SELLER_WORDS = (("lucky", "best", "top", "global", "happy", "smart", "urban", "prime", "golden", "fast", "sunny",
                  "daily", "trendy", "mega", "star"),
                 ("deals", "outlet", "shop", "store", "mart", "trading", "goods", "bazaar", "finds", "supply",
                  "market", "boutique", "corner", "depot", "hub"))
_OFFICIAL_SUFFIXES = ("store", "outlet", "authorized-us", "authorized-eu", "authorized-uk", "shop")
_COMPANY_SUFFIXES = (" Inc.", " Official", " Store", " Co.")
# Cyrillic letters that render like Latin ones (written as escapes so the source shows which is which).
_HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445",
               "y": "\u0443", "i": "\u0456", "j": "\u0458", "s": "\u0455", "A": "\u0410", "B": "\u0412",
               "E": "\u0415", "K": "\u041a", "M": "\u041c", "H": "\u041d", "O": "\u041e", "P": "\u0420",
               "C": "\u0421", "T": "\u0422", "X": "\u0425"}
_LEET = {"o": "0", "O": "0", "i": "1", "I": "1", "l": "1", "e": "3", "E": "3", "a": "4", "A": "@", "s": "5",
         "S": "$", "t": "7", "T": "7", "g": "9", "B": "8"}


def _stable_int(*parts: object) -> int:
    """A 64-bit integer from a sha256 of the parts (seeds that survive Python's hash randomisation)."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16], 16)


def _rng(seed: int, *parts: object) -> np.random.Generator:
    """A generator seeded by the config seed and a purpose, independent of generation order."""
    return np.random.default_rng([seed, _stable_int(*parts)])


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """Pick one element uniformly."""
    return options[int(rng.integers(len(options)))]


def _ascii_fold(text: str) -> str:
    """Strip accents: 'Citroën' -> 'Citroen'."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _aliases(title: str, slug: str, rng: np.random.Generator) -> list[str]:
    """Other names a brand goes by: compact, slug, accent-free, '&' spelt out, a company-style variant."""
    compact = re.sub(r"[^0-9a-z]", "", _ascii_fold(title).lower())
    candidates = [
        compact if len(compact) >= 2 and re.search("[a-z]", compact) else "",
        slug,
        _ascii_fold(title),
        title.replace("&", " and ").replace("  ", " "),
        title.replace(" ", "-") if " " in title else "",
        title + _pick(rng, _COMPANY_SUFFIXES),
    ]
    seen = {title.lower()}
    out = []
    for cand in candidates:
        cand = cand.strip()
        if cand and cand.lower() not in seen:
            seen.add(cand.lower())
            out.append(cand)
    return out


def _price(value: float, rng: np.random.Generator) -> float:
    """Round a price the way sellers do: often to .99, else to cents."""
    value = float(value)
    if value >= 5 and rng.random() < 0.6:
        return round(max(1.0, round(value)) - 0.01, 2)
    return round(max(0.5, value), 2)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Sample log-uniformly in [lo, hi]."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# ----------------------------------------------------------------------------------------------
# Brand-name obfuscation
# ----------------------------------------------------------------------------------------------


def _letter_positions(text: str, table: dict[str, str] | None = None) -> list[int]:
    """Indexes of letters in text (restricted to keys of table when given)."""
    return [i for i, ch in enumerate(text) if ch.isalpha() and (table is None or ch in table)]


def _substitute(text: str, table: dict[str, str], rng: np.random.Generator) -> str:
    """Replace 1-2 characters found in table."""
    positions = _letter_positions(text, table)
    chars = list(text)
    count = min(len(positions), int(rng.integers(1, 3)))
    for i in rng.choice(positions, size=count, replace=False):
        chars[int(i)] = table[chars[int(i)]]
    return "".join(chars)


def _longest_word(text: str) -> tuple[int, int]:
    """Span of the longest word, which carries the obfuscation in multi-word names."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    return max(spans, key=lambda s: s[1] - s[0])


def _typo(text: str, rng: np.random.Generator) -> str:
    """Swap two adjacent letters, drop one, or double one."""
    letters = _letter_positions(text)
    ops = ["double"]
    if len(letters) >= 4:
        ops.append("drop")
    swappable = [i for i in letters if i + 1 < len(text) and text[i + 1].isalpha() and text[i] != text[i + 1]]
    if swappable:
        ops.append("swap")
    op = _pick(rng, ops)
    if op == "swap":
        i = int(_pick(rng, swappable))
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    i = int(_pick(rng, letters))
    return text[:i] + text[i + 1:] if op == "drop" else text[:i] + text[i] + text[i:]


def _obfuscate(name: str, rng: np.random.Generator) -> tuple[str, str] | None:
    """Disguise a brand name as counterfeiters do; returns (text, kind) or None when the name is too short."""
    letters = _letter_positions(name)
    if len(letters) < 2:
        return None
    kinds = ["spacing", "dots", "typo"]
    if _letter_positions(name, _HOMOGLYPHS):
        kinds.append("homoglyph")
    if _letter_positions(name, _LEET):
        kinds.append("leetspeak")
    kind = _pick(rng, kinds)
    start, end = _longest_word(name)
    word = name[start:end]
    if kind == "homoglyph":
        out = _substitute(name, _HOMOGLYPHS, rng)
    elif kind == "leetspeak":
        out = _substitute(name, _LEET, rng)
    elif kind == "spacing":
        out = name[:start] + " ".join(word) + name[end:]
    elif kind == "dots":
        if rng.random() < 0.5 or len(word) < 3:
            dotted = ".".join(word)
        else:
            cut = int(rng.integers(1, len(word)))
            dotted = word[:cut] + "." + word[cut:]
        out = name[:start] + dotted + name[end:]
    else:
        out = _typo(name, rng)
    if out == name:  # e.g. spacing a one-letter longest word
        out = _typo(name, rng)
        kind = "typo"
    return (out, kind) if out != name else None


# ----------------------------------------------------------------------------------------------
# Planning: brands, listings and image jobs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ImageJob:
    """Everything needed to render one image file, independently of any other job."""

    path: str  # relative to the dataset root
    seed: int  # per-image seed
    kind: str  # "photo" | "reference" | "reupload"
    logo_slug: str | None = None  # logo printed on the product (photo) or rendered (reference)
    product: str | None = None
    product_colour: tuple[int, int, int] | None = None
    caption: str | None = None
    studio: bool = False
    variant: str | None = None  # reference variant
    source: str | None = None  # re-upload: relative path of the known-fake photo it copies


@dataclass
class _Plan:
    """The full dataset before any image is rendered."""

    brands: list[dict[str, Any]] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[_ImageJob] = field(default_factory=list)


def _sample_slugs(config: DataConfig) -> list[str]:
    """Choose the brands, keeping the held-out share of the whole catalogue (and at least one held-out brand)."""
    slugs = [icon.slug for icon in render.list_icons()]
    if config.n_brands is None or config.n_brands >= len(slugs):
        return slugs
    heldout = [s for s in slugs if is_heldout_brand(s)]
    seen = [s for s in slugs if not is_heldout_brand(s)]
    n_heldout = max(1, round(config.n_brands * len(heldout) / len(slugs)))
    rng = _rng(config.seed, "sample-brands")
    chosen = list(rng.choice(heldout, size=n_heldout, replace=False))
    chosen += list(rng.choice(seen, size=config.n_brands - n_heldout, replace=False))
    return sorted(str(s) for s in chosen)


def _seller_pool(seed: int, n: int) -> list[str]:
    """Marketplace seller ids shared by resellers, counterfeiters and generic sellers."""
    rng = _rng(seed, "sellers")
    pool: list[str] = []
    while len(pool) < n:
        sid = f"{_pick(rng, _SELLER_WORDS[0])}-{_pick(rng, _SELLER_WORDS[1])}-{int(rng.integers(10, 1000))}"
        if sid not in pool:
            pool.append(sid)
    return pool


def _brand_record(icon: render.Icon, split: BrandSplit, config: DataConfig) -> dict[str, Any]:
    """One row of brands.jsonl."""
    rng = _rng(config.seed, "brand", icon.slug)
    extra = rng.choice(_OFFICIAL_SUFFIXES, size=int(rng.integers(1, 3)), replace=False)
    lo, hi = config.price_floor_range
    return {
        "slug": icon.slug,
        "name": icon.title,
        "aliases": _aliases(icon.title, icon.slug, rng),
        "authorized_sellers": [f"{icon.slug}-official", *(f"{icon.slug}-{s}" for s in extra)],
        "min_price": round(_log_uniform(rng, lo, hi), 2),
        "currency": "USD",
        "hex": icon.hex.upper(),
        "split": split.split,
        "registered": split.registered,
        "heldout": split.heldout,
    }


class _Planner:
    """Plans listings, assets and image jobs with seeded generators."""

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.plan = _Plan()
        self.sellers: list[str] = []

    # -- helpers ---------------------------------------------------------------------------------

    def _listing_id(self, *parts: object) -> str:
        """Opaque listing id (no brand name in it, so ids cannot leak labels)."""
        return "L" + hashlib.sha1(":".join(map(str, (self.config.seed, *parts))).encode()).hexdigest()[:12]

    def _product(self, rng: np.random.Generator, kinds: Sequence[str] = render.PRODUCT_KINDS) -> dict[str, Any]:
        """Pick a product kind, its name in the title, a colour, a size and an adjective that fits it."""
        kind = _pick(rng, kinds)
        colour = _pick(rng, list(_COLOURS))
        sizes = _SIZES.get(kind)
        adjectives = _ADJECTIVES + _APPAREL_ADJECTIVES if kind in _APPAREL else _ADJECTIVES
        return {
            "kind": kind,
            "name": _pick(rng, _PRODUCT_NAMES[kind]),
            "colour": colour,
            "size": _pick(rng, sizes) if sizes else None,
            "adjective": _pick(rng, adjectives),
        }

    @staticmethod
    def _neutral_description(rng: np.random.Generator, p: dict[str, Any]) -> str:
        """A description that says nothing about authenticity."""
        size_text = f", size {p['size']}" if p["size"] else ""
        return _pick(rng, _NEUTRAL_DESCRIPTIONS).format(colour=p["colour"], product=p["name"].lower(),
                                                        size_text=size_text)

    def _add_images(
        self,
        listing: dict[str, Any],
        rng: np.random.Generator,
        product: dict[str, Any],
        logo_slug: str | None,
        studio_p: float,
        captions: Sequence[str | None],
        first_reupload_of: str | None = None,
    ) -> None:
        """Plan the listing's photos (same product in each) and record their paths."""
        lo, hi = self.config.images_per_listing
        n = int(rng.integers(lo, hi + 1))
        studio = bool(rng.random() < studio_p)  # one seller, one photo style
        paths = []
        for k in range(n):
            path = f"images/listings/{listing['listing_id']}_{k}.jpg"
            seed = _stable_int(self.config.seed, "image", listing["listing_id"], k)
            caption = captions[k] if k < len(captions) else None
            if k == 0 and first_reupload_of is not None:
                job = _ImageJob(path, seed, "reupload", source=first_reupload_of, caption=caption)
            else:
                job = _ImageJob(path, seed, "photo", logo_slug=logo_slug, product=product["kind"],
                                product_colour=_COLOURS[product["colour"]], caption=caption, studio=studio)
            self.plan.jobs.append(job)
            paths.append(path)
        listing["images"] = paths

    @staticmethod
    def _meta(**values: Any) -> dict[str, Any]:
        """Listing meta with every key present (None when not applicable), for uniform columns."""
        keys = ("kind", "hard_case", "signals", "obfuscation", "shown_name", "replica_terms", "discount",
                "reupload_of", "known_fake_asset", "logo_slug", "mentioned_brand", "product", "product_colour")
        unknown = set(values) - set(keys)
        if unknown:
            raise KeyError(f"unknown meta keys {sorted(unknown)}")
        meta: dict[str, Any] = dict.fromkeys(keys)
        meta.update(values)
        return meta

    @staticmethod
    def _listing(
        listing_id: str, title: str, description: str, price: float, seller: str, label: str,
        brand_slug: str | None, split: str, meta: dict[str, Any],
    ) -> dict[str, Any]:
        """One row of listings.jsonl (images filled in by _add_images)."""
        return {
            "listing_id": listing_id,
            "title": title,
            "description": description,
            "price": price,
            "currency": "USD",
            "seller_id": seller,
            "images": [],
            "label": label,
            "brand_slug": brand_slug,
            "split": split,
            "meta": meta,
        }

    @staticmethod
    def _branded_title(rng: np.random.Generator, name: str, p: dict[str, Any]) -> str:
        """A product title that names the brand."""
        size, adjective = p["size"], p["adjective"]
        templates = [
            f"{name} {adjective} {p['name']} {p['colour']}",
            f"{name} {p['name']} - {p['colour']}" + (f", {size}" if size else ""),
            f"{adjective} {name} {p['name']}, {p['colour']}" + (f", Size {size}" if size else ""),
            f"{name} {p['colour']} {p['name']}" + (f" {size}" if size else ""),
        ]
        return _pick(rng, templates)

    # -- registered brands -----------------------------------------------------------------------

    def plan_brand(self, brand: dict[str, Any]) -> None:
        """Plan the listings of one registered brand, its authentic assets and its known fakes."""
        cfg = self.config
        slug, name, split = brand["slug"], brand["name"], brand["split"]
        rng = _rng(cfg.seed, "listings", slug)
        for variant in render.REFERENCE_VARIANTS:
            path = f"images/assets/{slug}_{variant}.jpg"
            self.plan.jobs.append(_ImageJob(path, 0, "reference", logo_slug=slug, variant=variant))
            self.plan.assets.append({
                "asset_id": f"A-{slug}-{variant}",
                "kind": "authentic",
                "brand_slug": slug,
                "image": path,
                "title": f"{name} logo ({variant})",
                "source": "simple-icons",
                "split": split,
            })
        labels = rng.choice(
            ["counterfeit", "authentic", "compatible"],
            size=cfg.listings_per_brand,
            p=[cfg.counterfeit_fraction, cfg.authentic_fraction, cfg.compatible_fraction],
        )
        counterfeits = []
        for i, kind in enumerate(labels):
            lid = self._listing_id(slug, i)
            if kind == "authentic":
                self._plan_authentic(rng, brand, lid)
            elif kind == "compatible":
                self._plan_compatible(rng, brand, lid)
            else:
                counterfeits.append(self._plan_counterfeit(rng, brand, lid))
        if not counterfeits or cfg.known_fake_fraction <= 0:
            return
        n_known = max(1, round(len(counterfeits) * cfg.known_fake_fraction))
        for j, idx in enumerate(sorted(rng.choice(len(counterfeits), size=n_known, replace=False))):
            original = counterfeits[int(idx)]
            asset_id = f"KF-{original['listing_id']}"
            original["meta"]["known_fake_asset"] = asset_id
            self.plan.assets.append({
                "asset_id": asset_id,
                "kind": "known_fake",
                "brand_slug": slug,
                "image": original["images"][0],
                "title": original["title"],
                "source": f"listing:{original['listing_id']}",
                "split": split,
            })
            for r in range(cfg.reuploads_per_known_fake):
                lid = self._listing_id(slug, "reupload", j, r)
                self._plan_counterfeit(rng, brand, lid, reupload_of=(asset_id, original))

    def _plan_authentic(self, rng: np.random.Generator, brand: dict[str, Any], lid: str) -> None:
        """Official store, or resale (legal) at a normal price or a modest discount."""
        name, floor = brand["name"], brand["min_price"]
        p = self._product(rng)
        hard_case = None
        if rng.random() < self.config.official_seller_fraction:
            kind, seller = "official", _pick(rng, brand["authorized_sellers"])
            ratio = rng.uniform(1.0, 1.6)
            title = _pick(rng, [f"Official {name} {p['name']} ({p['colour']})", self._branded_title(rng, name, p)])
            desc = _pick(rng, [
                f"Genuine {name} {p['name'].lower()} in {p['colour'].lower()}. "
                "Ships from the official store with full warranty.",
                f"Brand new with tags, sourced directly from {name}. Free returns within 30 days.",
                f"Authentic {name} merchandise. Every order includes a certificate of authenticity.",
                self._neutral_description(rng, p),
            ])
            studio_p = 0.7
        else:
            kind, seller = "resale", _pick(rng, self.sellers)
            if rng.random() < self.config.resale_discount_fraction:
                ratio, hard_case = rng.uniform(0.75, 0.95), "authentic_resale_discount"
            else:
                ratio = rng.uniform(1.0, 1.8)
            title = _pick(rng, [
                f"Pre-owned {name} {p['name']} {p['colour']}" + (f" {p['size']}" if p["size"] else ""),
                f"{name} {p['name']} - barely used, {p['colour']}",
                f"Authentic {name} {p['name']}, like new",
                self._branded_title(rng, name, p),
            ])
            desc = _pick(rng, [
                f"Bought at the {name} store last year, used a few times. Receipt available on request.",
                f"Selling my {name} {p['name'].lower()}; excellent condition, no flaws.",
                "Gift I never used, still in the original packaging. Priced to sell quickly.",
                self._neutral_description(rng, p),
            ])
            studio_p = 0.15
        price = _price(floor * ratio, rng)
        listing = self._listing(lid, title, desc, price, seller, "authentic", brand["slug"], brand["split"],
                                self._meta(kind=kind, hard_case=hard_case, discount=round(price / floor, 3),
                                           logo_slug=brand["slug"], product=p["kind"], product_colour=p["colour"]))
        captions = [_pick(rng, ["NEW", name, "In stock"])] if rng.random() < 0.12 else []
        self._add_images(listing, rng, p, brand["slug"], studio_p, captions)
        self.plan.listings.append(listing)

    def _plan_compatible(self, rng: np.random.Generator, brand: dict[str, Any], lid: str) -> None:
        """Hard case: generic accessory whose text legitimately names a registered brand; no logo in the photo."""
        name = brand["name"]
        p = self._product(rng, ("phone_case", "box", "backpack", "bottle"))
        product = {
            "phone_case": _pick(rng, ["Slim Phone Case", "Protective Case", "Shockproof Cover"]),
            "box": _pick(rng, ["Charger Kit", "Cable Organizer Set", "Replacement Parts Set"]),
            "backpack": _pick(rng, ["Laptop Backpack", "Travel Backpack"]),
            "bottle": _pick(rng, ["Water Bottle", "Bottle Holder"]),
        }[p["kind"]]
        title = _pick(rng, [
            f"{product} for {name} - {p['colour']}",
            f"{product} Compatible with {name}, {p['colour']}",
            f"{p['colour']} {product}, works with {name} devices",
            f"Universal {product} (fits {name})",
        ])
        desc = _pick(rng, [
            f"Third-party accessory, not made by or affiliated with {name}. Works with most {name} models.",
            f"Compatible with {name}. Generic product, no brand logo.",
            f"Designed to fit {name} products. {name} is a trademark of its owner.",
        ])
        price = _price(_log_uniform(rng, 5.0, 45.0), rng)
        listing = self._listing(lid, title, desc, price, _pick(rng, self.sellers), "unbranded", None, brand["split"],
                                self._meta(kind="compatible", hard_case="compatible_mention",
                                           mentioned_brand=brand["slug"], product=p["kind"],
                                           product_colour=p["colour"]))
        self._add_images(listing, rng, p, None, 0.2, [])
        self.plan.listings.append(listing)

    def _plan_counterfeit(
        self,
        rng: np.random.Generator,
        brand: dict[str, Any],
        lid: str,
        reupload_of: tuple[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A counterfeit with 1-3 evidence signals (a re-upload may carry no text signal at all)."""
        name, floor = brand["name"], brand["min_price"]
        base = ["discount", "replica", "obfuscation"]
        if reupload_of is None:
            n_signals = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
            signals = [str(s) for s in rng.choice(base, size=n_signals, replace=False)]
        else:
            n_signals = int(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2]))
            signals = ["reupload", *(str(s) for s in rng.choice(base, size=n_signals, replace=False))]
        shown, obfuscation = name, None
        if "obfuscation" in signals:
            result = _obfuscate(name, rng)
            if result is None:  # name too short to disguise: swap in another signal
                signals.remove("obfuscation")
                spare = [s for s in ("replica", "discount") if s not in signals]
                if spare or not signals:
                    signals.append(spare[0] if spare else "replica")
            else:
                shown, obfuscation = result
        if reupload_of is None:
            p = self._product(rng)
        else:  # same photo, so same product
            orig_meta = reupload_of[1]["meta"]
            p = self._product(rng, (orig_meta["product"],))
            p["colour"] = orig_meta["product_colour"]
        terms = [str(t) for t in rng.choice(list(_REPLICA_TERMS), size=int(rng.integers(1, 3)), replace=False)] \
            if "replica" in signals else []
        title = self._branded_title(rng, shown, p)
        if terms:
            term = terms[0]
            title = _pick(rng, [f"{term} {title}", f"{title} {term}", f"[{term}] {title}", f"{title} - {term}"])
        elif rng.random() < 0.25:
            title = f"{title} 100% Original"  # counterfeiters claim authenticity too
        # Counterfeits whose evidence is meant to be the photo or the name alone mostly read like anyone else's.
        neutral_p = 0.9 if set(signals) <= {"reupload", "obfuscation"} else 0.4
        sentences = [self._neutral_description(rng, p) if rng.random() < neutral_p else _pick(rng, [
            f"Top quality {p['name'].lower()}, looks exactly like the real thing. Fast worldwide shipping.",
            "Great price, huge stock available. Wholesale orders welcome.",
            "Brand new, no box. Ships in 10-20 days.",
            f"Hot item this season, {p['colour'].lower()} colour in stock.",
        ])]
        for term in terms:
            sentences.append(_pick(rng, _REPLICA_TERMS[term]).format(brand=shown, product=p["name"].lower()))
        desc = " ".join(sentences[:2])
        ratio = rng.uniform(0.08, 0.5) if "discount" in signals else rng.uniform(1.0, 1.5)
        price = _price(floor * ratio, rng)
        hard_case = None
        text_signals = sorted(set(signals) - {"reupload"})
        if reupload_of is not None and not text_signals:
            hard_case = "counterfeit_image_only"
        elif reupload_of is None and signals == ["replica"]:
            hard_case = "counterfeit_replica_normal_price"
        elif reupload_of is None and signals == ["obfuscation"]:
            hard_case = "counterfeit_obfuscated_title_only"
        listing = self._listing(
            lid, title, desc, price, _pick(rng, self.sellers), "counterfeit", brand["slug"], brand["split"],
            self._meta(kind="reupload" if reupload_of else "counterfeit", hard_case=hard_case,
                       signals=sorted(signals), obfuscation=obfuscation, shown_name=shown, replica_terms=terms,
                       discount=round(price / floor, 3), reupload_of=reupload_of[0] if reupload_of else None,
                       logo_slug=brand["slug"], product=p["kind"], product_colour=p["colour"]),
        )
        captions: list[str | None] = []
        roll = rng.random()
        if terms and roll < 0.35:
            captions.append(terms[0].upper() if len(terms[0]) <= 4 else terms[0].title())
        elif "discount" in signals and roll < 0.6:
            captions.append(_pick(rng, [f"${price:.0f}", f"-{round((1 - ratio) * 100)}%", "SALE"]))
        elif roll < 0.12:
            captions.append(_pick(rng, ["HOT", shown, "SALE"]))
        source = reupload_of[1]["images"][0] if reupload_of else None
        self._add_images(listing, rng, p, brand["slug"], 0.15, captions, first_reupload_of=source)
        self.plan.listings.append(listing)
        return listing

    # -- unbranded -------------------------------------------------------------------------------

    def plan_unregistered_brand(self, brand: dict[str, Any]) -> None:
        """Unbranded listings showing an unregistered brand's logo (a mark nobody protects here)."""
        rng = _rng(self.config.seed, "listings", brand["slug"])
        name = brand["name"]
        for i in range(self.config.listings_per_unregistered_brand):
            p = self._product(rng)
            if rng.random() < 0.65:
                title = self._branded_title(rng, name, p)
            else:
                title = f"{p['adjective']} {p['colour']} {p['name']}"
            desc = _pick(rng, [f"{p['name']} with printed logo. Ships within 2 days.",
                               f"Quality {p['name'].lower()}, {p['colour'].lower()}. Limited stock.",
                               "Comfortable and durable, great as a gift.",
                               self._neutral_description(rng, p)])
            price = _price(brand["min_price"] * rng.uniform(0.3, 1.5), rng)
            listing = self._listing(self._listing_id(brand["slug"], i), title, desc, price,
                                    _pick(rng, self.sellers), "unbranded", None, brand["split"],
                                    self._meta(kind="unregistered_logo", logo_slug=brand["slug"], product=p["kind"],
                                               product_colour=p["colour"]))
            captions = [_pick(rng, ["SALE", f"${price:.0f}", "NEW"])] if rng.random() < 0.2 else []
            self._add_images(listing, rng, p, brand["slug"], 0.2, captions)
            self.plan.listings.append(listing)

    def plan_generic(self, n: int) -> None:
        """Logo-less generic goods; half cheap and labelled "generic" (a hard case for price rules)."""
        cfg = self.config
        rng = _rng(cfg.seed, "generic")
        for i in range(n):
            lid = self._listing_id("generic", i)
            u = _stable_int(cfg.seed, "generic-split", lid) / 2**64
            split = "test" if u < cfg.generic_test_fraction else (
                "val" if u < cfg.generic_test_fraction + cfg.val_fraction else "train")
            p = self._product(rng)
            size = f" {p['size']}" if p["size"] else ""
            if rng.random() < cfg.generic_cheap_fraction:
                hard_case = "generic_cheap"
                marker = _pick(rng, ["Generic", "Unbranded", "No Logo", "Plain", "Blank"])
                title = _pick(rng, [f"{marker} {p['name']} {p['colour']}{size}",
                                    f"{p['colour']} {p['name']} - {marker}",
                                    f"{marker} {p['adjective']} {p['name']}, {p['colour']}"])
                desc = _pick(rng, ["Generic item, not affiliated with any brand. Cheap and cheerful.",
                                   f"Blank {p['name'].lower()}, perfect for custom printing.",
                                   "Simple everyday item with no branding. Bulk discounts available."])
                price = _price(_log_uniform(rng, 2.0, 15.0), rng)
            else:
                hard_case = None
                title = _pick(rng, [f"{p['adjective']} {p['name']} {p['colour']}{size}",
                                    f"{p['colour']} {p['name']}{size}"])
                desc = _pick(rng, [f"Comfortable {p['name'].lower()} for everyday use.",
                                   "Durable materials, machine washable where applicable. Ships fast.",
                                   self._neutral_description(rng, p)])
                price = _price(_log_uniform(rng, 8.0, 90.0), rng)
            listing = self._listing(lid, title, desc, price, _pick(rng, self.sellers), "unbranded", None, split,
                                    self._meta(kind="generic", hard_case=hard_case, product=p["kind"],
                                               product_colour=p["colour"]))
            captions = [_pick(rng, ["SALE", f"${price:.2f}", "CHEAP"])] if rng.random() < 0.25 else []
            self._add_images(listing, rng, p, None, 0.2, captions)
            self.plan.listings.append(listing)


def photo_scenes(listing: dict[str, Any], config: DataConfig) -> list[str]:
    """What each of a generated listing's photos shows: its :data:`training.scenes.SCENES` name ("scenes" style),
    :data:`training.render3d.OBJECTS` name ("render3d") or :data:`training.snapshots.KINDS` name ("snapshots"),
    "reupload" for a re-used known fake's photo; empty for the "mockup" style. Recomputed from the photo seeds, so the
    listing files are the same in every photo style."""
    if config.photo_style not in _COMPOSERS:
        return []
    name_of = _COMPOSERS[config.photo_style][1]
    return ["reupload" if k == 0 and listing["meta"].get("reupload_of") is not None
            else name_of(_stable_int(config.seed, "image", listing["listing_id"], k))
            for k in range(len(listing["images"]))]


def plan_listings(config: DataConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The brands and listings ``generate_dataset`` would write for ``config``, without rendering an image
    (seconds): for text-only studies on fresh seeds, e.g. ``training.title_probe --fresh-seeds``."""
    plan = _make_plan(config)
    return plan.brands, plan.listings


def _make_plan(config: DataConfig) -> _Plan:
    """Plan brands, assets, listings and image jobs (text only, fast)."""
    slugs = _sample_slugs(config)
    splits = assign_brand_splits(slugs, config.seed, config.val_fraction, config.unregistered_fraction)
    planner = _Planner(config)
    planner.sellers = _seller_pool(config.seed, max(40, 3 * len(slugs)))
    for slug in slugs:
        planner.plan.brands.append(_brand_record(render.get_icon(slug), splits[slug], config))
    for brand in planner.plan.brands:
        if brand["registered"]:
            planner.plan_brand(brand)
        else:
            planner.plan_unregistered_brand(brand)
    planner.plan_generic(round(config.generic_listings_per_brand * len(slugs)))
    return planner.plan


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

_LOGO_RENDER_SIZE = 256  # logos are rendered once at this size, then scaled per photo


def _render_job(job: _ImageJob, root: str, photo_size: int, reference_size: int, quality: int,
                photo_style: str = "mockup") -> None:
    """Render one image job to disk (top-level so that worker processes can run it)."""
    rng = np.random.default_rng(job.seed)
    if job.kind == "reference":
        assert job.logo_slug is not None and job.variant is not None
        img = render.render_reference(render.get_icon(job.logo_slug), job.variant, reference_size)
    elif job.kind == "reupload":
        assert job.source is not None
        with Image.open(Path(root, job.source)) as original:
            img = render.make_reupload(original, rng, caption=job.caption)
    else:
        logo = render.render_logo(render.get_icon(job.logo_slug), _LOGO_RENDER_SIZE) if job.logo_slug else None
        if photo_style in _COMPOSERS:
            compose = _COMPOSERS[photo_style][0]
            img = compose(logo, rng, photo_size, product_color=job.product_colour, caption=job.caption,
                          studio=job.studio)
        else:
            img = render.compose_listing_photo(logo, rng, photo_size, product=job.product,
                                               product_color=job.product_colour, caption=job.caption,
                                               studio=job.studio)
    out = Path(root, job.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="JPEG", quality=quality)


def _render_all(jobs: list[_ImageJob], root: Path, config: DataConfig, progress: bool, workers: int) -> None:
    """Render photos and references first, then re-uploads (which read the known-fake photos)."""
    phases = [[j for j in jobs if j.kind != "reupload"], [j for j in jobs if j.kind == "reupload"]]
    args = (str(root), config.photo_size, config.reference_size, config.jpeg_quality, config.photo_style)
    with tqdm(total=len(jobs), desc="images", unit="img", disable=not progress) as bar:
        if workers <= 1:
            for phase in phases:
                for job in phase:
                    _render_job(job, *args)
                    bar.update()
            return
        # spawn, not fork: the parent may hold torch/OpenMP threads that a forked child would deadlock on.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for phase in phases:
                n = len(phase)
                futures = pool.map(_render_job, phase, *([a] * n for a in args), chunksize=16)
                for _ in futures:
                    bar.update()


# ----------------------------------------------------------------------------------------------
# Writing and loading
# ----------------------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as UTF-8 JSON lines (keys in insertion order, so files are byte-stable)."""
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON lines, skipping blank lines."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _package_versions() -> dict[str, str]:
    """Versions of the packages that shape the generated data."""
    versions = {}
    for name in ("simple-icons-pack", "cairosvg", "pillow", "numpy", "scikit-image", "scikit-learn", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _manifest(plan: _Plan, config: DataConfig) -> dict[str, Any]:
    """Self-description of a generated dataset."""
    counts: dict[str, dict[str, int]] = {s: dict.fromkeys(LABELS, 0) for s in SPLITS}
    for row in plan.listings:
        counts[row["split"]][row["label"]] += 1
    return {
        "format_version": FORMAT_VERSION,
        "generator": "training.data",
        "seed": config.seed,
        "config": dataclasses.asdict(config),
        "counts": {
            "listings": counts,
            "brands": {s: {"registered": sum(b["split"] == s and b["registered"] for b in plan.brands),
                           "unregistered": sum(b["split"] == s and not b["registered"] for b in plan.brands)}
                       for s in SPLITS},
            "assets": dict(sorted(Counter(a["kind"] for a in plan.assets).items())),
            "hard_cases": dict(sorted(Counter(r["meta"]["hard_case"] for r in plan.listings
                                              if r["meta"]["hard_case"]).items())),
            "images": len(plan.jobs),
        },
        "split_hashes": {
            s: {
                "listings": split_hash(r for r in plan.listings if r["split"] == s),
                "brands": split_hash((b for b in plan.brands if b["split"] == s), id_key="slug"),
                "assets": split_hash((a for a in plan.assets if a["split"] == s), id_key="asset_id"),
            }
            for s in SPLITS
        },
        "background_photos": [p.name for p in render.list_background_photos()],
        "package_versions": _package_versions(),
    }


_OUTPUT_FILES = ("brands.jsonl", "assets.jsonl", "listings.jsonl", "manifest.json")


def prepare_dataset_dir(root: Path, overwrite: bool) -> None:
    """Create a dataset folder, or clear the dataset already in it when ``overwrite`` (else FileExistsError)."""
    if (root / "manifest.json").exists():
        if not overwrite:
            raise FileExistsError(f"{root} already holds a dataset; pass overwrite=True to replace it")
        shutil.rmtree(root / "images", ignore_errors=True)
        for name in _OUTPUT_FILES:
            (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def generate_dataset(
    out_dir: str | Path,
    config: DataConfig | None = None,
    progress: bool = True,
    workers: int = 1,
    overwrite: bool = False,
) -> Path:
    """Generate a synthetic listing dataset.

    Args:
        out_dir: Output folder (created if missing).
        config: What to generate; defaults to ``DataConfig()`` (all brands: large).
        progress: Show a progress bar over images.
        workers: Processes rendering images; the output does not depend on it.
        overwrite: Replace a dataset already in ``out_dir`` (its files and ``images/``).

    Returns:
        The output folder.

    Raises:
        FileExistsError: ``out_dir`` already holds a dataset and ``overwrite`` is False.
    """
    config = config or DataConfig()
    root = Path(out_dir)
    prepare_dataset_dir(root, overwrite)

    t0 = time.perf_counter()
    plan = _make_plan(config)
    t_plan = time.perf_counter() - t0
    logger.info("planned %d brands, %d listings, %d assets, %d images in %.2fs", len(plan.brands),
                len(plan.listings), len(plan.assets), len(plan.jobs), t_plan)
    t1 = time.perf_counter()
    _render_all(plan.jobs, root, config, progress, workers)
    t_render = time.perf_counter() - t1
    logger.info("rendered %d images in %.1fs (%.1f ms/image, %.1f listings/s, %d worker(s))", len(plan.jobs),
                t_render, 1000 * t_render / max(1, len(plan.jobs)), len(plan.listings) / max(t_render, 1e-9),
                workers)

    _write_jsonl(root / "brands.jsonl", plan.brands)
    _write_jsonl(root / "assets.jsonl", plan.assets)
    _write_jsonl(root / "listings.jsonl", plan.listings)
    # The manifest goes last: its presence marks a complete dataset.
    (root / "manifest.json").write_text(json.dumps(_manifest(plan, config), indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    return root


@dataclass
class Dataset:
    """A loaded dataset folder: brands, assets and listings as dicts (see docs/data_format.md)."""

    root: Path
    manifest: dict[str, Any]
    brands: list[dict[str, Any]]
    assets: list[dict[str, Any]]
    listings: list[dict[str, Any]]

    def listings_for(self, split: str) -> list[dict[str, Any]]:
        """Listings of one split."""
        _check_split(split)
        return [r for r in self.listings if r["split"] == split]

    def assets_for(self, split: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Assets, optionally of one split and/or one kind ("authentic" | "known_fake")."""
        if split is not None:
            _check_split(split)
        return [a for a in self.assets
                if (split is None or a["split"] == split) and (kind is None or a["kind"] == kind)]

    def brands_for(self, split: str | None = None, registered: bool | None = None) -> list[dict[str, Any]]:
        """Brands, optionally of one split and/or registration status."""
        if split is not None:
            _check_split(split)
        return [b for b in self.brands
                if (split is None or b["split"] == split) and (registered is None or b["registered"] == registered)]

    def brand(self, slug: str) -> dict[str, Any]:
        """The brand row for a slug; raises KeyError for an unknown slug."""
        for b in self.brands:
            if b["slug"] == slug:
                return b
        raise KeyError(f"unknown brand {slug!r}")

    def image_path(self, rel: str) -> Path:
        """Absolute path of an image referenced by a relative path."""
        return self.root / rel

    def open_image(self, rel: str) -> Image.Image:
        """Open a referenced image as RGB."""
        with Image.open(self.image_path(rel)) as im:
            return im.convert("RGB")


PHOTO_ONLY_SUFFIX, TEXT_ONLY_SUFFIX = "-photo", "-text"  # what a copy's listing id adds to its source's


def source_listing_id(rec: dict[str, Any]) -> str:
    """The id of the listing a photo-only or text-only copy was made from; any other listing's own id (a listing
    whose id merely ends like a copy's is not one)."""
    listing_id, meta = str(rec["listing_id"]), rec.get("meta") or {}
    for flag, suffix in (("photo_only", PHOTO_ONLY_SUFFIX), ("text_only", TEXT_ONLY_SUFFIX)):
        if meta.get(flag) and listing_id.endswith(suffix):
            return listing_id[: -len(suffix)]
    return listing_id


def photo_only_copy(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The listing as a seller who names no brand would post it: same photos, price and seller, the title reduced
    to the product's colour and kind, no description. ``None`` for a listing whose photos show no logo.

    A counterfeiter who keeps the brand out of the text to slip past text filters leaves only the photo as evidence;
    training on such copies teaches the brand model to trust image evidence, and evaluating on them measures brand
    recognition from the photo end to end.
    """
    meta = rec.get("meta") or {}
    if not meta.get("logo_slug") or not meta.get("product"):
        return None
    title = f"{meta.get('product_colour') or ''} {str(meta['product']).replace('_', ' ')}".strip()
    return {**rec, "listing_id": f"{rec['listing_id']}{PHOTO_ONLY_SUFFIX}", "title": title[:1].upper() + title[1:],
            "description": "", "meta": {**meta, "obfuscation": None, "shown_name": None, "photo_only": True}}


def photo_only_copies(records: Sequence[dict[str, Any]], fraction: float, seed: int) -> list[dict[str, Any]]:
    """Photo-only copies (:func:`photo_only_copy`) of a seeded ``fraction`` of the listings that show a logo."""
    if fraction <= 0:
        return []
    copies = [c for c in map(photo_only_copy, records) if c is not None]
    return [c for c in copies if _stable_int(seed, "photo-only", c["listing_id"]) % 10_000 < fraction * 10_000]


def text_only_copy(rec: dict[str, Any], donor: dict[str, Any]) -> dict[str, Any] | None:
    """The listing with photos that show no mark: ``donor``'s photos (a listing whose photos show no logo), the
    same title, description, price and seller. ``None`` unless the listing sells a registered brand's goods
    (counterfeit or authentic; re-uploads, whose evidence is their photo, are left out) and the donor has photos.

    Real listings' photos often miss the mark (the back of a shirt, the box, a blurred shot), and photos taken
    another way than the training photos may not match the references. A brand model that only saw listings whose
    photos agree with their titles learns that a brand named without matching photos is absent (the pattern of
    "case for X" listings) and lets a plainly named, cheap counterfeit through; training on such copies teaches it
    to weigh the text on its own, and evaluating on them measures exactly that.
    """
    meta = rec.get("meta") or {}
    if rec.get("label") not in ("counterfeit", "authentic") or not rec.get("brand_slug") or \
            meta.get("kind") == "reupload" or not donor.get("images"):
        return None
    return {**rec, "listing_id": f"{rec['listing_id']}{TEXT_ONLY_SUFFIX}", "images": list(donor["images"]),
            "meta": {**meta, "logo_slug": None, "text_only": True, "photos_of": donor["listing_id"]}}


def text_only_copies(records: Sequence[dict[str, Any]], fraction: float, seed: int) -> list[dict[str, Any]]:
    """Text-only copies (:func:`text_only_copy`) of a seeded ``fraction`` of the listings selling a registered brand's
    goods, each with the photos of a logo-less listing of ``records`` showing the same kind of product where there
    is one (any logo-less listing otherwise; no copies when there is none)."""
    if fraction <= 0:
        return []
    donors = [r for r in records if r.get("images") and r.get("label") == "unbranded"
              and not (r.get("meta") or {}).get("logo_slug")]
    if not donors:
        return []
    by_product: dict[Any, list[dict[str, Any]]] = {}
    for d in donors:
        by_product.setdefault((d.get("meta") or {}).get("product"), []).append(d)
    out = []
    for rec in records:
        if _stable_int(seed, "text-only", rec["listing_id"]) % 10_000 >= fraction * 10_000:
            continue
        pool = by_product.get((rec.get("meta") or {}).get("product")) or donors
        copy = text_only_copy(rec, pool[_stable_int(seed, "text-only-donor", rec["listing_id"]) % len(pool)])
        if copy is not None:
            out.append(copy)
    return out


def _check_split(split: str) -> None:
    """Reject unknown split names, listing the known ones."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


def load_dataset(directory: str | Path) -> Dataset:
    """Load a dataset folder written by :func:`generate_dataset` or by hand (see docs/data_format.md).

    Args:
        directory: Folder holding manifest.json, brands.jsonl, assets.jsonl and listings.jsonl.

    Returns:
        The loaded :class:`Dataset`.

    Raises:
        FileNotFoundError: A required file is missing.
        ValueError: The format version is not supported.
    """
    root = Path(directory)
    for name in _OUTPUT_FILES:
        if not (root / name).exists():
            raise FileNotFoundError(f"{root / name} is missing; is {root} a dataset folder?")
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    version = str(manifest.get("format_version", ""))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise ValueError(f"{root} has format_version {version!r}; this loader reads {FORMAT_VERSION}")
    return Dataset(root=root, manifest=manifest, brands=_read_jsonl(root / "brands.jsonl"),
                   assets=_read_jsonl(root / "assets.jsonl"), listings=_read_jsonl(root / "listings.jsonl"))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m training.data --out DIR [--n-brands N] [--seed S] ...``."""
    parser = argparse.ArgumentParser(prog="python -m training.data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=DataConfig.seed)
    parser.add_argument("--n-brands", type=int, default=None, help="brands to sample (default: all)")
    parser.add_argument("--listings-per-brand", type=int, default=DataConfig.listings_per_brand)
    parser.add_argument("--photo-size", type=int, default=DataConfig.photo_size)
    parser.add_argument("--config", type=Path, help="JSON file of DataConfig fields (flags given override it)")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (output does not depend on it)")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    fields = json.loads(args.config.read_text()) if args.config else {}
    for flag, name in (("seed", "seed"), ("n_brands", "n_brands"), ("listings_per_brand", "listings_per_brand"),
                       ("photo_size", "photo_size")):
        value = getattr(args, flag)
        if value != parser.get_default(flag) or name not in fields:
            fields[name] = value
    config = DataConfig(**fields)
    out = generate_dataset(args.out, config, progress=not args.no_progress, workers=args.workers,
                           overwrite=args.overwrite)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    logger.info("wrote %s: %s", out, json.dumps(manifest["counts"]["listings"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
