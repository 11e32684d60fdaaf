"""Export moderators' verdicts (``/v1/feedback``) as a training dataset, so that a retrain learns from them.

``python -m training.feedback --home var/home --out data/feedback`` (or ``detector feedback export``) writes a dataset
folder in the documented format (``docs/data_format.md``, format_version 1.0) from a service home:

* ``brands.jsonl``   every registry brand (``registered`` true). ``slug`` is :func:`brand_slug` of the name: the
  simple-icons slug, so a brand keeps the slug (and the held-out status) it has in generated data. Held-out brands
  go to ``test``; the others to ``train`` or ``val`` by a seeded hash of the slug.
* ``listings.jsonl`` one row per reviewed listing: the scored request (title, description, price, seller, photos from
  the listing image store, :mod:`indexes.listing_images`) labelled with the moderator's latest verdict. The listing
  takes the split of its brand; one that touches a held-out brand (verdict or scored brand) goes to ``test``; one
  with no brand at all is split by a seeded hash of its id.
* ``assets.jsonl``   the registry's active assets, images exported as the registry stores them (PNG).
* ``manifest.json``  counts (including feedback skipped and why), split hashes, the source and the options.

Merge the folder into a retrain with ``detector train DATA OUT --extra-data DIR`` (``TrainConfig.extra_data``).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from indexes.listing_images import ListingImageStore
from indexes.registry import Registry, ScoredListingRow, normalize_name
from training.data import FORMAT_VERSION, LABELS, prepare_dataset_dir
from training.splits import SPLITS, is_heldout_brand, split_hash

__all__ = ["brand_slug", "export_feedback_dataset", "main"]

log = logging.getLogger(__name__)

# simple-icons' titleToSlug: these characters are spelt out or folded before everything but [a-z0-9] is dropped.
_SLUG_REPLACEMENTS = {"+": "plus", ".": "dot", "&": "and", "đ": "d", "ħ": "h", "ı": "i", "ĸ": "k", "ŀ": "l",
                      "ł": "l", "ß": "ss", "ŧ": "t", "ø": "o"}
_ASSET_CHUNK = 200  # asset images read from the registry per query (bounds memory on large registries)


# ---------------------------------------------------------------------------------------------------------- slugs
@functools.cache
def _icon_slugs() -> dict[str, str]:
    """simple-icons title -> slug for titles used by a single icon (for the few slugs titleToSlug does not give)."""
    from training.render import list_icons

    titles = Counter(icon.title for icon in list_icons())
    return {icon.title: icon.slug for icon in list_icons() if titles[icon.title] == 1}


def brand_slug(name: str) -> str:
    """A stable slug of a brand name: the simple-icons slug of that title, else simple-icons' titleToSlug rule.

    Generated datasets use simple-icons slugs, so a registry brand registered from one keeps its slug and therefore
    its held-out status (``training.splits.is_heldout_brand``). A name with no Latin letters or digits gets
    ``brand-<sha1 of the normalised name>``.
    """
    known = _icon_slugs().get(name)
    if known is not None:
        return known
    folded = "".join(_SLUG_REPLACEMENTS.get(c, c) for c in name.lower())
    slug = re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFD", folded))
    return slug or "brand-" + hashlib.sha1(normalize_name(name).encode()).hexdigest()[:12]


def _unit(seed: int, purpose: str, key: str) -> float:
    """A seeded, order-independent number in [0, 1) for a key."""
    return int(hashlib.sha256(f"{seed}:{purpose}:{key}".encode()).hexdigest()[:15], 16) / 16**15


def _hash_split(seed: int, key: str, val_fraction: float) -> str:
    return "val" if _unit(seed, "val", key) < val_fraction else "train"


# ---------------------------------------------------------------------------------------------------------- export
def _open_source(home_or_registry_url: str | Path, images_home: str | Path | None) -> tuple[Registry, Path, str]:
    """The registry, the home whose listing image store to read, and a printable registry URL (password hidden)."""
    text = str(home_or_registry_url)
    if "://" in text:
        url = make_url(text)
        is_sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        if is_sqlite_file and not Path(url.database).is_file():
            raise FileNotFoundError(f"no registry database at {url.database}")
        if images_home is None:
            if not is_sqlite_file:
                raise ValueError("a registry URL other than a SQLite file needs images_home (the service home)")
            images_home = Path(url.database).parent  # a home holds registry.db next to listing-images/
    else:
        home = Path(text)
        if not (home / "registry.db").is_file():
            raise FileNotFoundError(f"{home} holds no registry.db; pass a service home or a registry URL")
        url = make_url(f"sqlite:///{(home / 'registry.db').resolve()}")
        images_home = images_home or home
    return Registry(url.render_as_string(hide_password=False)), Path(images_home), url.render_as_string(True)


def _latest_score_ids(registry: Registry, listing_ids: Iterable[str]) -> dict[str, int]:
    """Row id of the latest score of each listing: the row ``Registry.export_feedback`` joins (it does not return the
    id). A score recorded between the two reads would make this id newer than the joined row; it is only metadata."""
    wanted = sorted(set(listing_ids))
    out: dict[str, int] = {}
    with registry.transaction() as s:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = s.execute(select(ScoredListingRow.listing_id, func.max(ScoredListingRow.id))
                             .where(ScoredListingRow.listing_id.in_(chunk)).group_by(ScoredListingRow.listing_id))
            out.update({listing_id: int(score_id) for listing_id, score_id in rows})
    return out


def _parse_since(since: datetime | str | None) -> datetime | None:
    if since is None or isinstance(since, datetime):
        return since
    return datetime.fromisoformat(since)


def _prepare_out(out: Path, overwrite: bool) -> None:
    prepare_dataset_dir(out, overwrite)
    (out / "images" / "listings").mkdir(parents=True, exist_ok=True)
    (out / "images" / "assets").mkdir(parents=True, exist_ok=True)


def _copy_listing_images(store: ListingImageStore, hashes: Sequence[str], out: Path) -> list[str] | None:
    """Copy a listing's photos into ``out/images/listings``; None when one is missing or does not match its hash."""
    rels = []
    for digest in hashes:
        try:
            data = store.path(digest).read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(data).hexdigest() != digest:  # content-addressed: a damaged file shows itself
            log.warning("listing image %s does not match its hash; treated as missing", digest)
            return None
        rel = f"images/listings/{digest}.jpg"
        if not (out / rel).exists():
            (out / rel).write_bytes(data)
        rels.append(rel)
    return rels


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _brand_rows(registry: Registry, seed: int, val_fraction: float) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """brands.jsonl rows of every registry brand, and registry brand id -> slug."""
    records = registry.list_brands()
    slug_of: dict[int, str] = {}
    taken: set[str] = set()
    for b in records:
        slug = brand_slug(b.name)
        # Two names with one slug (e.g. "A&B" and "A and B"): the later brand gets its id appended.
        slug_of[b.id] = f"{slug}-{b.id}" if slug in taken else slug
        taken.add(slug_of[b.id])
    rows = []
    for b in records:
        slug = slug_of[b.id]
        heldout = is_heldout_brand(slug)
        rows.append({"slug": slug, "name": b.name, "aliases": list(b.aliases),
                     "authorized_sellers": list(b.authorized_sellers), "min_price": b.min_price,
                     "currency": b.currency, "hex": None,
                     "split": "test" if heldout else _hash_split(seed, slug, val_fraction),
                     "registered": True, "heldout": heldout, "registry_brand_id": b.id})
    return rows, slug_of


