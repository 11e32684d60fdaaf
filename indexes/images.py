"""Safe decoding and canonical re-encoding of uploaded images.

Every image that enters the registry (and, later, every image the HTTP service receives) goes through
:func:`decode_image`: only a few raster formats are accepted, oversized or truncated files are refused before they
can exhaust memory, and whatever the file's mode (CMYK, 16-bit, palette, alpha, EXIF-rotated) the result is an
upright 8-bit RGB image, produced the same way every time.

Stored assets are re-encoded as **PNG** by :func:`encode_image`. PNG is lossless, so decoding the stored bytes gives
back exactly the pixels that were embedded when the asset was added: a later rebuild re-embeds identical inputs.
Photos are first capped to ``ImageConfig.max_side`` so lossless storage stays small; re-encoding also drops all
metadata (EXIF, GPS) from uploads.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "ALLOWED_FORMATS",
    "DARK_MATTE",
    "ImageConfig",
    "ImageError",
    "PreparedImage",
    "decode_image",
    "encode_image",
    "frame_logo",
    "logo_box",
    "normalize_image",
    "prepare_image",
    "render_svg",
    "sha256_hex",
]

log = logging.getLogger(__name__)

# Pillow format names; everything else (TIFF, PSD, EPS, ICO, ...) is refused: fewer decoders, less attack surface.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_SRGB_PROFILE = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class ImageConfig:
    """Limits for untrusted images and the size at which assets are stored."""

    max_bytes: int = 25 * 1024 * 1024  # encoded upload size; bigger files are refused before decoding
    max_pixels: int = 36_000_000  # width * height (about 6000x6000); checked from the header, before decoding
    max_side: int = 1024  # stored assets are downscaled so their longest side is at most this (embedders use ~320)


@dataclass(frozen=True)
class PreparedImage:
    """An image in its stored form: canonical PNG bytes and what the registry records about them."""

    png: bytes
    width: int
    height: int
    sha256: str  # of ``png``; identical pixels give identical PNG bytes, so this also detects duplicate uploads


class ImageError(ValueError):
    """An image was refused; ``reason`` says why in words an API client can show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes,
    max_pixels: int = ImageConfig.max_pixels,
    max_bytes: int = ImageConfig.max_bytes,
    svg: bool = False,
) -> Image.Image:
    """Decode untrusted bytes into an upright 8-bit RGB image.

    Args:
        data: The encoded file (JPEG, PNG, WebP, GIF or BMP; a GIF yields its first frame).
        max_pixels: Largest accepted ``width * height``. The size is read from the header and refused before any
            pixel is decoded; Pillow's own decompression-bomb warning is turned into an error as well.
        max_bytes: Largest accepted encoded size.
        svg: Also accept an SVG document (brand logos), rendered by :func:`render_svg`.

    Returns:
        A fully loaded RGB image: EXIF orientation applied, CMYK and ICC-tagged images converted to sRGB, 16-bit
        samples scaled to 8 bits, palette and alpha images composited on white (on near-black when what is
        visible is light: a white logo).

    Raises:
        ImageError: The bytes are empty, too large, not an allowed format, a decompression bomb, truncated or
            otherwise undecodable.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError("empty image file")
    if len(data) > max_bytes:
        raise ImageError(f"image file is {len(data)} bytes; the limit is {max_bytes}")
    if svg and _looks_like_svg(data):
        return normalize_image(render_svg(data))
    # The per-call check below is the real limit; catch_warnings only upgrades Pillow's own (global-limit) warning,
    # which we never lower process-wide because other callers may legitimately use a larger limit.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
        except UnidentifiedImageError:
            allowed = ", ".join(ALLOWED_FORMATS + (("SVG",) if svg else ()))
            raise ImageError(f"unsupported or unrecognised image format (allowed: {allowed})") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"image too large (decompression bomb): {exc}") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise ImageError(f"cannot read image header: {exc}") from None
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageError(f"image has invalid size {width}x{height}")
        if width * height > max_pixels:
            raise ImageError(
                f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} "
                "(possible decompression bomb)"
            )
        try:
            img.load()  # decode everything now so truncated files fail here, not later in the embedder
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"image too large (decompression bomb): {exc}") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError, MemoryError) as exc:
            message = str(exc)
            if "truncated" in message.lower():
                raise ImageError(f"image file is truncated: {message}") from None
            raise ImageError(f"cannot decode {img.format} image: {message}") from None
    return normalize_image(img)


SVG_SIDE = 512  # longer side of a rendered SVG, pixels (references are framed at 256; photos are embedded at 320)
_SVG_MAX_ASPECT = 16.0


SVG_MAX_ELEMENTS = 20_000  # elements drawn, <use> references expanded
SVG_MAX_DRAW_CHARS = 500_000  # path / polygon coordinates and text drawn, in characters, <use> references expanded
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def _check_svg_cost(data: bytes) -> None:
    """Refuse an SVG whose rendering would take long, before cairosvg sees it.

    cairosvg's time grows with what is drawn, not with the file size: a 1.7 kB document of nested ``<use>``
    references (10 per level, 5 levels) draws 100,000 elements (cairosvg gives up there, after ~15-30 s on one core),
    and one path of 100,000 points (1.2 MB) takes ~10-20 s. Real logos are far below both limits: the largest of
    simple-icons' ~3,470 is one path of 54 kB (0.2 s).

    Raises:
        ImageError: Too many elements or too much path data once ``<use>`` references are expanded, a ``<use>``
            cycle, nesting too deep to walk, or XML that does not parse (entities and DTDs are refused).
    """
    from defusedxml import ElementTree

    try:
        root = ElementTree.fromstring(data)
    except Exception as exc:  # untrusted input: defusedxml and expat raise several types
        raise ImageError(f"cannot read SVG: {exc}") from None
    by_id = {el.get("id"): el for el in root.iter() if el.get("id")}
    memo: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def cost(el: Any) -> tuple[int, int]:
        key = id(el)
        if key in memo:
            return memo[key]
        if key in active:
            raise ImageError("SVG <use> references form a cycle")
        active.add(key)
        n, chars = 1, len(el.get("d") or "") + len(el.get("points") or "") + len(el.text or "")
        children = list(el)
        href = el.get(_XLINK_HREF) or el.get("href") or ""
        if el.tag.rsplit("}", 1)[-1] == "use" and href.startswith("#") and href[1:] in by_id:
            children.append(by_id[href[1:]])
        for child in children:
            dn, dc = cost(child)
            n, chars = n + dn, chars + dc
            if n > SVG_MAX_ELEMENTS:
                raise ImageError(f"SVG draws more than {SVG_MAX_ELEMENTS} elements (<use> references expanded)")
            if chars > SVG_MAX_DRAW_CHARS:
                raise ImageError(f"SVG draws more than {SVG_MAX_DRAW_CHARS} characters of path data or text")
        active.discard(key)
        memo[key] = (n, chars)
        return n, chars

    try:
        _, chars = cost(root)
    except RecursionError:
        raise ImageError("SVG elements are nested too deeply") from None
    if chars > SVG_MAX_DRAW_CHARS:
        raise ImageError(f"SVG draws more than {SVG_MAX_DRAW_CHARS} characters of path data or text")


def _looks_like_svg(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<svg") or (head.startswith((b"<?xml", b"<!--", b"<!doctype")) and b"<svg" in head)


def _svg_length(value: str | None) -> float | None:
    """A plain or px length attribute ("24", "24px"); None for percentages, other units or garbage."""
    if not value:
        return None
    value = value.strip().removesuffix("px")
    try:
        length = float(value)
    except ValueError:
        return None
    return length if 0 < length < float("inf") else None


def render_svg(data: bytes, side: int = SVG_SIDE) -> Image.Image:
    """Rasterise an SVG logo into RGBA with its longer side ``side`` pixels (transparent where nothing is drawn).

    cairosvg parses with defusedxml (XML entities and external DTDs refused) and, in its default safe mode, reads
    no external file or URL. The output size is fixed here from the document's aspect ratio, never taken from the
    document, so a hostile ``width`` cannot allocate a huge surface.

    Raises:
        ImageError: The document cannot be parsed or rendered, would draw too much (:func:`_check_svg_cost`), or its
            aspect ratio is beyond 16:1.
    """
    import cairosvg
    from cairosvg.parser import Tree

    _check_svg_cost(data)
    try:
        root = Tree(bytestring=data)
        box = [float(v) for v in (root.get("viewBox") or "").replace(",", " ").split()]
        width, height = (box[2], box[3]) if len(box) == 4 else (_svg_length(root.get("width")),
                                                                _svg_length(root.get("height")))
    except Exception as exc:  # untrusted input: the XML parser and cairosvg raise many types on malformed documents
        raise ImageError(f"cannot read SVG: {exc}") from None
    if not (width and height and width > 0 and height > 0):
        width = height = 1.0
    aspect = width / height
    if not 1.0 / _SVG_MAX_ASPECT <= aspect <= _SVG_MAX_ASPECT:
        raise ImageError(f"SVG aspect ratio {width:g}:{height:g} is beyond {_SVG_MAX_ASPECT:g}:1")
    out_w, out_h = (side, max(1, round(side / aspect))) if aspect >= 1 else (max(1, round(side * aspect)), side)
    try:
        png = cairosvg.svg2png(bytestring=data, output_width=out_w, output_height=out_h)
        img = Image.open(io.BytesIO(png))
        img.load()
    except Exception as exc:  # as above
        raise ImageError(f"cannot render SVG: {exc}") from None
    if img.size != (out_w, out_h):
        raise ImageError(f"SVG rendered at {img.size}, expected {(out_w, out_h)}")
    return img


def normalize_image(img: Image.Image) -> Image.Image:
    """Return an upright 8-bit RGB copy of ``img`` (the conversion :func:`decode_image` applies)."""
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception as exc:
        log.debug("ignoring unreadable EXIF orientation: %s", exc)
        upright = img
    return _to_rgb(upright)


DARK_MATTE = (24, 24, 24)


def _matte(img: Image.Image) -> tuple[int, int, int]:
    """Background for a transparent image: white, unless what is visible is light (a white logo for dark pages
    would vanish on white), then near-black."""
    rgba = np.asarray(img, dtype=np.float64)
    alpha = rgba[..., 3] / 255.0
    if alpha.sum() < 1.0:
        return (255, 255, 255)
    luma = (rgba[..., :3] @ np.array([0.299, 0.587, 0.114])) / 255.0
    visible = float((luma * alpha).sum() / alpha.sum())
    # The background farther from the visible pixels' mean brightness (white at 1, the dark matte at ~0.09).
    return (255, 255, 255) if visible <= (1.0 + DARK_MATTE[0] / 255.0) / 2 else DARK_MATTE


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; alpha is composited on white, or near-black when the visible part is light."""
    icc = img.info.get("icc_profile")
    mode = img.mode
    if mode in _HIGH_DEPTH_MODES:
        img = _to_8bit_gray(img)
        mode = img.mode
    if mode == "P" or mode == "1" or "transparency" in img.info or mode in _ALPHA_MODES:
        img = img.convert("RGBA") if (mode in _ALPHA_MODES or "transparency" in img.info) else img.convert("RGB")
        mode = img.mode
    if mode == "RGBA":
        background = Image.new("RGB", img.size, _matte(img))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if icc and mode in ("RGB", "CMYK"):
        converted = _apply_icc(img, icc)
        if converted is not None:
            return converted
    return img.convert("RGB") if mode != "RGB" else img.copy()


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit or float grayscale samples into 8-bit ``L`` (Pillow's own convert clips instead)."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
        if lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        else:
            scaled = (arr - lo) * (255.0 / max(hi - lo, 1e-12))
    elif img.mode == "I" and arr.size and arr.max() <= 255 and arr.min() >= 0:
        scaled = arr  # 8-bit data stored in a 32-bit container
    else:
        scaled = arr / 257.0  # 16-bit: 65535 -> 255
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _apply_icc(img: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert an ICC-tagged RGB/CMYK image to sRGB; None when the profile is unusable."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, source, _SRGB_PROFILE, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.debug("ignoring unusable ICC profile: %s", exc)
        return None


def encode_image(img: Image.Image) -> bytes:
    """Losslessly encode an RGB image as PNG (metadata dropped; same pixels give the same bytes)."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def prepare_image(image: Image.Image | bytes, config: ImageConfig | None = None) -> tuple[Image.Image, PreparedImage]:
    """Turn an upload (bytes or PIL image) into the image to embed and its stored form.

    Args:
        image: Encoded bytes (validated by :func:`decode_image`) or an already decoded PIL image.
        config: Limits and the stored size; defaults to :class:`ImageConfig`.

    Returns:
        ``(rgb, prepared)``: the RGB image capped to ``config.max_side`` and its lossless PNG form, so embedding
        ``rgb`` now and embedding the decoded PNG in a later rebuild give the same vectors.

    Raises:
        ImageError: The bytes are refused by :func:`decode_image`, or the PIL image exceeds ``max_pixels``.
    """
    config = config or ImageConfig()
    if isinstance(image, Image.Image):
        width, height = image.size
        if width * height > config.max_pixels:
            raise ImageError(f"image is {width}x{height} pixels; the limit is {config.max_pixels}")
        try:
            rgb = normalize_image(image)
        except (OSError, SyntaxError, ValueError) as exc:  # a lazily opened PIL image decodes only now
            raise ImageError(f"cannot decode image: {exc}") from None
    else:
        rgb = decode_image(image, max_pixels=config.max_pixels, max_bytes=config.max_bytes)
    if max(rgb.size) > config.max_side:
        rgb = rgb.copy()
        rgb.thumbnail((config.max_side, config.max_side), Image.Resampling.LANCZOS)
    png = encode_image(rgb)
    return rgb, PreparedImage(png=png, width=rgb.width, height=rgb.height, sha256=sha256_hex(png))


def _background(rgb: np.ndarray, tolerance: int) -> np.ndarray | None:
    """Colour of a logo image's background: its four corners when they agree (this also holds for a full-bleed
    rounded or round mark, whose edges are the mark itself), else the most common edge colour when at least half the
    edge has it; None when neither is true (a photo rather than a logo)."""
    corners = np.stack([np.median(p.reshape(-1, 3), axis=0)
                        for p in (rgb[:3, :3], rgb[:3, -3:], rgb[-3:, :3], rgb[-3:, -3:])])
    if np.abs(corners - corners.mean(0)).max() <= tolerance / 2:
        return corners.mean(0)
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    coarse = edge // 16
    _, which, counts = np.unique(coarse @ np.array([256, 16, 1]), return_inverse=True, return_counts=True)
    background = np.median(edge[which.ravel() == counts.argmax()], axis=0)
    if (np.abs(edge - background).max(1) <= tolerance).mean() < 0.5:
        return None
    return background


def logo_box(img: Image.Image, tolerance: int = 32) -> tuple[tuple[int, int, int, int], tuple[int, int, int]] | None:
    """Bounding box ``(x0, y0, x1, y1)`` of the logo on a plain background, and that background colour; None for an
    image without a plain background (a product photo) or without anything on it (see :func:`frame_logo`)."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    if min(rgb.shape[:2]) < 4:
        return None
    background = _background(rgb, tolerance)
    if background is None:
        return None
    ys, xs = np.nonzero(np.abs(rgb - background).max(axis=2) > tolerance)
    if len(xs) == 0:
        return None
    colour = tuple(int(round(v)) for v in background)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), colour  # type: ignore[return-value]


def frame_logo(img: Image.Image, size: int = 256, margin: float = 0.15, tolerance: int = 32) -> Image.Image:
    """Re-frame a clean logo image the same way whatever margin it was uploaded with.

    Brand teams upload logos tight-cropped, with wide margins or on a transparent background (composited by
    :func:`decode_image`); an embedder compares photos best against references framed as it was trained on. The
    logo's bounding box (pixels farther than ``tolerance`` from the background colour) is centred on a
    ``size`` x ``size`` square of the background colour, its longer side filling ``1 - 2 * margin`` of it.

    An image without a plain background (a product photo) or without anything on it is returned unchanged.
    A mark that fills a square with square corners cannot be told from a logo on a coloured background; it is
    framed as the latter.
    """
    found = logo_box(img, tolerance)
    if found is None:
        return img
    box, background = found
    logo = img.convert("RGB").crop(box)
    scale = round(size * (1.0 - 2.0 * margin)) / max(logo.size)
    logo = logo.resize((max(1, round(logo.width * scale)), max(1, round(logo.height * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(logo, ((size - logo.width) // 2, (size - logo.height) // 2))
    return canvas
