"""Tests for the synthetic listing generator: splits, rendering, dataset files and loader."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import render, render3d, scenes, snapshots
from training.data import LABELS, DataConfig, generate_dataset, load_dataset, main, photo_scenes
from training.splits import SPLITS, assign_brand_splits, is_heldout_brand, split_hash

SMALL = DataConfig(
    seed=7,
    n_brands=30,
    listings_per_brand=6,
    listings_per_unregistered_brand=2,
    generic_listings_per_brand=0.6,
    images_per_listing=(1, 2),
    photo_size=160,
    reference_size=128,
)
TINY = dataclasses.replace(SMALL, n_brands=8, listings_per_brand=3, generic_listings_per_brand=0.25)
JSON_FILES = ("brands.jsonl", "assets.jsonl", "listings.jsonl", "manifest.json")


def _sha1_heldout(slug: str) -> bool:
    """Independent restatement of the held-out rule in common.md."""
    return int(hashlib.sha1(slug.encode("utf-8")).hexdigest(), 16) % 10 == 0


def _file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("ds") / "small", SMALL, progress=False)


@pytest.fixture(scope="module")
def ds(dataset_dir: Path):
    return load_dataset(dataset_dir)


# ---------------------------------------------------------------------------------------------- splits


def test_is_heldout_brand_matches_sha1_rule() -> None:
    slugs = [icon.slug for icon in render.list_icons()]
    assert all(is_heldout_brand(s) == _sha1_heldout(s) for s in slugs)
    share = sum(map(_sha1_heldout, slugs)) / len(slugs)
    assert 0.07 < share < 0.13


def test_assign_brand_splits_rules_and_determinism() -> None:
    slugs = [icon.slug for icon in render.list_icons()]
    a = assign_brand_splits(slugs, seed=3)
    assert a == assign_brand_splits(list(reversed(slugs)), seed=3)  # order-independent
    assert a != assign_brand_splits(slugs, seed=4)
    assert set(a) == set(slugs)
    for slug, s in a.items():
        assert s.heldout == _sha1_heldout(slug)
        assert s.split == "test" if s.heldout else s.split in ("train", "val")
    seen = [s for s in a.values() if not s.heldout]
    val_share = sum(s.split == "val" for s in seen) / len(seen)
    assert val_share == pytest.approx(0.15, abs=0.01)
    for group in (seen, [s for s in a.values() if s.heldout]):
        assert sum(not s.registered for s in group) / len(group) == pytest.approx(0.3, abs=0.01)
    for split in SPLITS:  # every split has registered brands and unregistered (distractor) logos
        assert {s.registered for s in a.values() if s.split == split} == {True, False}


def test_split_hash_is_order_independent() -> None:
    rows = [{"listing_id": "b"}, {"listing_id": "a"}]
    assert split_hash(rows) == split_hash(list(reversed(rows))) == split_hash(["a", "b"])
    assert split_hash(rows) == hashlib.sha256(b"a\nb").hexdigest()
    assert split_hash(["a"]) != split_hash(["a", "b"])


# ---------------------------------------------------------------------------------------------- rendering


def test_list_icons_sorted_and_complete() -> None:
    icons = render.list_icons()
    assert len(icons) > 3000
    assert [i.slug for i in icons] == sorted(i.slug for i in icons)
    with pytest.raises(KeyError):
        render.get_icon("no-such-brand-slug")


def test_render_logo_injects_fill_colour() -> None:
    logo = render.render_logo(render.get_icon("nike"), 96, color="#FF0000")
    arr = np.asarray(logo)
    assert logo.mode == "RGBA" and logo.size == (96, 96)
    ink = arr[arr[..., 3] > 250]
    assert len(ink) > 200
    assert np.all(ink[:, 0] > 240) and np.all(ink[:, 1:3] < 15)
    with_bg = np.asarray(render.render_logo(render.get_icon("nike"), 96, background="00FF00"))
    assert with_bg[..., 3].min() == 255


@pytest.mark.parametrize("variant", render.REFERENCE_VARIANTS)
def test_render_reference_draws_the_logo(variant: str) -> None:
    icon = render.get_icon("spotify")  # brand colour 1ED760
    img = render.render_reference(icon, variant, size=128)
    assert img.mode == "RGB" and img.size == (128, 128)
    arr = np.asarray(img).astype(int)
    background = arr[0, 0]
    differs = np.abs(arr - background).sum(axis=2) > 60
    assert 0.1 < differs.mean() < 0.9  # a logo, neither blank nor a full fill
    brand = np.array(render.hex_to_rgb(icon.hex))
    near_brand = np.abs(arr - brand).max(axis=2) < 12
    assert near_brand.mean() > 0.05  # brand colour present, as logo or as background
    assert not differs[:8].any() and not differs[-8:].any()  # margin left around the logo


def test_render_reference_rejects_unknown_variant() -> None:
    with pytest.raises(ValueError, match="light"):
        render.render_reference(render.get_icon("nike"), "sepia")


def test_compose_listing_photo_every_product_is_deterministic() -> None:
    logo = render.render_logo(render.get_icon("github"), 128)
    for kind in render.PRODUCT_KINDS:
        a = render.compose_listing_photo(logo, np.random.default_rng(1), 160, product=kind, caption="SALE")
        b = render.compose_listing_photo(logo, np.random.default_rng(1), 160, product=kind, caption="SALE")
        assert a.mode == "RGB" and a.size == (160, 160)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert np.asarray(a).std() > 5  # not a flat image
    with pytest.raises(ValueError, match="tshirt"):
        render.compose_listing_photo(None, np.random.default_rng(0), 64, product="spaceship")


def test_compose_places_logo_on_product() -> None:
    """Same scene with and without the logo: the logo changes a compact area of a plausible size."""
    logo = render.render_logo(render.get_icon("github"), 128)
    for seed in range(5):
        with_logo = np.asarray(render.compose_listing_photo(
            logo, np.random.default_rng(seed), 160, product="tshirt", product_color=(240, 240, 236)), dtype=int)
        rng = np.random.default_rng(seed)
        without = np.asarray(render.compose_listing_photo(
            Image.new("RGBA", (128, 128)), rng, 160, product="tshirt", product_color=(240, 240, 236)), dtype=int)
        changed = np.abs(with_logo - without).max(axis=2) > 40
        assert 0.003 < changed.mean() < 0.35


def test_make_reupload_changes_bytes_keeps_content() -> None:
    rng = np.random.default_rng(0)
    original = render.compose_listing_photo(render.render_logo(render.get_icon("nike"), 128), rng, 160)
    copy = render.make_reupload(original, np.random.default_rng(5), caption="Best Quality")
    assert copy.mode == "RGB"
    assert 100 <= max(copy.size) <= 200
    assert copy.tobytes() != original.tobytes()


# The second, third and fourth photo composers: how to draw a photo, which scene, object or item a seed draws, all
# of them, and how many seeds a test takes (a ray-cast photo costs more than a 2-D scene; seeds 0-39 draw every
# snapshot item).
COMPOSERS = {
    "scenes": (scenes.compose_scene_photo, scenes.scene_of, tuple(scenes.SCENES), 60),
    "render3d": (render3d.compose_3d_photo, render3d.object_of, tuple(render3d.OBJECTS), 30),
    "snapshots": (snapshots.compose_snapshot_photo, snapshots.kind_of, tuple(snapshots.KINDS), 40),
}


@pytest.mark.parametrize("style", sorted(COMPOSERS))
def test_every_scene_draws_a_deterministic_photo_with_and_without_a_logo(style: str) -> None:
    compose, name_of, names, n_seeds = COMPOSERS[style]
    logo = render.render_logo(render.get_icon("github"), 128)
    drawn = set()
    for seed in range(n_seeds):
        for mark in (logo, None):
            for studio in (False, True):
                a = compose(mark, np.random.default_rng(seed), 160, caption="SALE", studio=studio)
                b = compose(mark, np.random.default_rng(seed), 160, caption="SALE", studio=studio)
                assert a.mode == "RGB" and a.size == (160, 160)
                assert np.array_equal(np.asarray(a), np.asarray(b))
                assert np.asarray(a).std() > 3  # not a flat image
                drawn.add(name_of(seed))
    assert drawn == set(names)


@pytest.mark.parametrize("style", sorted(COMPOSERS))
def test_scene_photos_show_the_logo(style: str) -> None:
    """Same seed with and without the logo: the logo changes a visible share of the photo in every scene."""
    compose, name_of, names, n_seeds = COMPOSERS[style]
    logo = render.render_logo(render.get_icon("github"), 128)
    changed_by_scene: dict[str, list[float]] = {}
    for seed in range(n_seeds + 20):
        with_logo = np.asarray(compose(logo, np.random.default_rng(seed), 160), dtype=int)
        without = np.asarray(compose(Image.new("RGBA", (128, 128)), np.random.default_rng(seed), 160), dtype=int)
        changed = float((np.abs(with_logo - without).max(axis=2) > 25).mean())
        changed_by_scene.setdefault(name_of(seed), []).append(changed)
    assert set(changed_by_scene) == set(names)
    for scene, shares in changed_by_scene.items():
        assert 0.003 < float(np.median(shares)) < 0.5, (scene, shares)


def test_render3d_geometry() -> None:
    """The ray casts: a ray down the axis of view meets each primitive where it should, with the right normal."""
    o = np.array([0.0, 0.5, 5.0])
    d = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # straight at the object; straight up (misses)
    cyl = render3d._cylinder(o, d, 0.5, 1.0)
    assert cyl.t[0] == pytest.approx(4.5) and np.allclose(cyl.normal[0], [0, 0, 1]) and np.isinf(cyl.t[1])
    assert cyl.uv[0] == pytest.approx([0.5, 0.5])  # u 0.5 faces +z, v runs down from the rim
    ball = render3d._sphere(o, d, np.array([0.0, 0.5, 0.0]), 0.5)
    assert ball.t[0] == pytest.approx(4.5) and np.allclose(ball.normal[0], [0, 0, 1]) and np.isinf(ball.t[1])
    box, face = render3d._box(o, d, np.array([0.4, 0.5, 0.3]))
    assert box.t[0] == pytest.approx(4.7) and face[0] == 0 and box.uv[0] == pytest.approx([0.5, 0.5])
    flat = render3d._plane_z(o, d, 1.0, 1.0, folds=[])
    assert flat.t[0] == pytest.approx(5.0) and np.allclose(flat.normal[0], [0, 0, 1]) and np.isinf(flat.t[1])
    with pytest.raises(ValueError, match="mug, bottle"):
        render3d.compose_3d_photo(None, np.random.default_rng(0), 64, obj="teapot")


def test_snapshot_camera_aims_at_the_mark() -> None:
    """The snapshot camera: the mark's anchor lands where aimed at the chosen scale, a frontal item is only scaled
    and rolled, a tilted one is foreshortened (its far edge shorter), bending paper carries the anchor along, and an
    unknown item is refused by name."""

    def project(h: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
        p = np.c_[np.asarray(pts, float), np.ones(len(pts))] @ h.T
        return p[:, :2] / p[:, 2:]

    anchor, centre = (50.0, 40.0), (160.0, 150.0)
    roll = np.radians(30)
    frontal = snapshots._homography(anchor, snapshots._rotation(0, 0, roll), 400.0, 2.0, centre)
    a, b = project(frontal, [anchor, (60.0, 40.0)])
    assert a == pytest.approx(centre) and b - a == pytest.approx([20 * np.cos(roll), 20 * np.sin(roll)])
    assert np.allclose(frontal[2, :2], 0)  # no perspective: a similarity
    tilted = snapshots._homography(anchor, snapshots._rotation(0, np.radians(50), 0), 400.0, 2.0, centre)
    tl, tr, bl, br, mid = project(tilted, [(0, 0), (100, 0), (0, 80), (100, 80), anchor])
    assert mid == pytest.approx(centre)
    assert np.linalg.norm(br - bl) < 0.8 * np.linalg.norm(tr - tl)  # the bottom edge tipped away from the camera
    tex = np.zeros((100, 80, 4), np.float32)
    tex[48:53, 18:23] = 1  # a dot centred at (20, 50)
    for sag in (-0.05, 0.05):
        bent, moved = snapshots._curl(tex, sag, (20.0, 50.0))
        ys, xs = np.nonzero(bent[..., 3] > 0.5)
        assert (xs.mean(), ys.mean()) == pytest.approx(moved, abs=0.5)
    with pytest.raises(ValueError, match="hang_tag, sticker"):
        snapshots.compose_snapshot_photo(None, np.random.default_rng(0), 64, kind="teapot")


@pytest.mark.parametrize("style", sorted(COMPOSERS))
def test_photo_style_changes_only_the_listing_photos(tmp_path: Path, style: str) -> None:
    _, _, names, _ = COMPOSERS[style]
    config = dataclasses.replace(TINY, photo_style=style)
    mockup = generate_dataset(tmp_path / "mockup", TINY, progress=False)
    other = generate_dataset(tmp_path / style, config, progress=False)
    for name in ("brands.jsonl", "assets.jsonl", "listings.jsonl"):
        assert (mockup / name).read_bytes() == (other / name).read_bytes(), name
    assert json.loads((other / "manifest.json").read_text())["config"]["photo_style"] == style
    a, b = _file_digests(mockup), _file_digests(other)
    assert a.keys() == b.keys()
    photos = [k for k in a if k.startswith("images/listings/")]
    assert photos and all(a[k] != b[k] for k in photos)
    assert all(a[k] == b[k] for k in a if k.startswith("images/") and k not in photos)  # references are the same
    listings = load_dataset(other).listings
    named = [photo_scenes(row, config) for row in listings]
    assert all(len(n) == len(row["images"]) and set(n) <= {*names, "reupload"} for n, row in zip(named, listings))
    assert [n[0] == "reupload" for n in named] == [row["meta"]["reupload_of"] is not None for row in listings]
    assert len({s for n in named for s in n}) >= 4
    assert all(photo_scenes(row, TINY) == [] for row in listings)
    with pytest.raises(ValueError, match="mockup, scenes, render3d, snapshots"):
        DataConfig(photo_style="watercolour")


# ---------------------------------------------------------------------------------------------- dataset


def test_same_seed_gives_identical_files(dataset_dir: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "again", SMALL, progress=False)
    first, second = _file_digests(dataset_dir), _file_digests(again)
    for name in JSON_FILES:
        assert (dataset_dir / name).read_bytes() == (again / name).read_bytes(), name
    assert first == second  # images too


def test_cli_with_workers_matches_library(tmp_path: Path) -> None:
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(dataclasses.asdict(TINY)))
    assert main(["--out", str(tmp_path / "cli"), "--config", str(cfg_path), "--workers", "2", "--no-progress"]) == 0
    lib = generate_dataset(tmp_path / "lib", TINY, progress=False)
    assert _file_digests(tmp_path / "cli") == _file_digests(lib)
    other = generate_dataset(tmp_path / "other", dataclasses.replace(TINY, seed=8), progress=False)
    assert (other / "listings.jsonl").read_bytes() != (lib / "listings.jsonl").read_bytes()
    with pytest.raises(FileExistsError):
        generate_dataset(lib, TINY, progress=False)


def test_heldout_brands_only_in_test(ds) -> None:
    heldout = {b["slug"] for b in ds.brands if _sha1_heldout(b["slug"])}
    assert heldout, "the sample must contain held-out brands"
    assert {b["slug"] for b in ds.brands if b["heldout"]} == heldout
    for b in ds.brands:
        if b["slug"] in heldout:
            assert b["split"] == "test"
    for row in ds.listings:
        m = row["meta"]
        for slug in (row["brand_slug"], m["logo_slug"], m["mentioned_brand"]):
            if slug in heldout:
                assert row["split"] == "test", row["listing_id"]
    for a in ds.assets:
        if a["brand_slug"] in heldout:
            assert a["split"] == "test"
    # Held-out brands appear both as registered brands and as unregistered distractor logos.
    registered = {b["slug"]: b["registered"] for b in ds.brands}
    shown = {r["meta"]["logo_slug"] for r in ds.listings_for("test")}
    assert {registered[s] for s in shown & heldout} == {True, False}


def test_every_image_exists_and_opens(ds) -> None:
    paths = {p for r in ds.listings for p in r["images"]} | {a["image"] for a in ds.assets}
    for rel in paths:
        assert not Path(rel).is_absolute() and rel.startswith("images/")
        with Image.open(ds.image_path(rel)) as im:
            assert im.format == "JPEG"
            im.verify()
    on_disk = {str(p.relative_to(ds.root)) for p in (ds.root / "images").rglob("*.jpg")}
    assert on_disk == paths  # nothing orphaned


def test_fields_and_labels_are_valid(ds) -> None:
    brands = {b["slug"]: b for b in ds.brands}
    assert set(brands) == {b["slug"] for b in ds.brands_for()}
    expected = assign_brand_splits(brands, SMALL.seed, SMALL.val_fraction, SMALL.unregistered_fraction)
    for slug, b in brands.items():
        assert (b["split"], b["registered"]) == (expected[slug].split, expected[slug].registered)
        assert b["name"] == render.get_icon(slug).title
        assert 2 <= len(b["authorized_sellers"]) <= 3 and f"{slug}-official" in b["authorized_sellers"]
        assert SMALL.price_floor_range[0] <= b["min_price"] <= SMALL.price_floor_range[1]
        assert re.fullmatch(r"[0-9A-F]{6}", b["hex"]) and b["currency"] == "USD"
        assert b["name"] not in b["aliases"]

    ids = [r["listing_id"] for r in ds.listings]
    assert len(ids) == len(set(ids))
    labels = {r["label"] for r in ds.listings}
    assert labels == set(LABELS)
    for r in ds.listings:
        m = r["meta"]
        assert r["split"] in SPLITS and r["currency"] == "USD" and r["price"] > 0
        assert 1 <= len(r["images"]) <= 2 and r["title"] and r["description"]
        if r["label"] == "unbranded":
            assert r["brand_slug"] is None
            if m["logo_slug"] is not None:
                assert not brands[m["logo_slug"]]["registered"]
                assert r["split"] == brands[m["logo_slug"]]["split"]
            continue
        brand = brands[r["brand_slug"]]
        assert brand["registered"] and r["split"] == brand["split"] and m["logo_slug"] == r["brand_slug"]
        ratio = r["price"] / brand["min_price"]
        if r["label"] == "authentic":
            assert m["kind"] in ("official", "resale")
            assert (r["seller_id"] in brand["authorized_sellers"]) == (m["kind"] == "official")
            assert ratio >= 0.74
            assert not m["signals"]
        else:
            assert 1 <= len(m["signals"]) <= 3
            assert r["seller_id"] not in brand["authorized_sellers"]
            assert (ratio < 0.51) == ("discount" in m["signals"])
            if "replica" in m["signals"]:
                text = (r["title"] + " " + r["description"]).lower()
                assert any(t.lower() in text for t in m["replica_terms"])
            if "obfuscation" in m["signals"]:
                assert m["shown_name"] != brand["name"] and m["shown_name"] in r["title"]
    for split in SPLITS:
        assert {r["label"] for r in ds.listings_for(split)} == set(LABELS), split

    for a in ds.assets:
        assert brands[a["brand_slug"]]["registered"] and a["split"] == brands[a["brand_slug"]]["split"]
        assert a["kind"] in ("authentic", "known_fake")
    registered = [s for s, b in brands.items() if b["registered"]]
    assert len(ds.assets_for(kind="authentic")) == 2 * len(registered)


def test_manifest_describes_the_data(ds) -> None:
    m = ds.manifest
    assert m["format_version"] == "1.0" and m["seed"] == SMALL.seed
    assert DataConfig(**m["config"]) == SMALL
    for split in SPLITS:
        rows = ds.listings_for(split)
        assert m["split_hashes"][split]["listings"] == split_hash(rows)
        assert sum(m["counts"]["listings"][split].values()) == len(rows)
    assert m["counts"]["images"] == len({p for r in ds.listings for p in r["images"]}) + len(
        ds.assets_for(kind="authentic"))
    assert "simple-icons-pack" in m["package_versions"]


def test_hard_cases_present(ds) -> None:
    by_case: dict[str, list[dict]] = {}
    for r in ds.listings:
        by_case.setdefault(r["meta"]["hard_case"], []).append(r)
    for case in ("compatible_mention", "authentic_resale_discount", "generic_cheap", "counterfeit_image_only",
                 "counterfeit_replica_normal_price", "counterfeit_obfuscated_title_only"):
        assert by_case.get(case), f"missing hard case {case}"
    for r in by_case["compatible_mention"]:
        brand = ds.brand(r["meta"]["mentioned_brand"])
        assert r["label"] == "unbranded" and brand["registered"] and brand["name"] in r["title"]
        assert r["meta"]["logo_slug"] is None and r["split"] == brand["split"]
    for r in by_case["authentic_resale_discount"]:
        assert r["label"] == "authentic"
        assert 0.74 <= r["price"] / ds.brand(r["brand_slug"])["min_price"] <= 0.96
    for r in by_case["generic_cheap"]:
        assert r["label"] == "unbranded" and r["price"] < 16
        assert re.search(r"generic|unbranded|no logo|plain|blank", r["title"].lower())
    for r in by_case["counterfeit_replica_normal_price"]:
        assert r["price"] >= ds.brand(r["brand_slug"])["min_price"]
    # Unbranded listings that show an unregistered brand's logo.
    assert any(r["meta"]["kind"] == "unregistered_logo" for r in ds.listings)


def test_obfuscations_cover_several_kinds(ds) -> None:
    kinds = {r["meta"]["obfuscation"] for r in ds.listings if r["meta"]["obfuscation"]}
    assert len(kinds) >= 3


def test_reuploads_reference_known_fakes(ds) -> None:
    assets = {a["asset_id"]: a for a in ds.assets}
    listings = {r["listing_id"]: r for r in ds.listings}
    reuploads = [r for r in ds.listings if r["meta"]["reupload_of"]]
    known = ds.assets_for(kind="known_fake")
    assert known and len(reuploads) == SMALL.reuploads_per_known_fake * len(known)
    for r in reuploads:
        asset = assets[r["meta"]["reupload_of"]]
        assert asset["kind"] == "known_fake" and asset["brand_slug"] == r["brand_slug"]
        assert r["label"] == "counterfeit" and "reupload" in r["meta"]["signals"]
        assert ds.image_path(asset["image"]).exists()
        assert ds.image_path(r["images"][0]).read_bytes() != ds.image_path(asset["image"]).read_bytes()
    for a in known:
        original = listings[a["source"].removeprefix("listing:")]
        assert original["label"] == "counterfeit" and original["images"][0] == a["image"]
        assert original["meta"]["known_fake_asset"] == a["asset_id"]


def test_load_dataset_rejects_other_versions(dataset_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in JSON_FILES:
        (copy / name).write_bytes((dataset_dir / name).read_bytes())
    (copy / "manifest.json").write_text(json.dumps({"format_version": "2.0"}))
    with pytest.raises(ValueError, match="format_version"):
        load_dataset(copy)
    (copy / "listings.jsonl").unlink()
    with pytest.raises(FileNotFoundError):
        load_dataset(copy)
    with pytest.raises(ValueError, match="train"):
        load_dataset(dataset_dir).listings_for("holdout")
