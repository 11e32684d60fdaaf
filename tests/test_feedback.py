"""The feedback loop: listing image store, export of moderators' verdicts as a dataset, and a retrain merging it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.api import ServiceConfig
from indexes.listing_images import ListingImageStore, encode_listing_image
from indexes.registry import Registry
from training import render
from training import train as train_mod
from training.data import DataConfig, Dataset, generate_dataset, load_dataset
from training.feedback import brand_slug, export_feedback_dataset

HELDOUT = "anta"  # a simple-icons brand held out by the sha1 rule


def _photo(slug: str | None, seed: int, size: int = 160) -> Image.Image:
    logo = render.render_logo(render.get_icon(slug), 128) if slug else None
    return render.compose_listing_photo(logo, np.random.default_rng(seed), size)


# ------------------------------------------------------------------------------------------------------ store
def test_listing_image_store_is_content_addressed(tmp_path: Path) -> None:
    store = ListingImageStore(tmp_path)
    big = _photo("nike", 1, size=1500)
    digest = store.put(big)
    path = store.path(digest)
    assert path == tmp_path / "listing-images" / f"{digest}.jpg" and store.has(digest)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the name is the hash of the stored bytes
    with Image.open(path) as stored:
        assert stored.format == "JPEG" and max(stored.size) == 1024
    mtime = path.stat().st_mtime_ns
    assert store.put(big.copy()) == digest and path.stat().st_mtime_ns == mtime  # present: not written again
    assert encode_listing_image(big)[1] == digest  # what the service records when keeping is switched off
    assert list(path.parent.iterdir()) == [path]  # no temporary files left behind
    rotated = Image.new("RGB", (40, 20), "red")
    rotated.getexif()[0x0112] = 6  # EXIF orientation: shown rotated by 90 degrees
    with Image.open(store.path(store.put(rotated))) as upright:
        assert upright.size == (20, 40)
    assert not store.has("0" * 64)
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_keep_listing_images_setting() -> None:
    assert ServiceConfig().keep_listing_images is True
    assert ServiceConfig.from_env({"DETECTOR_KEEP_LISTING_IMAGES": "off"}).keep_listing_images is False
    assert ServiceConfig.from_env({"DETECTOR_KEEP_LISTING_IMAGES": "1"}).keep_listing_images is True
    with pytest.raises(ValueError, match="DETECTOR_KEEP_LISTING_IMAGES"):
        ServiceConfig.from_env({"DETECTOR_KEEP_LISTING_IMAGES": "maybe"})


def test_brand_slugs_follow_simple_icons() -> None:
    assert [brand_slug(n) for n in ("Nike", "H&M", "Ferrari N.V.", "Coca-Cola")] == [
        "nike", "handm", "ferrarinv", "cocacola"]
    assert brand_slug("ナイキ").startswith("brand-") and brand_slug("ナイキ") == brand_slug(" ナイキ ")


# ------------------------------------------------------------------------------------------------------ export
@dataclass
class Reviewed:
    home: Path
    brand_ids: dict[str, int]
    score_ids: dict[str, int]
    hashes: dict[str, list[str]]
    feedback_ids: dict[str, int]
    asset_ids: dict[str, int]


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Reviewed:
    """A home as the service leaves it: brands, assets, scores with kept photos, and moderators' verdicts."""
    home = tmp_path_factory.mktemp("feedback") / "home"
    registry = Registry(f"sqlite:///{home / 'registry.db'}")
    store = ListingImageStore(home)
    brand_ids, asset_ids = {}, {}
    for slug in ("nike", "adidas", HELDOUT):
        icon = render.get_icon(slug)
        brand_ids[slug] = registry.add_brand(icon.title, authorized_sellers=[f"{slug}-official"], min_price=40.0).id
        asset_ids[slug] = registry.add_asset(brand_ids[slug], "authentic", render.render_reference(icon, "light", 96),
                                             title=f"{icon.title} logo").id
    registry.delete_asset(registry.add_asset(brand_ids["nike"], "known_fake", _photo("nike", 99), "old fake").id)

    score_ids, hashes = {}, {}

    def scored(listing_id: str, slug: str | None, brand: str | None, n_photos: int = 1) -> None:
        hashes[listing_id] = [store.put(_photo(slug, len(score_ids) * 10 + i)) for i in range(n_photos)]
        score_ids[listing_id] = registry.record_score(
            listing_id, request={"listing_id": listing_id, "title": f"{listing_id} tee", "description": "new",
                                 "price": 12.5, "currency": "USD", "seller_id": "s-1", "n_images": n_photos},
            image_sha256s=hashes[listing_id], risk=0.7, decision="review",
            brand_id=brand_ids[brand] if brand else None, signals={"n_images": n_photos}, model_version="m-1",
            index_version=3)

    scored("fake-1", "nike", None)  # re-scored below: the export joins the latest score
    scored("fake-1", "nike", "nike", n_photos=2)
    scored("auth-1", "adidas", "adidas")
    scored("plain-1", None, None)
    scored("held-1", HELDOUT, HELDOUT)
    scored("gone-1", "nike", "nike")
    scored("nobrand-1", None, None)
    scored("textonly-1", None, None, n_photos=0)
    store.path(hashes["gone-1"][0]).unlink()  # e.g. the home was restored without its listing-images

    feedback_ids = {}
    registry.add_feedback("fake-1", "authentic", brand_id=brand_ids["nike"], reviewer="mod-1")
    feedback_ids["fake-1"] = registry.add_feedback("fake-1", "counterfeit", brand_id=brand_ids["nike"],
                                                   reviewer="mod-2")
    feedback_ids["auth-1"] = registry.add_feedback("auth-1", "authentic", reviewer="mod-1")  # brand from the score
    feedback_ids["plain-1"] = registry.add_feedback("plain-1", "unbranded", reviewer="mod-1")
    feedback_ids["held-1"] = registry.add_feedback("held-1", "counterfeit", reviewer="mod-3")
    registry.add_feedback("gone-1", "counterfeit", reviewer="mod-1")
    registry.add_feedback("nobrand-1", "counterfeit", reviewer="mod-1")
    registry.add_feedback("textonly-1", "unbranded", reviewer="mod-1")
    registry.add_feedback("never-scored", "counterfeit", brand_id=brand_ids["adidas"])
    registry.close()
    return Reviewed(home, brand_ids, score_ids, hashes, feedback_ids, asset_ids)


