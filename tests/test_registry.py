"""Registry CRUD and constraints, and safe image decoding (indexes/images.py)."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateIndex, CreateTable

from indexes.images import (
    DARK_MATTE,
    ImageConfig,
    ImageError,
    decode_image,
    encode_image,
    frame_logo,
    prepare_image,
    sha256_hex,
)
from indexes.registry import (
    Base,
    Conflict,
    Invalid,
    MetaRow,
    NotFound,
    Registry,
    RegistryError,
    TextEntryRow,
    normalize_name,
)
from training.render import list_icons


# --------------------------------------------------------------------------------------------------- helpers
def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def two_tone(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Left half red, right half blue: orientation and colour are both checkable."""
    img = Image.new("RGB", size, (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    return img


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A tiny file whose header claims a huge 8-bit grayscale image (the pixels would be mostly zeros)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" * (width + 1)
    idat = zlib.compress(row * min(height, 16), 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Every registry test runs on SQLite (the default) and on a real PostgreSQL server (a fresh database each)."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_server").create_database()
    return f"sqlite:///{tmp_path / 'db' / 'registry.db'}"


@pytest.fixture
def registry(database_url: str) -> Registry:
    reg = Registry(database_url)
    yield reg
    reg.close()


@pytest.fixture
def logo_png() -> bytes:
    img = Image.new("RGB", (64, 64), "white")
    img.paste((200, 30, 30), (16, 16, 48, 48))
    return encode(img, "PNG")


# --------------------------------------------------------------------------------------------------- images
def test_decode_rejects_random_bytes() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ImageError, match="unsupported or unrecognised"):
        decode_image(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


def test_decode_rejects_empty_and_oversized_files() -> None:
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="limit is 100"):
        decode_image(encode(two_tone((400, 400)), "BMP"), max_bytes=100)


def test_decode_rejects_truncated_jpeg() -> None:
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    data = encode(noisy, "JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_decode_rejects_decompression_bomb_before_decoding() -> None:
    data = bomb_png(60_000, 60_000)  # 3.6e9 pixels announced by a ~200-byte file
    assert len(data) < 10_000
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(data)
    with pytest.raises(ImageError, match="limit is 1000"):
        decode_image(bomb_png(100, 100), max_pixels=1000)


def test_decode_rejects_tiff() -> None:
    with pytest.raises(ImageError, match="allowed: JPEG, PNG, WEBP, GIF, BMP"):
        decode_image(encode(two_tone(), "TIFF"))


def test_decode_converts_cmyk_jpeg_to_rgb() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    img = decode_image(encode(cmyk, "JPEG", quality=95))
    assert img.mode == "RGB"
    r, g, b = img.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_decode_scales_16bit_png() -> None:
    arr = np.zeros((8, 8), np.uint16)
    arr[:, 4:] = 65535
    arr[0, 0] = 32896  # 128 * 257
    img = decode_image(encode(Image.fromarray(arr), "PNG"))
    assert img.mode == "RGB"
    assert img.getpixel((6, 6)) == (255, 255, 255)
    assert img.getpixel((0, 0)) == (128, 128, 128)
    assert img.getpixel((1, 1)) == (0, 0, 0)


def test_decode_composites_palette_transparency_on_white() -> None:
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black (made transparent), index 1 red
    pal.paste(1, (0, 0, 5, 10))
    img = decode_image(encode(pal, "PNG", transparency=0))
    assert img.mode == "RGB"
    assert img.getpixel((2, 5)) == (255, 0, 0)
    assert img.getpixel((8, 5)) == (255, 255, 255)  # transparent -> white, not black


def test_decode_composites_alpha_webp_and_la_png_on_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 5, 10))
    img = decode_image(encode(rgba, "WEBP", lossless=True))
    assert img.getpixel((2, 5)) == (0, 0, 255) and img.getpixel((8, 5)) == (255, 255, 255)
    la = Image.new("LA", (4, 4), (0, 0))
    assert decode_image(encode(la, "PNG")).getpixel((1, 1)) == (255, 255, 255)