def _asset_rows(registry: Registry, slug_of: dict[int, str], split_of: dict[str, str], out: Path) -> list[dict]:
    """assets.jsonl rows of the active assets, their images written as stored (PNG) to ``out/images/assets``."""
    assets = registry.list_assets()
    rows = []
    for start in range(0, len(assets), _ASSET_CHUNK):
        chunk = assets[start : start + _ASSET_CHUNK]
        images = registry.get_asset_images([a.id for a in chunk])
        for a in chunk:
            rel = f"images/assets/{a.image_sha256}.png"
            (out / rel).write_bytes(images[a.id])
            slug = slug_of[a.brand_id]
            rows.append({"asset_id": f"registry-asset-{a.id}", "kind": a.kind, "brand_slug": slug, "image": rel,
                         "title": a.title, "source": a.source, "split": split_of[slug]})
    return rows


def _listing_row(
    item: dict[str, Any],
    score_ids: dict[str, int],
    slug_of: dict[int, str],
    split_of: dict[str, str],
    store: ListingImageStore,
    out: Path,
    seed: int,
    val_fraction: float,
) -> dict[str, Any] | str:
    """The listings.jsonl row of one verdict (its photos copied to ``out``), or why it is skipped."""
    if item["request"] is None:
        return "no_score"
    if not item["image_sha256s"]:
        return "no_images"
    verdict_brand = slug_of.get(item["brand_id"]) if item["brand_id"] is not None else None
    scored_brand = slug_of.get(item["scored_brand_id"]) if item["scored_brand_id"] is not None else None
    brand = None if item["verdict"] == "unbranded" else verdict_brand or scored_brand
    if item["verdict"] != "unbranded" and brand is None:
        return "no_brand"
    images = _copy_listing_images(store, item["image_sha256s"], out)
    if images is None:
        return "missing_images"
    touched = [s for s in (brand, verdict_brand, scored_brand) if s]
    if any(is_heldout_brand(s) for s in touched):
        split = "test"  # held-out brands are never trained or tuned on, whatever the moderator said
    elif touched:
        split = split_of[touched[0]]
    else:
        split = _hash_split(seed, item["listing_id"], val_fraction)
    request = item["request"]
    return {
        "listing_id": item["listing_id"],
        "title": request.get("title") or "",
        "description": request.get("description") or "",
        "price": request.get("price"),
        "currency": request.get("currency"),
        "seller_id": request.get("seller_id"),
        "images": images,
        "label": item["verdict"],
        "brand_slug": brand,
        "split": split,
        "meta": {
            "kind": "feedback",
            "reviewer": item["reviewer"],
            "feedback_id": item["feedback_id"],
            "score_id": score_ids.get(item["listing_id"]),
            "model_version": item["model_version"],
            "decision": item["decision"],
            "risk": item["risk"],
            "scored_brand_slug": scored_brand,
            # An "unbranded" verdict naming a brand (e.g. "case for <Brand>"): the format's compatible mention.
            "mentioned_brand": verdict_brand if item["verdict"] == "unbranded" else None,
        },
    }


