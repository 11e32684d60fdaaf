"""Catalog lifecycle: add/search/delete, restart, mismatch detection and repair, IVF training, reloads."""

from __future__ import annotations

import io
import json
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

import cairosvg
import numpy as np
import pytest
import simple_icons_pack
from PIL import Image, ImageEnhance, ImageOps

from indexes.catalog import INDEX_NAMES, AssetInput, Catalog, CatalogError, EmbedderLike, IndexMismatchError
from indexes.index import PAD_ID
from indexes.registry import Conflict, Invalid, NotFound

DIM = 64
LOGOS = {"Nike": "nike", "Adidas": "adidas", "Puma": "puma", "NVIDIA": "nvidia", "HSBC": "hsbc", "AMD": "amd"}


class FakeEmbedder:
    """Deterministic stand-in for the real embedder, honest enough for retrieval tests.

    Images: 16x16 RGB thumbnail, centred per image, through a fixed Gaussian projection (similar pictures keep
    similar vectors, by Johnson-Lindenstrauss). Fingerprints: the same through another projection, of twice the
    length, summed over the picture and its mirror (flip-invariant). Texts: signed hashed character trigrams (shared
    spelling -> high cosine).
    """

    def __init__(self, model_id: str = "fake-pixels-trigrams@1", dim: int = DIM) -> None:
        self.model_id = model_id
        self.references_id = f"{model_id}#as-uploaded"
        self.fingerprints_id = f"{model_id}#fingerprint"
        self.dim = dim
        rng = np.random.default_rng(1234)
        self._projection = rng.standard_normal((16 * 16 * 3, dim)).astype(np.float32)
        self.fingerprint_dim = 2 * dim
        self._fingerprint_projection = rng.standard_normal((16 * 16 * 3, 2 * dim)).astype(np.float32)
        self._fallback = rng.standard_normal(dim).astype(np.float32)  # keeps blank images off the zero vector
        self.images_embedded = 0
        self.texts_embedded = 0

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    @staticmethod
    def _pixels(images: Sequence[Image.Image]) -> np.ndarray:
        pixels = np.stack(
            [
                np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR), np.float32).ravel() / 255.0
                for im in images
            ]
        )
        return pixels - pixels.mean(axis=1, keepdims=True)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.images_embedded += len(images)
        return self._unit(self._pixels(images) @ self._projection + 1e-4 * self._fallback)

    embed_references = embed_images  # no framing: these tests are about the catalog, not the references

    def embed_fingerprints(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.images_embedded += len(images)
        both = self._pixels(images) + self._pixels([ImageOps.mirror(im) for im in images])
        return self._unit(both @ self._fingerprint_projection + 1e-4)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.casefold()} "
            for i in range(len(padded) - 2):
                h = zlib.crc32(padded[i : i + 3].encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        return self._unit(out + 1e-4 * self._fallback)


def render_logo(slug: str, size: int = 96, color: str | None = None) -> Image.Image:
    """Rasterise a Simple Icons logo in its brand colour on white."""
    icon = simple_icons_pack.get_icon(slug)
    svg = icon.svg.replace("<svg ", f'<svg fill="#{color or icon.hex}" ', 1)
    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=size, output_height=size)
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGB", rgba.size, "white")
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def as_jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def listing_photo(slug: str) -> Image.Image:
    """A marketplace-like copy of a logo: bigger, slightly darker, JPEG-compressed."""
    img = ImageEnhance.Brightness(render_logo(slug, size=128)).enhance(0.9)
    return Image.open(io.BytesIO(as_jpeg(img, quality=70)))