def test_decode_puts_a_light_transparent_logo_on_a_dark_matte() -> None:
    # A white logo exported for dark web pages would vanish on white; a dark or coloured one keeps the white matte.
    rgba = Image.new("RGBA", (12, 12), (0, 0, 0, 0))
    rgba.paste((255, 255, 255, 255), (3, 3, 9, 9))
    img = decode_image(encode(rgba, "PNG"))
    assert img.getpixel((5, 5)) == (255, 255, 255) and img.getpixel((0, 0)) == DARK_MATTE
    rgba.paste((250, 220, 30, 255), (3, 3, 9, 9))  # yellow is light too
    assert decode_image(encode(rgba, "PNG")).getpixel((0, 0)) == DARK_MATTE
    rgba.paste((200, 30, 30, 255), (3, 3, 9, 9))
    assert decode_image(encode(rgba, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def mark_on(canvas: tuple[int, int], at: tuple[int, int], background=(255, 255, 255)) -> Image.Image:
    """A 60x30 red oval with a blue square in it (not symmetric), drawn at ``at`` on a plain canvas."""
    img = Image.new("RGB", canvas, background)
    draw = ImageDraw.Draw(img)
    draw.ellipse((at[0], at[1], at[0] + 59, at[1] + 29), fill=(200, 20, 20))
    draw.rectangle((at[0] + 12, at[1] + 8, at[0] + 24, at[1] + 20), fill=(20, 20, 200))
    return img


def test_frame_logo_gives_one_framing_whatever_the_upload() -> None:
    tight = mark_on((60, 30), (0, 0))  # touches every edge
    wide = mark_on((400, 300), (250, 40))  # off-centre, wide margins, not square
    framed = [np.asarray(frame_logo(img, size=128, margin=0.25), dtype=np.int16) for img in (tight, wide)]
    assert framed[0].shape == framed[1].shape == (128, 128, 3)
    assert np.abs(framed[0] - framed[1]).mean() < 1.0
    mark = np.nonzero(np.abs(framed[0] - 255).max(axis=2) > 32)
    # longer side = (1 - 2 * margin) of the canvas, centred
    assert (mark[1].min(), mark[1].max() + 1) == (32, 96) and (mark[0].min(), mark[0].max() + 1) == (48, 80)


def test_frame_logo_keeps_a_round_full_bleed_mark_whole() -> None:
    # A round mark touching every edge: its corners are the background, not the red disc.
    disc = Image.new("RGB", (100, 100), (255, 255, 255))
    ImageDraw.Draw(disc).ellipse((0, 0, 99, 99), fill=(200, 20, 20))
    framed = frame_logo(disc, size=100, margin=0.2)
    assert framed.getpixel((50, 50)) == (200, 20, 20) and framed.getpixel((50, 15)) == (255, 255, 255)
    assert framed.getpixel((50, 25)) == (200, 20, 20)  # the disc now spans 20..80


def test_frame_logo_leaves_photos_and_blank_images_alone() -> None:
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    blank = Image.new("RGB", (64, 64), (0, 90, 0))
    assert frame_logo(photo) is photo and frame_logo(blank) is blank


def test_decode_renders_svg_logos_only_when_asked() -> None:
    from training.render import get_icon

    svg = get_icon("nike").svg.encode()  # simple-icons' real file: one black path on a transparent 24x24 box
    with pytest.raises(ImageError, match="allowed: JPEG, PNG, WEBP, GIF, BMP\\)"):
        decode_image(svg)  # listing photos: raster only
    img = decode_image(svg, svg=True)
    gray = np.asarray(img.convert("L"))
    assert img.mode == "RGB" and img.size == (512, 512)
    assert gray[0, 0] == 255 and (gray < 64).mean() > 0.05  # a dark logo, put on white
    wide = b'<svg xmlns="http://www.w3.org/2000/svg" width="60px" height="20px"><rect width="60" height="20"/></svg>'
    assert decode_image(wide, svg=True).size == (512, 171)


@pytest.mark.parametrize("svg, reason", [
    (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><text>&x;</text></svg>', "cannot read SVG"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9', "cannot read SVG"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 1"><rect width="9" height="1"/></svg>',
     "aspect ratio"),
])
def test_decode_refuses_hostile_or_broken_svg(svg: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        decode_image(svg, svg=True)


def _use_bomb(levels: int, fan: int = 10) -> bytes:
    """Nested <use> references: a kilobyte or two that draws ``fan ** levels`` paths."""
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 9 9">'
             '<defs><path id="l0" d="M0 0 L9 9 L0 9 Z"/>']
    for i in range(1, levels + 1):
        parts.append(f'<g id="l{i}">' + f'<use xlink:href="#l{i - 1}"/>' * fan + "</g>")
    return ("".join(parts) + f'</defs><use xlink:href="#l{levels}"/></svg>').encode()


def test_svg_that_would_draw_too_much_is_refused_before_rendering() -> None:
    assert decode_image(_use_bomb(2), svg=True).size == (512, 512)  # 100 paths: fine
    with pytest.raises(ImageError, match="more than 20000 elements"):
        decode_image(_use_bomb(6), svg=True)  # a million paths from 2 kB (cairosvg alone would spend minutes)
    cycle = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><g id="a"><use href="#b"/></g>'
             b'<g id="b"><use href="#a"/></g></svg>')
    with pytest.raises(ImageError, match="cycle"):
        decode_image(cycle, svg=True)
    points = " L".join(f"{i % 97 / 10:.2f} {i % 89 / 10:.2f}" for i in range(60_000))
    huge_path = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><path d="M0 0 L{points}"/></svg>'
    with pytest.raises(ImageError, match="characters of path data"):
        decode_image(huge_path.encode(), svg=True)
    deep = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9">' + b"<g>" * 5000 + b"</g>" * 5000 + b"</svg>"
    with pytest.raises(ImageError):
        decode_image(deep, svg=True)
    largest = max(list_icons(), key=lambda icon: len(icon.svg))  # the biggest real logo still renders
    assert decode_image(largest.svg.encode(), svg=True).getbbox() is not None


def test_svg_size_comes_from_us_not_from_the_document() -> None:
    huge = b'<svg xmlns="http://www.w3.org/2000/svg" width="90000000" height="90000000"><circle r="9"/></svg>'
    assert decode_image(huge, svg=True).size == (512, 512)


def test_decode_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img = decode_image(encode(two_tone((40, 20)), "JPEG", quality=95, exif=exif))
    assert img.size == (20, 40)
    top, bottom = img.getpixel((10, 3)), img.getpixel((10, 36))
    assert top[0] > 200 and top[2] < 60  # the red left half is on top after rotating clockwise
    assert bottom[2] > 200 and bottom[0] < 60


def test_decode_takes_first_gif_frame_and_reads_bmp() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue()).getpixel((4, 4)) == (255, 0, 0)
    assert decode_image(encode(two_tone(), "BMP")).getpixel((1, 1)) == (255, 0, 0)