@pytest.fixture(scope="module")
def exported(reviewed: Reviewed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_feedback_dataset(reviewed.home, tmp_path_factory.mktemp("export") / "fb", seed=0)


def test_export_writes_a_loadable_dataset_of_verdicts(exported: Path, reviewed: Reviewed) -> None:
    dataset = load_dataset(exported)
    rows = {r["listing_id"]: r for r in dataset.listings}
    assert set(rows) == {"fake-1", "auth-1", "plain-1", "held-1"}
    assert [rows[x]["label"] for x in ("fake-1", "auth-1", "plain-1", "held-1")] == [
        "counterfeit", "authentic", "unbranded", "counterfeit"]  # fake-1: the latest of its two verdicts
    assert [rows[x]["brand_slug"] for x in ("fake-1", "auth-1", "plain-1", "held-1")] == [
        "nike", "adidas", None, HELDOUT]
    fake = rows["fake-1"]
    assert fake["meta"] == {"kind": "feedback", "reviewer": "mod-2", "feedback_id": reviewed.feedback_ids["fake-1"],
                            "score_id": reviewed.score_ids["fake-1"], "model_version": "m-1", "decision": "review",
                            "risk": 0.7, "scored_brand_slug": "nike", "mentioned_brand": None}
    assert (fake["title"], fake["price"], fake["currency"], fake["seller_id"]) == ("fake-1 tee", 12.5, "USD", "s-1")
    assert len(fake["images"]) == 2  # the photos of the latest score
    for rec in rows.values():
        for rel, digest in zip(rec["images"], reviewed.hashes[rec["listing_id"]], strict=True):
            data = dataset.image_path(rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest
            assert dataset.open_image(rel).size == (160, 160)

    brands = {b["slug"]: b for b in dataset.brands}
    assert set(brands) == {"nike", "adidas", HELDOUT} and all(b["registered"] for b in brands.values())
    assert brands[HELDOUT]["split"] == "test" and brands[HELDOUT]["heldout"] is True
    assert {brands["nike"]["split"], brands["adidas"]["split"]} <= {"train", "val"}
    assert brands["nike"]["authorized_sellers"] == ["nike-official"] and brands["nike"]["min_price"] == 40.0
    assert rows["fake-1"]["split"] == brands["nike"]["split"] and rows["held-1"]["split"] == "test"
    assert rows["plain-1"]["split"] in ("train", "val")

    assets = dataset.assets
    assert sorted(a["brand_slug"] for a in assets) == sorted(brands)  # active only: the deleted fake is gone
    for a in assets:
        assert a["kind"] == "authentic" and a["split"] == brands[a["brand_slug"]]["split"]
        with Image.open(dataset.image_path(a["image"])) as im:
            assert im.size == (96, 96)


def test_export_manifest_counts_what_was_skipped(exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["format_version"] == "1.0" and manifest["generator"] == "training.feedback"
    feedback = manifest["counts"]["feedback"]
    assert feedback == {"rows": 9, "listings": 8, "superseded": 1, "exported": 4,
                        "skipped": {"no_score": 1, "no_images": 1, "missing_images": 1, "no_brand": 1}}
    listings = manifest["counts"]["listings"]
    assert sum(n for split in listings.values() for n in split.values()) == 4 and listings["test"]["counterfeit"] == 1
    assert manifest["counts"]["images"] == 5 + 3  # listing photos + asset images
    assert set(manifest["split_hashes"]) == {"train", "val", "test"}
    assert manifest["source"]["registry"].startswith("sqlite:///")


def test_export_since_and_overwrite(reviewed: Reviewed, exported: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        export_feedback_dataset(reviewed.home, exported)
    out = export_feedback_dataset(str(reviewed.home), tmp_path / "later", since="2999-01-01T00:00:00")
    assert load_dataset(out).listings == [] and len(load_dataset(out).brands) == 3
    with pytest.raises(FileNotFoundError):
        export_feedback_dataset(tmp_path / "no-home", tmp_path / "x")


# ------------------------------------------------------------------------------------------------------ retrain
def _tiny(root: Path, brands: list[tuple[str, str]], listings: list[tuple[str, str | None, str]]) -> Dataset:
    return Dataset(root, {"format_version": "1.0"},
                   [{"slug": s, "split": split, "registered": True} for s, split in brands], [],
                   [{"listing_id": lid, "brand_slug": b, "split": split, "images": [f"images/{lid}.jpg"],
                     "label": "unbranded" if b is None else "counterfeit"} for lid, b, split in listings])


def test_merge_keeps_brand_splits(tmp_path: Path) -> None:
    main = _tiny(tmp_path / "main", [("nike", "val"), ("puma", "test")], [("m1", "nike", "val")])
    extra = _tiny(tmp_path / "extra", [("nike", "train"), ("puma", "train"), ("fila", "train")],
                  [("e1", "nike", "train"), ("e2", "puma", "train"), ("e3", "fila", "train"), ("e4", None, "val"),
                   ("e5", "fila", "test")])
    merged, [rows] = train_mod.merge_datasets(main, [extra])
    assert [(r["listing_id"], r["split"]) for r in rows] == [("e1", "val"), ("e3", "train"), ("e4", "val")]
    assert rows[0]["images"] == [str((tmp_path / "extra" / "images" / "e1.jpg").resolve())]
    assert merged.image_path(rows[0]["images"][0]) == tmp_path / "extra" / "images" / "e1.jpg"
    assert [b["slug"] for b in merged.brands] == ["nike", "puma", "fila"] and len(merged.listings) == 4
    with pytest.raises(ValueError, match="already in the training data"):
        train_mod.merge_datasets(main, [extra, extra])


def test_retrain_learns_from_exported_feedback(exported: Path, tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "data", DataConfig(n_brands=30, listings_per_brand=5, seed=0), progress=False)
    base = load_dataset(data)
    feedback = load_dataset(exported)
    expected = {s: sum(r["split"] == s for r in feedback.listings) for s in ("train", "val")}
    assert sum(expected.values()) == 3  # the held-out brand's verdict stays out
    # The quick config on fewer main listings, without embedder fine-tuning or the plain-mark statistic (the merge
    # touches none of them), so that this test stays short; the cap also shows that appended listings are never
    # capped away.
    cap = 24
    quick = dataclasses.asdict(train_mod.get_train_config("quick"))
    config = quick | {"finetune": None, "max_listings": cap, "features": {**quick["features"], "plain_marks": False}}
    (tmp_path / "quick-no-finetune.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    assert train_mod.main(["--config", str(tmp_path / "quick-no-finetune.json"), "--data", str(data), "--out",
                           str(out), "--no-progress", "--extra-data", str(exported)]) == 0
    meta = json.loads((out / "model" / "model.json").read_text())
    [extra] = meta["data"]["extra_data"]
    assert extra["path"] == str(exported.resolve()) and extra["generator"] == "training.feedback"
    assert extra["n_listings"] == expected
    for split in ("train", "val"):
        assert meta["data"]["n_listings"][split] == min(cap, len(base.listings_for(split))) + expected[split]
    assert meta["train_config"]["extra_data"] == [str(exported)]