def export_feedback_dataset(
    home_or_registry_url: str | Path,
    out_dir: str | Path,
    since: datetime | str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    *,
    images_home: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write reviewed listings, the registry's brands and its assets as a dataset folder.

    Args:
        home_or_registry_url: A service home (``registry.db`` and ``listing-images/``) or a SQLAlchemy registry URL.
        out_dir: Dataset folder to write (created if missing).
        since: Only feedback given at or after this time (a datetime or ISO 8601 string; naive means UTC).
        val_fraction: Share of non-held-out brands (and of brandless listings) put in ``val``; the rest is ``train``.
        seed: Seed of the train/val hash split.
        images_home: The home whose ``listing-images/`` store holds the photos; defaults to the registry's home (for
            a SQLite URL, the database file's folder). Required for other registry URLs.
        overwrite: Replace a dataset already in ``out_dir``.

    Returns:
        ``out_dir``. When a listing has several verdicts the latest wins. Feedback is skipped, and counted in
        ``manifest.json`` under ``counts.feedback.skipped``, when its listing was never scored (``no_score``), was
        scored without photos (``no_images``), has photos missing from the store or damaged (``missing_images``), or
        is a counterfeit/authentic verdict with no brand from the moderator or the score (``no_brand``).

    Raises:
        FileExistsError: ``out_dir`` holds a dataset and ``overwrite`` is False.
        FileNotFoundError: A home without ``registry.db``.
        ValueError: ``val_fraction`` out of [0, 1), or a non-SQLite URL without ``images_home``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    since_dt = _parse_since(since)
    out = Path(out_dir)
    registry, images_home, source_url = _open_source(home_or_registry_url, images_home)
    store = ListingImageStore(images_home)
    try:
        feedback = registry.export_feedback(since_dt)
        score_ids = _latest_score_ids(registry, (f["listing_id"] for f in feedback))
        _prepare_out(out, overwrite)
        brands, slug_of = _brand_rows(registry, seed, val_fraction)
        split_of = {b["slug"]: b["split"] for b in brands}
        asset_rows = _asset_rows(registry, slug_of, split_of, out)
    finally:
        registry.close()
    latest: dict[str, dict[str, Any]] = {}
    for item in feedback:  # oldest first: a later verdict on the same listing replaces an earlier one
        latest[item["listing_id"]] = item
    skipped: Counter[str] = Counter()
    listings = []
    for item in latest.values():
        row = _listing_row(item, score_ids, slug_of, split_of, store, out, seed, val_fraction)
        if isinstance(row, str):
            skipped[row] += 1
        else:
            listings.append(row)

    listings.sort(key=lambda r: r["meta"]["feedback_id"])
    _write_jsonl(out / "brands.jsonl", brands)
    _write_jsonl(out / "assets.jsonl", asset_rows)
    _write_jsonl(out / "listings.jsonl", listings)
    manifest = _manifest(brands, asset_rows, listings, feedback, latest, skipped, out, source_url, store,
                         since_dt, val_fraction, seed)
    # The manifest goes last: its presence marks a complete dataset.
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("exported %d reviewed listings (%d feedback rows, skipped %s), %d brands, %d assets to %s",
             len(listings), len(feedback), dict(skipped), len(brands), len(asset_rows), out)
    return out


def _manifest(
    brands: list[dict[str, Any]],
    assets: list[dict[str, Any]],
    listings: list[dict[str, Any]],
    feedback: list[dict[str, Any]],
    latest: dict[str, dict[str, Any]],
    skipped: Counter[str],
    out: Path,
    source_url: str,
    store: ListingImageStore,
    since: datetime | None,
    val_fraction: float,
    seed: int,
) -> dict[str, Any]:
    """Self-description of an exported dataset (same keys as a generated one where they apply)."""
    by_split: dict[str, dict[str, int]] = {s: dict.fromkeys(LABELS, 0) for s in SPLITS}
    for row in listings:
        by_split[row["split"]][row["label"]] += 1
    used = [row["meta"]["feedback_id"] for row in listings]
    return {
        "format_version": FORMAT_VERSION,
        "generator": "training.feedback",
        "seed": seed,
        "config": {"val_fraction": val_fraction, "since": since.isoformat() if since else None},
        "source": {
            "registry": source_url,
            "listing_images": str(store.root.resolve()),
            "feedback_ids": [min(used), max(used)] if used else None,
            "latest_feedback_at": feedback[-1]["created_at"] if feedback else None,
        },
        "counts": {
            "listings": by_split,
            "brands": {s: {"registered": sum(b["split"] == s for b in brands), "unregistered": 0} for s in SPLITS},
            "assets": dict(sorted(Counter(a["kind"] for a in assets).items())),
            "images": sum(1 for p in (out / "images").rglob("*") if p.is_file()),
            "feedback": {
                "rows": len(feedback),
                "listings": len(latest),
                "superseded": len(feedback) - len(latest),
                "exported": len(listings),
                "skipped": {k: skipped.get(k, 0) for k in ("no_score", "no_images", "missing_images", "no_brand")},
            },
        },
        "split_hashes": {
            s: {
                "listings": split_hash(r for r in listings if r["split"] == s),
                "brands": split_hash((b for b in brands if b["split"] == s), id_key="slug"),
                "assets": split_hash((a for a in assets if a["split"] == s), id_key="asset_id"),
            }
            for s in SPLITS
        },
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m training.feedback --home DIR --out DIR [--registry-url URL] [--since ISO] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m training.feedback", description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path, help="service home (registry.db + listing-images/)")
    parser.add_argument("--registry-url", help="SQLAlchemy URL of the registry (default: registry.db in --home)")
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    parser.add_argument("--since", help="only feedback from this ISO 8601 time on (naive: UTC)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("DETECTOR_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = export_feedback_dataset(args.registry_url or args.home, args.out, args.since, args.val_fraction, args.seed,
                                  images_home=args.home, overwrite=args.overwrite)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    print(json.dumps({"out": str(out), "counts": manifest["counts"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