def test_prepare_image_downscales_and_stores_lossless_png() -> None:
    noisy = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 500, 3), dtype=np.uint8))
    rgb, prepared = prepare_image(encode(noisy, "JPEG"), ImageConfig(max_side=100))
    assert rgb.size == (100, 60) and (prepared.width, prepared.height) == (100, 60)
    assert prepared.png.startswith(b"\x89PNG")
    assert prepared.sha256 == sha256_hex(prepared.png)
    np.testing.assert_array_equal(np.asarray(decode_image(prepared.png)), np.asarray(rgb))
    assert encode_image(rgb) == prepared.png  # deterministic: same pixels, same bytes
    _, prepared2 = prepare_image(Image.open(io.BytesIO(encode(noisy, "JPEG"))), ImageConfig(max_side=100))
    assert prepared2.sha256 == prepared.sha256  # bytes and PIL inputs agree


# --------------------------------------------------------------------------------------------------- brands
def test_add_and_get_brand(registry: Registry) -> None:
    brand = registry.add_brand(
        " Nike ",
        aliases=["NIKE", "Swoosh", " swoosh ", ""],
        authorized_sellers=["nike.com", "nike.com"],
        min_price=25,
        currency="eur",
    )
    assert brand.name == "Nike"
    assert brand.aliases == ("Swoosh",)  # the name itself, blanks and case-duplicates are dropped
    assert brand.authorized_sellers == ("nike.com",)
    assert brand.min_price == 25.0 and brand.currency == "EUR"
    assert brand.created_at.tzinfo is not None
    assert registry.get_brand(brand.id) == brand
    entries = registry.list_text_entries(brand_id=brand.id)
    assert [(e.kind, e.text) for e in entries] == [("name", "Nike"), ("alias", "Swoosh")]