def noise_images(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "catalog"


@pytest.fixture
def populated(home: Path, embedder: FakeEmbedder) -> dict:
    """A catalog with six brands, one authentic logo each, a known fake, then closed."""
    with Catalog.open(home, embedder) as catalog:
        brands = {}
        assets = {}
        for name, slug in LOGOS.items():
            brands[name], _ = catalog.add_brand(name, aliases=[f"{name} Official"], authorized_sellers=[f"{slug}.com"])
            assets[name], _ = catalog.add_asset(
                brands[name], "authentic", as_jpeg(render_logo(slug)), title=f"{name} logo tee"
            )
        fake_id, version = catalog.add_asset(brands["Nike"], "known_fake", render_logo("nike", color="FF00FF"))
    return {"brands": brands, "assets": assets, "fake_id": fake_id, "version": version}


def top_ids(catalog: Catalog, slugs: Sequence[str], kind: str = "authentic", k: int = 3) -> np.ndarray:
    photos = [listing_photo(s) for s in slugs]
    embed = catalog.embedder.embed_fingerprints if kind == "known_fake" else catalog.embedder.embed_images
    vectors = embed(photos)
    return catalog.search_images(vectors, kind=kind, k=k)[1]


# ------------------------------------------------------------------------------------------------ basic lifecycle
def test_fake_embedder_is_honest(embedder: FakeEmbedder) -> None:
    assert isinstance(embedder, EmbedderLike)
    original, copy, other = embedder.embed_images([render_logo("nike"), listing_photo("nike"), render_logo("adidas")])
    assert original @ copy > 0.9 and original @ other < original @ copy
    a, b, c = embedder.embed_texts(["Nike", "NIKE shoes", "Puma"])
    assert a @ b > a @ c


def test_empty_home_creates_empty_catalog(home: Path, embedder: FakeEmbedder) -> None:
    with Catalog.open(home, embedder) as catalog:
        assert catalog.index_version == 0
        assert all(catalog.ntotal(name) == 0 for name in INDEX_NAMES)
        sims, ids = catalog.search_images(embedder.embed_images([render_logo("nike")]), k=2)
        assert (ids == PAD_ID).all() and np.isneginf(sims).all()
        assert catalog.check().ok
    manifest = json.loads((home / "indexes" / "manifest.json").read_text())
    assert manifest["index_version"] == 0 and manifest["embedder"] == {
        "model_id": embedder.model_id, "references_id": embedder.references_id,
        "fingerprints_id": embedder.fingerprints_id, "dim": DIM}
    assert (home / "registry.db").exists()
    with Catalog.open(home, embedder) as catalog:  # reopening the empty catalog verifies cleanly
        assert catalog.index_version == 0


def test_add_search_delete_and_restart(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    brands, assets = populated["brands"], populated["assets"]
    slugs = list(LOGOS.values())
    with Catalog.open(home, embedder) as catalog:
        assert catalog.index_version == populated["version"] == 2 * len(LOGOS) + 1
        found = top_ids(catalog, slugs)
        np.testing.assert_array_equal(found[:, 0], [assets[n] for n in LOGOS])
        assert [catalog.brand_of_asset(a) for a in found[:, 0]] == [brands[n] for n in LOGOS]
        np.testing.assert_array_equal(catalog.lookup_asset_brands(found[:, :1])[:, 0], [brands[n] for n in LOGOS])
        fakes = top_ids(catalog, ["nike"], kind="known_fake", k=2)
        assert fakes[0, 0] == populated["fake_id"] and fakes[0, 1] == PAD_ID

        text_sims, entries = catalog.search_texts(embedder.embed_texts(["nike official"]), k=1)
        assert catalog.brand_of_text_entry(int(entries[0, 0])) == brands["Nike"]
        assert text_sims[0, 0] > 0.9

        [nike_title] = catalog.registry.list_text_entries(asset_id=assets["Nike"])
        title_query = embedder.embed_texts(["Nike logo tee"])
        assert catalog.search_texts(title_query, k=1)[1][0, 0] == nike_title.id
        deleted, version = catalog.delete_asset(assets["Nike"])
        assert deleted and version == populated["version"] + 1
        assert catalog.brand_of_asset(assets["Nike"]) is None
        assert assets["Nike"] not in top_ids(catalog, ["nike"], k=len(LOGOS))
        assert catalog.delete_asset(assets["Nike"]) == (False, version)  # idempotent, no new version
        with pytest.raises(NotFound):
            catalog.delete_asset(10_000)
        assert nike_title.id not in catalog.search_texts(title_query, k=20)[1]  # the title went with its asset
        assert catalog.brand_of_text_entry(nike_title.id) is None
        before = catalog.search_images(embedder.embed_images([listing_photo(s) for s in slugs]), k=3)
        assert catalog.check().ok

    with Catalog.open(home, embedder) as catalog:  # restart: same version, same answers
        assert catalog.index_version == version
        after = catalog.search_images(embedder.embed_images([listing_photo(s) for s in slugs]), k=3)
        np.testing.assert_array_equal(before[1], after[1])
        np.testing.assert_allclose(before[0], after[0], rtol=1e-6)
        assert catalog.brand_of_asset(assets["Adidas"]) == brands["Adidas"]
        assert catalog.registry.get_brand(brands["Nike"]).n_authentic == 0


def test_region_queries_keep_their_shape(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    with Catalog.open(home, embedder) as catalog:
        regions = embedder.embed_images([listing_photo("puma"), render_logo("amd"), listing_photo("hsbc")])
        queries = np.stack([regions, regions[::-1]])  # (N=2, R=3, dim)
        sims, ids = catalog.search_images(queries, k=2)
        assert sims.shape == ids.shape == (2, 3, 2)
        assert ids[0, 0, 0] == ids[1, 2, 0] == populated["assets"]["Puma"]
        with pytest.raises(ValueError, match="query vectors"):
            catalog.search_images(np.zeros((2, DIM + 1), np.float32))
        with pytest.raises(Invalid):
            catalog.search_images(regions, kind="counterfeit")


def test_errors_leave_catalog_unchanged(home: Path, embedder: FakeEmbedder) -> None:
    with Catalog.open(home, embedder) as catalog:
        nike, _ = catalog.add_brand("Nike")
        _, version = catalog.add_asset(nike, "authentic", render_logo("nike"))
        with pytest.raises(Conflict):
            catalog.add_brand("NIKE")
        with pytest.raises(Conflict):
            catalog.add_asset(nike, "authentic", render_logo("nike"))
        with pytest.raises(Invalid, match="image refused"):
            catalog.add_asset(nike, "authentic", b"\x89PNG\r\n\x1a\n-truncated")
        with pytest.raises(NotFound):
            catalog.add_asset(999, "authentic", render_logo("puma"))
        assert catalog.index_version == version
        assert catalog.ntotal("image_authentic") == 1 and catalog.ntotal("text") == 1
        assert catalog.check().ok


def test_add_brands_is_one_version_and_all_or_nothing(home: Path, embedder: FakeEmbedder) -> None:
    with Catalog.open(home, embedder) as catalog:
        ids, version = catalog.add_brands([
            {"name": "Nike", "aliases": ["Nike Inc"], "authorized_sellers": ["nike.com"], "min_price": 40.0},
            {"name": "Puma"},
        ])
        assert version == 1 and len(ids) == 2
        assert [b.name for b in catalog.registry.list_brands()] == ["Nike", "Puma"]
        assert catalog.ntotal("text") == 3  # two names and one alias
        with pytest.raises(Conflict):
            catalog.add_brands([{"name": "Adidas"}, {"name": "PUMA"}])
        assert catalog.index_version == version
        assert [b.name for b in catalog.registry.list_brands()] == ["Nike", "Puma"]
        assert catalog.check().ok
    with Catalog.open(home, embedder) as catalog:
        assert catalog.index_version == version and catalog.ntotal("text") == 3


def test_text_entries_follow_edits(home: Path, embedder: FakeEmbedder) -> None:
    with Catalog.open(home, embedder) as catalog:
        acme, _ = catalog.add_brand("Acme", aliases=["Acme Corp"])
        entry, _ = catalog.add_text_entry(acme, "Roadrunner Gear")
        query = embedder.embed_texts(["roadrunner gear"])
        assert catalog.search_texts(query, k=1)[1][0, 0] == entry
        catalog.update_text_entry(entry, "Coyote Supplies")
        sims, ids = catalog.search_texts(embedder.embed_texts(["coyote supplies"]), k=1)
        assert ids[0, 0] == entry and sims[0, 0] > 0.99
        version = catalog.delete_text_entry(entry)
        assert entry not in catalog.search_texts(query, k=5)[1]
        assert catalog.brand_of_text_entry(entry) is None
        assert catalog.registry.get_brand(acme).aliases == ("Acme Corp",)
    with Catalog.open(home, embedder) as catalog:
        assert catalog.index_version == version


def test_update_brand_reindexes_aliases_and_always_moves_the_version(home: Path, embedder: FakeEmbedder) -> None:
    with Catalog.open(home, embedder) as catalog:
        acme, v0 = catalog.add_brand("Acme", aliases=["Acme Corp"], min_price=10)
        assert catalog.search_texts(embedder.embed_texts(["acme corp"]), k=1)[0][0, 0] > 0.99
        brand, v1 = catalog.update_brand(acme, aliases=["Roadrunner Gear"])
        assert v1 == v0 + 1 and brand.aliases == ("Roadrunner Gear",) and catalog.ntotal("text") == 2
        sims, ids = catalog.search_texts(embedder.embed_texts(["roadrunner gear"]), k=1)
        assert sims[0, 0] > 0.99 and catalog.brand_of_text_entry(int(ids[0, 0])) == acme
        assert catalog.search_texts(embedder.embed_texts(["acme corp"]), k=1)[0][0, 0] < 0.9  # the old alias is gone
        assert set(catalog.search_texts(embedder.embed_texts(["acme"]), k=5)[1][0]) - {-1} == {
            e.id for e in catalog.registry.list_text_entries(brand_id=acme)}
        # No vector changes, but scorers must see the new floor: the version moves all the same.
        brand, v2 = catalog.update_brand(acme, authorized_sellers=["acme-store"], min_price=None)
        assert v2 == v1 + 1 and brand.min_price is None and brand.authorized_sellers == ("acme-store",)
        with pytest.raises(Invalid):
            catalog.update_brand(acme, aliases=["Coyote"], currency="euro")
        assert catalog.index_version == v2 and catalog.registry.get_brand(acme).aliases == ("Roadrunner Gear",)
        assert catalog.check().ok
    with Catalog.open(home, embedder) as catalog:
        assert catalog.index_version == v2 and catalog.ntotal("text") == 2 and catalog.check().ok


def test_bulk_add_is_batched_and_all_or_nothing(home: Path, embedder: FakeEmbedder) -> None:
    with Catalog.open(home, embedder, batch_size=4) as catalog:
        brand, version = catalog.add_brand("Noise Inc")
        items = [
            AssetInput(brand, "authentic" if i % 3 else "known_fake", img, title=f"noise item {i}" if i % 2 else None)
            for i, img in enumerate(noise_images(10, seed=5))
        ]
        progress: list[tuple[int, int]] = []
        ids, new_version = catalog.add_assets(items, progress=lambda done, total: progress.append((done, total)))
        assert new_version == version + 1 and len(ids) == 10
        assert progress == [(4, 10), (8, 10), (10, 10)]
        assert catalog.ntotal("image_authentic") == 6 and catalog.ntotal("image_known_fake") == 4
        assert catalog.ntotal("text") == 1 + 5  # brand name + five titles
        _, found = catalog.search_images(embedder.embed_images([items[1].image]), k=1)
        assert found[0, 0] == ids[1]

        bad = [AssetInput(brand, "authentic", img) for img in noise_images(5, seed=6)]
        bad[3] = AssetInput(brand, "authentic", b"GIF89a-not-really")
        with pytest.raises(Invalid, match="item 3"):
            catalog.add_assets(bad)
        dup = [AssetInput(brand, "authentic", img) for img in noise_images(2, seed=7)] + [items[1]]
        with pytest.raises(Conflict, match="item 2"):
            catalog.add_assets(dup)
        assert catalog.index_version == new_version
        assert len(catalog.registry.list_assets()) == 10
        assert catalog.check().ok


# ------------------------------------------------------------------------------------------------ mismatch + repair
def assert_repairs(home: Path, embedder: FakeEmbedder, *messages: str) -> Catalog:
    """Open must refuse with a report naming the problem; repair=True rebuilds; a plain open then succeeds."""
    with pytest.raises(IndexMismatchError) as info:
        Catalog.open(home, embedder)
    report = info.value.report
    assert not report.ok
    text = str(info.value)
    for message in messages:
        assert message in text, text
    assert "rebuild" in text
    Catalog.open(home, embedder, repair=True).close()
    return Catalog.open(home, embedder)


def test_corrupt_manifest_is_refused_then_repaired(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    (home / "indexes" / "manifest.json").write_text("{ not json")
    with assert_repairs(home, embedder, "manifest", "unreadable") as catalog:
        assert catalog.index_version == populated["version"] + 1
        assert top_ids(catalog, ["adidas"])[0, 0] == populated["assets"]["Adidas"]


def test_deleted_index_file_is_refused_then_repaired(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    manifest = json.loads((home / "indexes" / "manifest.json").read_text())
    (home / "indexes" / manifest["indexes"]["image_authentic"]["file"]).unlink()
    with assert_repairs(home, embedder, "image_authentic", "missing") as catalog:
        assert top_ids(catalog, ["hsbc"])[0, 0] == populated["assets"]["HSBC"]
        assert catalog.check().ok
    assert len(list((home / "indexes").glob("*.faiss"))) == 3  # superseded files were cleaned up


def test_tampered_index_file_is_refused(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    manifest = json.loads((home / "indexes" / "manifest.json").read_text())
    path = home / "indexes" / manifest["indexes"]["text"]["file"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last vector: still loads, but is not what the manifest recorded
    path.write_bytes(bytes(data))
    with assert_repairs(home, embedder, "text", "sha256 differs"):
        pass


def test_row_added_behind_the_catalogs_back(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    with Catalog.open(home, embedder) as catalog:
        sneaky = catalog.registry.add_asset(
            populated["brands"]["AMD"], "known_fake", render_logo("amd", color="00FF00")
        )
    with assert_repairs(home, embedder, "image_known_fake", "not indexed", "index_version") as catalog:
        query = embedder.embed_fingerprints([render_logo("amd", color="00FF00")])
        _, found = catalog.search_images(query, "known_fake", k=1)
        assert found[0, 0] == sneaky.id
        assert catalog.brand_of_asset(sneaky.id) == populated["brands"]["AMD"]


def test_other_embedder_or_factory_is_refused(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    with pytest.raises(IndexMismatchError, match="built by embedder 'fake-pixels-trigrams@1'"):
        Catalog.open(home, FakeEmbedder(model_id="fake-pixels-trigrams@2"))
    with pytest.raises(IndexMismatchError, match="factory"):
        Catalog.open(home, embedder, index_factory="IVF4,Flat")


def test_changed_reference_framing_is_refused_then_references_reembedded(
    home: Path, embedder: FakeEmbedder, populated: dict
) -> None:
    reframed = FakeEmbedder()
    reframed.references_id = f"{reframed.model_id}#framed-differently"
    with assert_repairs(home, reframed, "framing or views changed") as catalog:
        # Only the reference images were embedded again: fingerprints and texts came from the cache.
        authentic = catalog.registry.list_assets(kind="authentic")
        assert reframed.images_embedded == len(authentic) and reframed.texts_embedded == 0
        assert top_ids(catalog, ["adidas"])[0, 0] == populated["assets"]["Adidas"]


def test_changed_fingerprint_views_are_refused_then_known_fakes_refingerprinted(
    home: Path, embedder: FakeEmbedder, populated: dict
) -> None:
    manifest_path = home / "indexes" / "manifest.json"
    old = json.loads(manifest_path.read_text())
    del old["embedder"]["fingerprints_id"]  # written before the recipe was recorded: the two-view one
    manifest_path.write_text(json.dumps(old))
    with Catalog.open(home, embedder) as catalog:
        assert catalog.check().ok
    bordered = FakeEmbedder()
    bordered.fingerprints_id = f"{bordered.model_id}#fingerprint-border0.06"
    with assert_repairs(home, bordered, "fingerprint views changed") as catalog:
        # Only the known fakes were fingerprinted again: references and texts came from the cache.
        fakes = catalog.registry.list_assets(kind="known_fake")
        assert bordered.images_embedded == len(fakes) > 0 and bordered.texts_embedded == 0


def test_crash_between_commit_and_manifest_is_detected(
    home: Path, embedder: FakeEmbedder, populated: dict, monkeypatch
) -> None:
    catalog = Catalog.open(home, embedder)

    def crash(state) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(catalog, "_write_manifest", crash)
    with pytest.raises(OSError, match="power cut"):
        catalog.add_asset(populated["brands"]["Puma"], "known_fake", render_logo("puma", color="0000FF"))
    catalog.close()
    with assert_repairs(home, embedder, f"manifest is at index_version {populated['version']}") as reopened:
        assert reopened.ntotal("image_known_fake") == 2


def test_crash_before_commit_leaves_previous_version(
    home: Path, embedder: FakeEmbedder, populated: dict, monkeypatch
) -> None:
    catalog = Catalog.open(home, embedder)
    real = catalog._write_index
    calls = []

    def fail_second(name, index, version):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(name, index, version)

    monkeypatch.setattr(catalog, "_write_index", fail_second)
    with pytest.raises(OSError, match="disk full"):
        catalog.add_asset(populated["brands"]["Puma"], "authentic", render_logo("puma", size=64), title="Puma cap")
    assert catalog.index_version == populated["version"]
    assert catalog.ntotal("image_authentic") == len(LOGOS)
    catalog.close()
    with Catalog.open(home, embedder) as reopened:  # rolled back: nothing to repair
        assert reopened.index_version == populated["version"]
        assert len(reopened.registry.list_assets(kind="authentic")) == len(LOGOS)


def test_rebuild_reuses_cached_vectors_for_the_same_model(home: Path, populated: dict) -> None:
    same = FakeEmbedder()
    with Catalog.open(home, same) as catalog:
        version = catalog.rebuild()
        assert version == populated["version"] + 1
        assert same.images_embedded == 0 and same.texts_embedded == 0
        assert catalog.check().ok
    other = FakeEmbedder(model_id="fake-pixels-trigrams@2")
    with Catalog.open(home, other, repair=True) as catalog:
        n_assets = len(LOGOS) + 1
        assert other.images_embedded == n_assets
        assert other.texts_embedded == 3 * len(LOGOS)  # name, alias and title per brand
        assert top_ids(catalog, ["nvidia"])[0, 0] == populated["assets"]["NVIDIA"]


# ------------------------------------------------------------------------------------------------ IVF, reload, threads
def test_ivf_catalog_trains_when_enough_assets(home: Path, embedder: FakeEmbedder) -> None:
    factory = "IVF4,Flat"  # trains at 4 * 39 = 156 vectors
    with Catalog.open(home, embedder, index_factory=factory, nprobe=4) as catalog:
        brand, _ = catalog.add_brand("Noise Inc")
        images = noise_images(170, seed=11)
        ids, _ = catalog.add_assets([AssetInput(brand, "authentic", img) for img in images[:40]])
        manifest = json.loads((home / "indexes" / "manifest.json").read_text())
        entry = manifest["indexes"]["image_authentic"]
        assert entry["exact_fallback"] and entry["effective_factory"] == "IDMap2,Flat"
        assert "untrained" in entry["note"]
        more, _ = catalog.add_assets([AssetInput(brand, "authentic", img) for img in images[40:]])
        manifest = json.loads((home / "indexes" / "manifest.json").read_text())
        entry = manifest["indexes"]["image_authentic"]
        assert not entry["exact_fallback"] and entry["effective_factory"] == factory and entry["ntotal"] == 170
        assert manifest["indexes"]["text"]["exact_fallback"]  # one brand name: far too few to train on
        all_ids = ids + more
        probe = [0, 77, 169]
        _, found = catalog.search_images(embedder.embed_images([images[i] for i in probe]), k=1)
        np.testing.assert_array_equal(found[:, 0], np.asarray(all_ids)[probe])
        catalog.delete_asset(all_ids[0])
        version = catalog.index_version
    with Catalog.open(home, embedder, index_factory=factory, nprobe=4) as catalog:
        assert catalog.index_version == version and catalog.ntotal("image_authentic") == 169
        _, found = catalog.search_images(embedder.embed_images([images[77]]), k=1)
        assert found[0, 0] == all_ids[77]
        catalog.rebuild()
        assert catalog.describe()["indexes"]["image_authentic"]["effective_factory"] == factory


def test_known_fake_index_holds_flip_tolerant_fingerprints(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    fake = render_logo("nike", color="FF00FF")
    with Catalog.open(home, embedder) as catalog:
        assert catalog.describe()["indexes"]["image_known_fake"]["dim"] == embedder.fingerprint_dim == 2 * DIM
        mirrored = embedder.embed_fingerprints([ImageOps.mirror(fake)])
        assert catalog.search_images(mirrored, "known_fake", k=1)[1][0, 0] == populated["fake_id"]
        with pytest.raises(ValueError, match="image_known_fake query vectors must be"):
            catalog.search_images(embedder.embed_images([fake]), "known_fake")
        embedded = embedder.images_embedded
        catalog.rebuild()  # fingerprints are cached apart from embeddings: nothing is re-embedded
        assert embedder.images_embedded == embedded
        assert catalog.search_images(mirrored, "known_fake", k=1)[1][0, 0] == populated["fake_id"]
        assert catalog.check().ok


def test_reload_if_changed_follows_another_writer(
    home: Path, embedder: FakeEmbedder, populated: dict, monkeypatch
) -> None:
    reader = Catalog.open(home, embedder)
    writer = Catalog.open(home, FakeEmbedder())
    try:
        assert reader.reload_if_changed() is False
        new_id, version = writer.add_asset(
            populated["brands"]["HSBC"], "known_fake", render_logo("hsbc", color="000000")
        )
        query = embedder.embed_fingerprints([render_logo("hsbc", color="000000")])
        assert reader.search_images(query, "known_fake", k=1)[1][0, 0] != new_id  # still serving the old version
        assert reader.reload_if_changed() is True
        assert reader.index_version == version
        assert reader.search_images(query, "known_fake", k=1)[1][0, 0] == new_id
        assert reader.brand_of_asset(new_id) == populated["brands"]["HSBC"]
        assert reader.reload_if_changed() is False

        # The writer committed but has not written its manifest yet: the reader keeps serving, no error.
        monkeypatch.setattr(writer, "_write_manifest", lambda state: None)
        writer.delete_asset(new_id)
        assert reader.reload_if_changed() is False
        assert reader.index_version == version

        # A second writer that did not reload is refused rather than forking the version history.
        with pytest.raises(CatalogError, match="behind this catalog"):
            reader.delete_asset(populated["assets"]["AMD"])
    finally:
        reader.close()
        writer.close()


def test_searches_run_safely_during_writes(home: Path, embedder: FakeEmbedder, populated: dict) -> None:
    with Catalog.open(home, embedder) as catalog:
        query = embedder.embed_images([listing_photo("adidas")])
        errors: list[BaseException] = []
        stop = threading.Event()

        def search_loop() -> None:
            try:
                while not stop.is_set():
                    _, ids = catalog.search_images(query, k=3)
                    assert ids[0, 0] == populated["assets"]["Adidas"]
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=search_loop)
        thread.start()
        try:
            brand = populated["brands"]["AMD"]
            for img in noise_images(8, seed=21):
                catalog.add_asset(brand, "authentic", img)
        finally:
            stop.set()
            thread.join()
        assert not errors, errors
        assert catalog.ntotal("image_authentic") == len(LOGOS) + 8


# ------------------------------------------------------------------------------------------------ PostgreSQL
def test_catalog_lifecycle_on_postgresql(home: Path, pg_server) -> None:
    """The registry behind a catalog may be PostgreSQL: writes, searches, restart, check and rebuild all hold."""
    url = pg_server.create_database()
    embedder = FakeEmbedder()
    with Catalog.open(home, embedder, database_url=url) as catalog:
        ids, _ = catalog.add_brands([{"name": n, "aliases": [f"{n} Official"]} for n in LOGOS])
        brands = dict(zip(LOGOS, ids))
        added, _ = catalog.add_assets(
            [AssetInput(brands[n], "authentic", as_jpeg(render_logo(s)), title=f"{n} logo tee") for n, s in LOGOS.items()])
        assets = dict(zip(LOGOS, added))
        fake_id, _ = catalog.add_asset(brands["Nike"], "known_fake", render_logo("nike", color="FF00FF"))
        np.testing.assert_array_equal(top_ids(catalog, list(LOGOS.values()))[:, 0], [assets[n] for n in LOGOS])
        assert top_ids(catalog, ["nike"], kind="known_fake", k=1)[0, 0] == fake_id
        assert catalog.delete_asset(assets["Puma"])[0]
        brand, version = catalog.update_brand(brands["AMD"], aliases=["Radeon"], min_price=99.0)
        assert brand.aliases == ("Radeon",) and catalog.check().ok
        before = top_ids(catalog, list(LOGOS.values()))
    assert not (home / "registry.db").exists()  # nothing went to the default SQLite file
    with Catalog.open(home, embedder, database_url=url) as catalog:
        assert catalog.index_version == version and catalog.check().ok
        np.testing.assert_array_equal(top_ids(catalog, list(LOGOS.values())), before)
        assert catalog.registry.get_brand(brands["AMD"]).min_price == 99.0
        embedded = embedder.images_embedded
        assert catalog.rebuild() == version + 1 and embedder.images_embedded == embedded  # cached vectors reused
        np.testing.assert_array_equal(top_ids(catalog, list(LOGOS.values())), before)