def test_brand_names_are_unique_ignoring_case_and_spacing(registry: Registry) -> None:
    first = registry.add_brand("Under Armour")
    with pytest.raises(Conflict) as info:
        registry.add_brand("under   ARMOUR")
    assert info.value.existing_id == first.id
    assert normalize_name("\uff35\uff4e\uff44\uff45\uff52 Armour") == "under armour"  # NFKC folds full-width letters


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "  "}, "must not be empty"),
        ({"name": "x" * 201}, "limit is 200"),
        ({"name": "A", "currency": "euro"}, "ISO 4217"),
        ({"name": "A", "min_price": -1}, ">= 0"),
        ({"name": "A", "min_price": float("nan")}, "finite"),
        ({"name": "A", "aliases": "single-string"}, "list of strings"),
        ({"name": "A", "aliases": [3]}, "must be a string"),
    ],
)
def test_add_brand_validation(registry: Registry, kwargs: dict, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        registry.add_brand(**kwargs)


def test_update_brand_changes_only_what_is_given(registry: Registry) -> None:
    brand = registry.add_brand("Nike", aliases=["Swoosh", "Nike Inc"], authorized_sellers=["nike.com"], min_price=25)
    old = {e.text: e.id for e in registry.list_text_entries(brand_id=brand.id) if e.kind == "alias"}
    registry.store_vectors("text", {old["Swoosh"]: np.ones(3, np.float32)}, "m@1")

    updated, deleted, added = registry.update_brand(brand.id, aliases=["Swoosh", "Air Jordan", "nike", "swoosh"])
    assert updated.aliases == ("Swoosh", "Air Jordan")  # the name and case-duplicates are dropped, order kept
    assert deleted == [old["Nike Inc"]] and [(e.kind, e.text) for e in added] == [("alias", "Air Jordan")]
    assert updated.authorized_sellers == ("nike.com",) and updated.min_price == 25.0  # not given: unchanged
    entries = {e.text: e.id for e in registry.list_text_entries(brand_id=brand.id) if e.kind == "alias"}
    assert entries["Swoosh"] == old["Swoosh"] and set(entries) == {"Swoosh", "Air Jordan"}
    assert registry.load_vectors("text", [old["Swoosh"]], "m@1").keys() == {old["Swoosh"]}  # kept alias keeps its vector
    assert registry.find_brand_by_name("nike inc") is None and registry.find_brand_by_name("air jordan").id == brand.id

    updated, deleted, added = registry.update_brand(brand.id, authorized_sellers=["nike.com", "footlocker"],
                                                    min_price=None, currency="eur")
    assert (deleted, added) == ([], [])
    assert updated.authorized_sellers == ("nike.com", "footlocker") and updated.min_price is None
    assert updated.currency == "EUR" and updated.aliases == ("Swoosh", "Air Jordan")
    assert registry.get_brand(brand.id) == updated

    cleared, deleted, _ = registry.update_brand(brand.id, aliases=[], authorized_sellers=[])
    assert cleared.aliases == () and cleared.authorized_sellers == () and sorted(deleted) == sorted(entries.values())
    assert [e.kind for e in registry.list_text_entries(brand_id=brand.id)] == ["name"]


def test_update_brand_validation_changes_nothing(registry: Registry) -> None:
    brand = registry.add_brand("Nike", aliases=["Swoosh"], min_price=25)
    for kwargs, message in [({"min_price": -1}, ">= 0"), ({"currency": "euro"}, "ISO 4217"),
                            ({"aliases": "Swoosh"}, "list of strings"), ({"authorized_sellers": [3]}, "must be a string")]:
        with pytest.raises(Invalid, match=message):
            registry.update_brand(brand.id, **{"aliases": ["Air"], **kwargs})
    assert registry.get_brand(brand.id) == brand
    with pytest.raises(NotFound):
        registry.update_brand(42, min_price=3)


def test_missing_rows_raise_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.get_brand(42)
    with pytest.raises(NotFound):
        registry.get_asset(42)
    with pytest.raises(NotFound):
        registry.delete_asset(42)
    with pytest.raises(NotFound):
        registry.get_text_entry(42)


def test_find_brand_by_name_and_alias(registry: Registry) -> None:
    nike = registry.add_brand("Nike", aliases=["Swoosh"])
    registry.add_brand("Puma")
    assert registry.find_brand_by_name("  NIKE ").id == nike.id
    assert registry.find_brand_by_name("swoosh").id == nike.id
    assert registry.find_brand_by_name("swoosh", include_aliases=False) is None
    assert registry.find_brand_by_name("Adidas") is None


# --------------------------------------------------------------------------------------------------- assets
def test_add_asset_reencodes_and_counts(registry: Registry, logo_png: bytes) -> None:
    brand = registry.add_brand("Acme")
    jpeg = encode(decode_image(logo_png), "JPEG", quality=90)
    asset = registry.add_asset(brand.id, "authentic", jpeg, title="Acme logo", source="unit-test")
    assert (asset.width, asset.height, asset.kind, asset.active) == (64, 64, "authentic", True)
    stored = registry.get_asset_image(asset.id)
    assert stored.startswith(b"\x89PNG") and sha256_hex(stored) == asset.image_sha256
    registry.add_asset(brand.id, "known_fake", logo_png)
    [listed] = registry.list_brands()
    assert (listed.n_authentic, listed.n_known_fakes) == (1, 1)
    title = registry.list_text_entries(asset_id=asset.id)
    assert [(e.kind, e.text, e.brand_id) for e in title] == [("title", "Acme logo", brand.id)]


def test_add_asset_constraints(registry: Registry, logo_png: bytes) -> None:
    brand = registry.add_brand("Acme")
    first = registry.add_asset(brand.id, "authentic", logo_png)
    with pytest.raises(Conflict) as info:
        registry.add_asset(brand.id, "authentic", logo_png)
    assert info.value.existing_id == first.id
    registry.add_asset(brand.id, "known_fake", logo_png)  # same picture as another kind is allowed
    with pytest.raises(Invalid, match="asset kind"):
        registry.add_asset(brand.id, "fake", logo_png)
    with pytest.raises(Invalid, match="image refused"):
        registry.add_asset(brand.id, "authentic", b"not an image")
    with pytest.raises(NotFound):
        registry.add_asset(999, "authentic", logo_png)


def test_delete_asset_is_soft_and_drops_its_texts_and_vectors(registry: Registry, logo_png: bytes) -> None:
    brand = registry.add_brand("Acme")
    asset = registry.add_asset(brand.id, "authentic", logo_png, title="Acme tee")
    [entry] = registry.list_text_entries(asset_id=asset.id)
    registry.store_vectors("asset", {asset.id: np.ones(4, np.float32)}, "m@1")
    registry.store_vectors("text", {entry.id: np.ones(4, np.float32)}, "m@1")
    assert registry.delete_asset(asset.id) is True
    assert registry.delete_asset(asset.id) is False
    assert registry.get_asset(asset.id).deleted_at is not None
    assert registry.list_assets() == []
    assert [a.id for a in registry.list_assets(include_deleted=True)] == [asset.id]
    assert registry.map_asset_brands() == {}
    assert registry.list_text_entries(asset_id=asset.id) == []
    assert registry.load_vectors("asset", [asset.id], "m@1") == {}
    assert registry.load_vectors("text", [entry.id], "m@1") == {}
    assert registry.get_brand(brand.id).n_authentic == 0
    again = registry.add_asset(brand.id, "authentic", logo_png)  # a deleted duplicate no longer blocks
    assert again.id != asset.id


def test_list_assets_filters(registry: Registry, logo_png: bytes) -> None:
    a = registry.add_brand("A")
    b = registry.add_brand("B")
    x = registry.add_asset(a.id, "authentic", logo_png)
    y = registry.add_asset(b.id, "known_fake", logo_png)
    assert [r.id for r in registry.list_assets(kind="authentic")] == [x.id]
    assert [r.id for r in registry.list_assets(brand_id=b.id)] == [y.id]
    assert registry.map_asset_brands("known_fake") == {y.id: b.id}


# --------------------------------------------------------------------------------------------------- text entries
def test_text_entry_crud_writes_through(registry: Registry, logo_png: bytes) -> None:
    brand = registry.add_brand("Acme", aliases=["ACME Corp"])
    alias = registry.add_text_entry(brand.id, "Acme Inc")
    assert registry.get_brand(brand.id).aliases == ("ACME Corp", "Acme Inc")
    with pytest.raises(Conflict):
        registry.add_text_entry(brand.id, "acme inc")
    with pytest.raises(Conflict):
        registry.add_text_entry(brand.id, "ACME")
    with pytest.raises(Invalid, match="created with the brand"):
        registry.add_text_entry(brand.id, "Other", kind="name")
    registry.update_text_entry(alias.id, "Acme Industries")
    assert registry.get_brand(brand.id).aliases == ("ACME Corp", "Acme Industries")
    registry.delete_text_entry(alias.id)
    assert registry.get_brand(brand.id).aliases == ("ACME Corp",)
    with pytest.raises(NotFound):
        registry.get_text_entry(alias.id)

    name_entry = next(e for e in registry.list_text_entries(brand_id=brand.id) if e.kind == "name")
    registry.add_brand("Globex")
    with pytest.raises(Conflict):
        registry.update_text_entry(name_entry.id, "GLOBEX")
    registry.update_text_entry(name_entry.id, "Acme Co")
    assert registry.get_brand(brand.id).name == "Acme Co"
    assert registry.find_brand_by_name("acme co").id == brand.id
    with pytest.raises(Invalid, match="cannot be deleted"):
        registry.delete_text_entry(name_entry.id)

    asset = registry.add_asset(brand.id, "authentic", logo_png)
    title = registry.add_text_entry(brand.id, "Acme hoodie", kind="title", asset_id=asset.id)
    assert registry.get_asset(asset.id).title == "Acme hoodie"
    with pytest.raises(Conflict, match="already has a title"):
        registry.add_text_entry(brand.id, "Another", kind="title", asset_id=asset.id)
    registry.delete_text_entry(title.id)
    assert registry.get_asset(asset.id).title is None


def test_update_text_entry_drops_cached_vector(registry: Registry) -> None:
    brand = registry.add_brand("Acme", aliases=["Acmi"])
    alias = next(e for e in registry.list_text_entries(brand_id=brand.id) if e.kind == "alias")
    registry.store_vectors("text", {alias.id: np.ones(3, np.float32)}, "m@1")
    registry.update_text_entry(alias.id, "Akme")
    assert registry.load_vectors("text", [alias.id], "m@1") == {}


# --------------------------------------------------------------------------------------------------- vectors, meta
def test_vector_cache_round_trip_per_model(registry: Registry) -> None:
    v1 = np.linspace(-1, 1, 8).astype(np.float32)
    registry.store_vectors("asset", {7: v1}, "model-a@1")
    registry.store_vectors("asset", {7: -v1}, "model-b@1")
    registry.store_vectors("asset", {7: 2 * v1}, "model-a@1")  # replaces, no unique-constraint error
    np.testing.assert_array_equal(registry.load_vectors("asset", [7, 8], "model-a@1")[7], 2 * v1)
    np.testing.assert_array_equal(registry.load_vectors("asset", [7], "model-b@1")[7], -v1)
    assert registry.load_vectors("text", [7], "model-a@1") == {}


def test_index_version_bumps_and_persists(database_url: str) -> None:
    url = database_url
    with Registry(url) as reg:
        assert reg.get_index_version() == 0
        assert reg.bump_index_version() == 1
        with reg.transaction() as session:
            assert reg.bump_index_version(session=session) == 2
    with Registry(url) as reg:
        assert reg.get_index_version() == 2


def test_rolled_back_transaction_leaves_nothing(registry: Registry) -> None:
    with pytest.raises(RuntimeError), registry.transaction() as session:
        registry.add_brand("Ghost", session=session)
        registry.bump_index_version(session=session)
        raise RuntimeError("crash before commit")
    assert registry.list_brands() == [] and registry.get_index_version() == 0


def test_foreign_keys_are_enforced_and_sqlite_uses_wal(registry: Registry) -> None:
    if registry.url.get_backend_name() == "sqlite":
        with registry.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with pytest.raises(IntegrityError), registry.transaction() as session:
        session.add(TextEntryRow(brand_id=12345, kind="alias", text="orphan"))
        session.flush()


def test_refuses_other_schema_version(database_url: str) -> None:
    url = database_url
    with Registry(url) as reg, reg.transaction() as session:
        session.get(MetaRow, "schema_version").value = "999"
    with pytest.raises(RegistryError, match="schema v999"):
        Registry(url)


def test_schema_compiles_for_postgresql() -> None:
    dialect = postgresql.dialect()
    ddl = [str(CreateTable(table).compile(dialect=dialect)) for table in Base.metadata.sorted_tables]
    ddl += [str(CreateIndex(ix).compile(dialect=dialect)) for t in Base.metadata.sorted_tables for ix in t.indexes]
    joined = "\n".join(ddl)
    assert "BYTEA" in joined and "TIMESTAMP WITH TIME ZONE" in joined and "JSON" in joined
    assert {t.name for t in Base.metadata.sorted_tables} == {
        "brands",
        "assets",
        "text_entries",
        "vectors",
        "scored_listings",
        "feedback",
        "meta",
    }


# --------------------------------------------------------------------------------------------------- scores, feedback
def test_record_score_and_export_feedback(registry: Registry) -> None:
    brand = registry.add_brand("Acme")
    digest = sha256_hex(b"photo")
    registry.record_score(
        "L-1",
        request={"title": "cheap acme", "price": 3.5, "images": [{"sha256": digest}]},
        image_sha256s=[digest],
        risk=0.2,
        decision="allow",
        brand_id=None,
        signals={"max_sim": np.float32(0.5)},
        model_version="m@1",
        index_version=3,
    )
    registry.record_score(
        "L-1",
        request={"title": "cheap acme v2"},
        image_sha256s=[],
        risk=np.float64(0.93),
        decision="block",
        brand_id=brand.id,
        signals={"max_sim": np.float32(0.9), "per_region": np.array([0.1, 0.9])},
        model_version="m@1",
        index_version=4,
    )
    registry.add_feedback("L-1", "counterfeit", brand_id=brand.id, reviewer="ana", note="fake tag")
    registry.add_feedback("L-unscored", "unbranded")
    rows = registry.export_feedback()
    assert [r["listing_id"] for r in rows] == ["L-1", "L-unscored"]
    first = rows[0]
    assert first["verdict"] == "counterfeit" and first["brand_name"] == "Acme" and first["reviewer"] == "ana"
    assert first["request"] == {"title": "cheap acme v2"}  # joined with the latest score of that listing
    assert first["decision"] == "block" and first["index_version"] == 4 and first["scored_brand_id"] == brand.id
    assert first["signals"]["per_region"] == pytest.approx([0.1, 0.9])
    assert rows[1]["request"] is None and rows[1]["risk"] is None
    future = datetime.now(UTC) + timedelta(hours=1)
    assert registry.export_feedback(since=future) == []
    past_in_other_zone = (datetime.now(UTC) - timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-7)))
    assert len(registry.export_feedback(since=past_in_other_zone)) == 2


def test_record_score_and_feedback_validation(registry: Registry) -> None:
    base = dict(
        image_sha256s=[], risk=0.5, decision="allow", brand_id=None, signals={}, model_version="m", index_version=0
    )
    with pytest.raises(Invalid, match="raw bytes"):
        registry.record_score("L", request={"image": b"\xff\xd8"}, **base)
    with pytest.raises(Invalid, match="SHA-256"):
        registry.record_score("L", request={}, **{**base, "image_sha256s": ["abc"]})
    with pytest.raises(Invalid, match="finite"):
        registry.record_score("L", request={}, **{**base, "risk": float("inf")})
    with pytest.raises(NotFound):
        registry.record_score("L", request={}, **{**base, "brand_id": 77})
    with pytest.raises(Invalid, match="verdict"):
        registry.add_feedback("L", "fake")
    with pytest.raises(NotFound):
        registry.add_feedback("L", "authentic", brand_id=77)
