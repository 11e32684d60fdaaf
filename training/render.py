"""Render simple-icons logos and compose synthetic marketplace product photos around them.

Logos are real brand marks from the ``simple-icons-pack`` package rendered with cairosvg. Product
photos are PIL-drawn mock-ups (t-shirts, caps, mugs, ...) over crops of real photographs shipped in
installed packages (scikit-learn, matplotlib, scikit-image when installed) or procedural textures,
with the logo placed, distorted, recoloured and partly occluded, then blurred and JPEG-compressed.
Every random choice comes from the ``numpy.random.Generator`` passed in, so output is reproducible.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cairosvg
import numpy as np
import simple_icons_pack as sip
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

__all__ = [
    "PRODUCT_KINDS",
    "REFERENCE_VARIANTS",
    "Icon",
    "compose_listing_photo",
    "first_choice",
    "get_icon",
    "hex_to_rgb",
    "list_background_photos",
    "list_icons",
    "make_reupload",
    "render_logo",
    "render_reference",
]

logger = logging.getLogger(__name__)

Icon = sip.Icon
RGB = tuple[int, int, int]

REFERENCE_VARIANTS: tuple[str, ...] = ("light", "dark")
_SS = 2  # supersampling factor for PIL drawing, which has no anti-aliasing
_WHITE: RGB = (255, 255, 255)
_BLACK: RGB = (17, 17, 17)


# ----------------------------------------------------------------------------------------------
# Icons and logo rendering
# ----------------------------------------------------------------------------------------------


@functools.cache
def list_icons() -> list[Icon]:
    """Return every simple-icons icon, sorted by slug."""
    icons = [v for k, v in vars(sip).items() if k.startswith("SI_")]
    return sorted(icons, key=lambda icon: icon.slug)


def get_icon(slug: str) -> Icon:
    """Return the icon for a slug; raises KeyError for an unknown slug."""
    icon = sip.get_icon(slug)
    if icon is None:
        raise KeyError(f"unknown simple-icons slug {slug!r}")
    return icon


def hex_to_rgb(hex_colour: str) -> RGB:
    """Convert 'RRGGBB' or '#RRGGBB' to an RGB tuple."""
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _rgb_to_hex(colour: RGB) -> str:
    """Convert an RGB tuple to 'RRGGBB'."""
    return "{:02X}{:02X}{:02X}".format(*colour)


def _luminance(colour: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""

    def channel(c: int) -> float:
        v = c / 255.0
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = colour
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


@functools.lru_cache(maxsize=512)
def _render_png(svg: str, size: int, fill: str) -> bytes:
    """Render a simple-icons SVG to PNG bytes with the given fill (cached: many listings reuse a logo)."""
    # simple-icons SVGs are one path with no fill attribute; a fill on the root is inherited by it.
    recoloured = svg.replace("<svg ", f'<svg fill="#{fill}" ', 1)
    return cairosvg.svg2png(bytestring=recoloured.encode(), output_width=size, output_height=size)


def render_logo(
    icon: Icon,
    size: int,
    color: str | RGB | None = None,
    background: str | RGB | None = None,
) -> Image.Image:
    """Render a logo as a square RGBA image.

    Args:
        icon: A simple-icons icon.
        size: Side of the output in pixels.
        color: Fill colour, as 'RRGGBB'/'#RRGGBB' or RGB; None uses the brand colour.
        background: Opaque background colour; None leaves it transparent.

    Returns:
        An RGBA image of ``size`` x ``size``.
    """
    fill = icon.hex if color is None else (color.lstrip("#") if isinstance(color, str) else _rgb_to_hex(color))
    logo = Image.open(io.BytesIO(_render_png(icon.svg, size, fill.upper())))
    logo = logo.convert("RGBA")
    if background is None:
        return logo
    bg = hex_to_rgb(background) if isinstance(background, str) else background
    canvas = Image.new("RGBA", logo.size, (*bg, 255))
    canvas.alpha_composite(logo)
    return canvas


def render_reference(icon: Icon, variant: str, size: int = 256, margin: float = 0.15) -> Image.Image:
    """Render a clean reference asset, as a brand team would upload it.

    Args:
        icon: A simple-icons icon.
        variant: "light" (brand colour on a light background; black when the brand colour is too
            light to read) or "dark" (white logo on the brand colour, or on near-black when the
            brand colour is too light for white; a light brand colour is then kept for the logo).
        size: Side of the square output.
        margin: Margin on each side, as a fraction of ``size``.

    Returns:
        An RGB image with the logo centred.
    """
    brand = hex_to_rgb(icon.hex)
    if variant == "light":
        bg: RGB = (255, 255, 255)
        fg = brand if _contrast(brand, bg) >= 1.6 else _BLACK
    elif variant == "dark":
        if _contrast(brand, _WHITE) >= 3.0:
            bg, fg = brand, _WHITE
        elif _contrast(brand, _BLACK) >= 4.5:
            bg, fg = _BLACK, brand
        else:
            bg, fg = _BLACK, _WHITE
    else:
        raise ValueError(f"unknown reference variant {variant!r}; known: {', '.join(REFERENCE_VARIANTS)}")
    inner = max(8, round(size * (1.0 - 2.0 * margin)))
    logo = render_logo(icon, inner, color=fg)
    canvas = Image.new("RGB", (size, size), bg)
    offset = (size - inner) // 2
    canvas.paste(logo, (offset, offset), logo)
    return canvas


# ----------------------------------------------------------------------------------------------
# Backgrounds
# ----------------------------------------------------------------------------------------------

_SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "chelsea.png",
    "coffee.png",
    "grass.png",
    "gravel.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "camera.png",
)


def _package_file(package: str, *parts: str) -> Path | None:
    """Path of a data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


@functools.cache
def list_background_photos() -> tuple[Path, ...]:
    """Return the real photographs available as backgrounds (files shipped inside installed packages)."""
    candidates = [
        _package_file("sklearn", "datasets", "images", "china.jpg"),
        _package_file("sklearn", "datasets", "images", "flower.jpg"),
        _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
        *(_package_file("skimage", "data", name) for name in _SKIMAGE_PHOTOS),
    ]
    found = tuple(p for p in candidates if p is not None)
    if not found:
        logger.warning("no background photographs found; only procedural backgrounds will be used")
    return found


@functools.cache
def _photo_pool() -> tuple[Image.Image, ...]:
    """Background photos loaded once, in RGB, shrunk so that crops stay cheap."""
    photos = []
    for path in list_background_photos():
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((720, 720), Image.Resampling.BILINEAR)
            photos.append(im)
    return tuple(photos)


def _random_colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> RGB:
    """A uniformly random RGB colour with channels in [lo, hi)."""
    r, g, b = rng.integers(lo, hi, size=3)
    return int(r), int(g), int(b)


def first_choice(names: Iterable[str], rng: np.random.Generator | int) -> str:
    """One of ``names``, by the first draw of ``rng`` (a generator, or a photo's seed). A composer makes this its first
    draw, so which scene, object or item a photo shows can be named from the photo's seed alone."""
    names = tuple(names)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return names[int(rng.integers(len(names)))]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random grid upscaled bicubically."""
    grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0


def _lerp_colours(t: np.ndarray, a: RGB, b: RGB) -> np.ndarray:
    """Blend two colours by a [0, 1] map into a uint8 HxWx3 array."""
    a_arr = np.asarray(a, dtype=np.float32)
    b_arr = np.asarray(b, dtype=np.float32)
    out = a_arr + (b_arr - a_arr) * t[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate grids normalised to [0, 1)."""
    axis = np.arange(size, dtype=np.float32) / size
    return axis[None, :].repeat(size, 0), axis[:, None].repeat(size, 1)


def _bg_photo(rng: np.random.Generator, size: int) -> Image.Image:
    """A random crop of a real photo, rescaled, colour-jittered and usually defocused."""
    pool = _photo_pool()
    photo = pool[int(rng.integers(len(pool)))]
    w, h = photo.size
    side = int(min(w, h) * rng.uniform(0.35, 1.0))
    x = int(rng.integers(0, w - side + 1))
    y = int(rng.integers(0, h - side + 1))
    crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    crop = ImageEnhance.Color(crop).enhance(rng.uniform(0.4, 1.3))
    crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.7, 1.25))
    crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(0.6, 1.1))
    if rng.random() < 0.7:  # product shots keep the background out of focus
        crop = crop.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 4.0) * size / 320))
    return crop


def _bg_wood(rng: np.random.Generator, size: int) -> Image.Image:
    """Procedural wood grain (a table top): stretched noise bent into long rings."""
    x, y = _grid(size)
    along = Image.fromarray((rng.random((5, 3)) * 255).astype(np.uint8))
    along = along.resize((size, size), Image.Resampling.BICUBIC)
    warp = np.asarray(along, dtype=np.float32) / 255.0
    rings = np.sin((y * rng.uniform(8, 20) + warp * rng.uniform(1.0, 2.5) + 0.15 * np.sin(x * 4.0)) * math.pi)
    fine = Image.fromarray((rng.random((size // 2, 6)) * 255).astype(np.uint8))
    fine = fine.resize((size, size), Image.Resampling.BILINEAR)
    t = (rings * 0.5 + 0.5) ** 2 * 0.65 + np.asarray(fine, dtype=np.float32) / 255.0 * 0.35
    if rng.random() < 0.5:  # planks run either way
        t = t.T
    light = _random_colour(rng, 150, 230)
    light = (light[0], int(light[1] * 0.8), int(light[2] * 0.55))
    dark = (int(light[0] * 0.55), int(light[1] * 0.5), int(light[2] * 0.45))
    return Image.fromarray(_lerp_colours(np.ascontiguousarray(t), light, dark))


def _bg_fabric(rng: np.random.Generator, size: int) -> Image.Image:
    """Procedural woven fabric (a bed sheet or sofa)."""
    x, y = _grid(size)
    freq = rng.uniform(60, 140) * math.pi
    weave = np.sin(x * freq) * np.sin(y * freq)
    t = 0.5 + 0.2 * weave + 0.3 * (_smooth_noise(rng, size, 5) - 0.5) + rng.normal(0, 0.04, (size, size))
    base = _random_colour(rng, 40, 240)
    dark = tuple(int(c * 0.6) for c in base)
    return Image.fromarray(_lerp_colours(np.clip(t, 0, 1), dark, base))  # type: ignore[arg-type]


def _bg_noise(rng: np.random.Generator, size: int) -> Image.Image:
    """Mottled two-colour noise (concrete, carpet)."""
    t = 0.6 * _smooth_noise(rng, size, int(rng.integers(3, 20))) + 0.4 * rng.random((size, size))
    return Image.fromarray(_lerp_colours(t.astype(np.float32), _random_colour(rng), _random_colour(rng)))


def _bg_gradient(rng: np.random.Generator, size: int) -> Image.Image:
    """Linear gradient between two colours (a backdrop)."""
    x, y = _grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    t = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle) + 0.5
    return Image.fromarray(_lerp_colours(np.clip(t, 0, 1), _random_colour(rng), _random_colour(rng)))


def _bg_studio(rng: np.random.Generator, size: int) -> Image.Image:
    """Light seamless studio backdrop with a soft vignette (official product shots)."""
    x, y = _grid(size)
    r2 = (x - 0.5) ** 2 + (y - rng.uniform(0.3, 0.6)) ** 2
    t = np.clip(r2 * rng.uniform(0.8, 2.0), 0, 1)
    centre = _random_colour(rng, 225, 256)
    edge = tuple(int(c * rng.uniform(0.75, 0.92)) for c in centre)
    return Image.fromarray(_lerp_colours(t, centre, edge))  # type: ignore[arg-type]


_BACKGROUNDS: dict[str, Callable[[np.random.Generator, int], Image.Image]] = {
    "photo": _bg_photo,
    "wood": _bg_wood,
    "fabric": _bg_fabric,
    "noise": _bg_noise,
    "gradient": _bg_gradient,
    "studio": _bg_studio,
}
_BACKGROUND_WEIGHTS = {"photo": 0.45, "wood": 0.15, "fabric": 0.15, "noise": 0.08, "gradient": 0.07, "studio": 0.10}


def _background(rng: np.random.Generator, size: int, studio: bool) -> Image.Image:
    """A random background, or a studio backdrop for official-looking shots."""
    if studio:
        return _bg_studio(rng, size)
    names = [n for n in _BACKGROUND_WEIGHTS if n != "photo" or _photo_pool()]
    weights = np.array([_BACKGROUND_WEIGHTS[n] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return _BACKGROUNDS[name](rng, size)


# ----------------------------------------------------------------------------------------------
# Product mock-ups
# ----------------------------------------------------------------------------------------------


@dataclass
class _Canvas:
    """Supersampled drawing surface for one product, in product-box unit coordinates."""

    draw_rgb: ImageDraw.ImageDraw
    draw_mask: ImageDraw.ImageDraw
    x0: float
    y0: float
    w: float
    h: float

    def pt(self, u: float, v: float) -> tuple[float, float]:
        """Map unit coordinates inside the product box to canvas pixels."""
        return self.x0 + u * self.w, self.y0 + v * self.h

    def box(self, u0: float, v0: float, u1: float, v1: float) -> tuple[float, float, float, float]:
        """Map a unit-coordinate box to canvas pixels."""
        return (*self.pt(u0, v0), *self.pt(u1, v1))

    def polygon(self, points: list[tuple[float, float]], fill: RGB) -> None:
        """Fill a polygon on the colour layer and the mask."""
        pts = [self.pt(u, v) for u, v in points]
        self.draw_rgb.polygon(pts, fill=fill)
        self.draw_mask.polygon(pts, fill=255)

    def ellipse(self, u0: float, v0: float, u1: float, v1: float, fill: RGB) -> None:
        """Fill an ellipse on the colour layer and the mask."""
        self.draw_rgb.ellipse(self.box(u0, v0, u1, v1), fill=fill)
        self.draw_mask.ellipse(self.box(u0, v0, u1, v1), fill=255)

    def rounded(self, u0: float, v0: float, u1: float, v1: float, radius: float, fill: RGB) -> None:
        """Fill a rounded rectangle (radius as a fraction of the box width)."""
        r = radius * self.w
        self.draw_rgb.rounded_rectangle(self.box(u0, v0, u1, v1), radius=r, fill=fill)
        self.draw_mask.rounded_rectangle(self.box(u0, v0, u1, v1), radius=r, fill=255)

    def line(self, points: list[tuple[float, float]], fill: RGB, width: float) -> None:
        """Draw a line (width as a fraction of the box width) on both layers."""
        pts = [self.pt(u, v) for u, v in points]
        wpx = max(1, round(width * self.w))
        self.draw_rgb.line(pts, fill=fill, width=wpx, joint="curve")
        self.draw_mask.line(pts, fill=255, width=wpx, joint="curve")

    def arc(
        self, u0: float, v0: float, u1: float, v1: float, start: float, end: float, fill: RGB, width: float
    ) -> None:
        """Draw an elliptical arc (width as a fraction of the box width) on both layers."""
        wpx = max(1, round(width * self.w))
        self.draw_rgb.arc(self.box(u0, v0, u1, v1), start, end, fill=fill, width=wpx)
        self.draw_mask.arc(self.box(u0, v0, u1, v1), start, end, fill=255, width=wpx)

    def paint(self, points: list[tuple[float, float]], fill: RGB) -> None:
        """Paint a polygon on the colour layer only (details inside the silhouette)."""
        self.draw_rgb.polygon([self.pt(u, v) for u, v in points], fill=fill)


def _shade(colour: RGB, factor: float) -> RGB:
    """Darken (<1) or lighten (>1) a colour."""
    if factor <= 1.0:
        return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]
    return tuple(int(c + (255 - c) * (factor - 1.0)) for c in colour)  # type: ignore[return-value]


@dataclass(frozen=True)
class _Product:
    """A mock-up: aspect ratio (w/h) of its box, where a logo goes, and how to draw it."""

    aspect: float
    logo_centre: tuple[float, float]  # unit coordinates inside the product box
    logo_max_width: float  # fraction of the product box width
    draw: Callable[[_Canvas, RGB, np.random.Generator], None]


def _draw_tshirt(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A flat-lay t-shirt."""
    c.polygon(
        [(0.36, 0.02), (0.5, 0.09), (0.64, 0.02), (0.83, 0.08), (1.0, 0.3), (0.86, 0.4), (0.79, 0.32),
         (0.8, 0.99), (0.2, 0.99), (0.21, 0.32), (0.14, 0.4), (0.0, 0.3), (0.17, 0.08)],
        col,
    )
    c.paint([(0.36, 0.02), (0.5, 0.09), (0.64, 0.02), (0.6, 0.02), (0.5, 0.06), (0.4, 0.02)], _shade(col, 0.7))
    c.line([(0.21, 0.32), (0.2, 0.99)], _shade(col, 0.88), 0.01)
    c.line([(0.79, 0.32), (0.8, 0.99)], _shade(col, 0.88), 0.01)


def _draw_hoodie(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A hoodie with hood, long sleeves, kangaroo pocket and drawstrings."""
    dark = _shade(col, 0.75)
    c.ellipse(0.32, 0.0, 0.68, 0.2, dark)
    c.polygon(
        [(0.33, 0.07), (0.5, 0.14), (0.67, 0.07), (0.84, 0.12), (0.99, 0.8), (0.88, 0.84), (0.79, 0.36),
         (0.8, 0.99), (0.2, 0.99), (0.21, 0.36), (0.12, 0.84), (0.01, 0.8), (0.16, 0.12)],
        col,
    )
    c.paint([(0.3, 0.7), (0.7, 0.7), (0.76, 0.92), (0.24, 0.92)], _shade(col, 0.85))
    c.line([(0.45, 0.13), (0.44, 0.3)], _shade(col, 1.5), 0.012)
    c.line([(0.55, 0.13), (0.56, 0.3)], _shade(col, 1.5), 0.012)
    c.paint([(0.2, 0.95), (0.8, 0.95), (0.8, 0.99), (0.2, 0.99)], dark)


def _draw_box(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A retail box in three-quarter view."""
    c.polygon([(0.0, 0.22), (0.78, 0.22), (0.78, 1.0), (0.0, 1.0)], col)
    c.polygon([(0.0, 0.22), (0.22, 0.0), (1.0, 0.0), (0.78, 0.22)], _shade(col, 1.25))
    c.polygon([(0.78, 0.22), (1.0, 0.0), (1.0, 0.78), (0.78, 1.0)], _shade(col, 0.7))


def _draw_tote(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A canvas tote bag with two handles."""
    strap = _shade(col, 0.8)
    c.arc(0.2, 0.0, 0.5, 0.6, 180, 360, strap, 0.035)
    c.arc(0.5, 0.0, 0.8, 0.6, 180, 360, strap, 0.035)
    c.polygon([(0.06, 0.3), (0.94, 0.3), (1.0, 1.0), (0.0, 1.0)], col)
    c.paint([(0.06, 0.3), (0.94, 0.3), (0.945, 0.34), (0.055, 0.34)], _shade(col, 0.85))


def _draw_cap(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A baseball cap, front view."""
    c.ellipse(0.0, 0.68, 1.0, 1.0, _shade(col, 0.8))
    c.draw_rgb.pieslice(c.box(0.08, 0.05, 0.92, 1.35), 180, 360, fill=col)
    c.draw_mask.pieslice(c.box(0.08, 0.05, 0.92, 1.35), 180, 360, fill=255)
    c.line([(0.5, 0.06), (0.5, 0.7)], _shade(col, 0.85), 0.008)
    c.ellipse(0.47, 0.03, 0.53, 0.08, _shade(col, 0.8))


def _draw_phone_case(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A phone case, back view, with a camera bump."""
    c.rounded(0.0, 0.0, 1.0, 1.0, 0.16, col)
    c.draw_rgb.rounded_rectangle(c.box(0.07, 0.04, 0.45, 0.24), radius=0.08 * c.w, fill=_shade(col, 0.8))
    for u, v in ((0.17, 0.09), (0.17, 0.17), (0.33, 0.13)):
        c.draw_rgb.ellipse(c.box(u - 0.06, v - 0.035, u + 0.06, v + 0.035), fill=(25, 25, 30))


def _draw_sneaker(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A low-top sneaker, side view."""
    sole = (235, 232, 225) if rng.random() < 0.7 else _shade(col, 0.5)
    c.polygon(
        [(0.02, 0.62), (0.1, 0.25), (0.3, 0.2), (0.4, 0.35), (0.55, 0.38), (0.75, 0.5), (0.95, 0.58),
         (1.0, 0.72), (0.02, 0.8)],
        col,
    )
    c.rounded(0.0, 0.72, 1.0, 0.95, 0.06, sole)
    c.paint([(0.1, 0.25), (0.3, 0.2), (0.33, 0.26), (0.12, 0.3)], _shade(col, 0.7))
    for i in range(4):
        u = 0.38 + i * 0.06
        c.line([(u, 0.33 + i * 0.03), (u + 0.05, 0.4 + i * 0.03)], _shade(col, 1.6), 0.012)


def _draw_mug(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A mug with a handle."""
    c.arc(0.62, 0.25, 1.0, 0.72, 270, 90, col, 0.09)
    c.rounded(0.0, 0.06, 0.8, 1.0, 0.08, col)
    c.ellipse(0.0, 0.0, 0.8, 0.14, _shade(col, 1.1))
    c.draw_rgb.ellipse(c.box(0.04, 0.02, 0.76, 0.12), fill=_shade(col, 0.45))


def _draw_backpack(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """A backpack with a front pocket and top handle."""
    c.arc(0.35, 0.0, 0.65, 0.2, 180, 360, _shade(col, 0.7), 0.04)
    c.rounded(0.05, 0.08, 0.95, 1.0, 0.3, col)
    c.draw_rgb.rounded_rectangle(c.box(0.18, 0.5, 0.82, 0.95), radius=0.12 * c.w, fill=_shade(col, 0.88))
    c.line([(0.22, 0.56), (0.78, 0.56)], _shade(col, 0.6), 0.015)


def _draw_bottle(c: _Canvas, col: RGB, rng: np.random.Generator) -> None:
    """An insulated water bottle."""
    c.rounded(0.0, 0.16, 1.0, 1.0, 0.25, col)
    c.rounded(0.22, 0.0, 0.78, 0.18, 0.1, _shade(col, 0.55) if rng.random() < 0.5 else (30, 30, 30))
    c.paint([(0.12, 0.25), (0.2, 0.25), (0.2, 0.95), (0.12, 0.95)], _shade(col, 1.25))


_PRODUCTS: dict[str, _Product] = {
    "tshirt": _Product(0.95, (0.5, 0.36), 0.42, _draw_tshirt),
    "hoodie": _Product(0.95, (0.5, 0.45), 0.36, _draw_hoodie),
    "box": _Product(1.1, (0.39, 0.6), 0.6, _draw_box),
    "tote": _Product(0.85, (0.5, 0.64), 0.6, _draw_tote),
    "cap": _Product(1.3, (0.5, 0.45), 0.38, _draw_cap),
    "phone_case": _Product(0.5, (0.5, 0.58), 0.7, _draw_phone_case),
    "sneaker": _Product(2.0, (0.5, 0.55), 0.28, _draw_sneaker),
    "mug": _Product(1.1, (0.4, 0.55), 0.55, _draw_mug),
    "backpack": _Product(0.8, (0.5, 0.33), 0.45, _draw_backpack),
    "bottle": _Product(0.38, (0.5, 0.55), 0.85, _draw_bottle),
}
PRODUCT_KINDS: tuple[str, ...] = tuple(_PRODUCTS)


def _linear_shading(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multiplicative light falloff: a random-direction gradient plus a soft highlight."""
    x, y = _grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    strength = rng.uniform(0.15, 0.45)
    t = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle)
    hx, hy = rng.uniform(0.3, 0.7, size=2)
    highlight = np.exp(-((x - hx) ** 2 + (y - hy) ** 2) / 0.05) * rng.uniform(0.0, 0.2)
    return (1.0 - strength * t + highlight).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Logo placement
# ----------------------------------------------------------------------------------------------


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """Coefficients for PIL's PERSPECTIVE transform mapping output points ``dst`` to input points ``src``."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return np.linalg.solve(np.asarray(rows, dtype=np.float64), np.asarray(rhs, dtype=np.float64)).tolist()


def _recolour(logo: Image.Image, colour: RGB) -> Image.Image:
    """Replace a logo's colour, keeping its alpha."""
    out = Image.new("RGBA", logo.size, (*colour, 255))
    out.putalpha(logo.getchannel("A"))
    return out


def _pick_logo_colour(rng: np.random.Generator, logo: Image.Image, surface: RGB) -> RGB:
    """Brand colour, black, white or random, switched to black/white if it would vanish on the product."""
    arr = np.asarray(logo)
    opaque = arr[..., 3] > 128
    original: RGB = tuple(int(v) for v in np.median(arr[opaque][:, :3], axis=0)) if opaque.any() else _BLACK  # type: ignore[assignment]
    choice = rng.choice(4, p=[0.45, 0.2, 0.2, 0.15])
    colour = (original, _BLACK, _WHITE, _random_colour(rng))[int(choice)]
    if _contrast(colour, surface) < 1.8:
        colour = _BLACK if _contrast(_BLACK, surface) > _contrast(_WHITE, surface) else _WHITE
    return colour


def _distort_logo(logo: Image.Image, rng: np.random.Generator, width: int) -> Image.Image:
    """Crop a logo to its ink, scale it to ``width``, rotate it (±25°) and apply a mild perspective."""
    bbox = logo.getchannel("A").getbbox()
    if bbox is not None:
        logo = logo.crop(bbox)
    w, h = logo.size
    scale = width / max(w, 1)
    logo = logo.resize((max(2, round(w * scale)), max(2, round(h * scale))), Image.Resampling.BILINEAR)
    pad = max(2, round(0.12 * max(logo.size)))
    logo = ImageOps.expand(logo, border=pad, fill=(0, 0, 0, 0))
    w, h = logo.size
    jitter = 0.07 * min(w, h)
    corners = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    moved = [(x + rng.uniform(-jitter, jitter), y + rng.uniform(-jitter, jitter)) for x, y in corners]
    logo = logo.transform((w, h), Image.Transform.PERSPECTIVE, _perspective_coeffs(corners, moved),
                          Image.Resampling.BILINEAR)
    return logo.rotate(rng.uniform(-25, 25), Image.Resampling.BILINEAR, expand=True)


# ----------------------------------------------------------------------------------------------
# Text overlays and finishing
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's bundled default font at a size (no font files needed)."""
    return ImageFont.load_default(size=size)


def _draw_caption(img: Image.Image, text: str, rng: np.random.Generator) -> None:
    """Draw a sticker or outlined text (price, "SALE", a brand name) in a random corner, in place."""
    size = img.width
    font = _font(max(9, int(size * rng.uniform(0.05, 0.09))))
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    margin = int(size * 0.03)
    x = margin if rng.random() < 0.5 else max(margin, size - tw - 3 * margin)
    y = margin if rng.random() < 0.5 else max(margin, size - th - 3 * margin)
    if rng.random() < 0.6:
        sticker = ((220, 30, 40), (250, 200, 20), (20, 20, 20), (255, 255, 255))[int(rng.integers(4))]
        ink = _WHITE if _contrast(sticker, _WHITE) > 3 else _BLACK
        pad = int(size * 0.015) + 2
        draw.rounded_rectangle((x - pad, y - pad, x + tw + pad, y + th + pad), radius=pad, fill=sticker)
        draw.text((x - left, y - top), text, font=font, fill=ink)
    else:
        ink = _random_colour(rng)
        outline = _BLACK if _luminance(ink) > 0.4 else _WHITE
        draw.text((x - left, y - top), text, font=font, fill=ink, stroke_width=max(1, size // 160), stroke_fill=outline)


def _jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    """Compress and decompress as JPEG, as marketplaces do on upload."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


def _occlude(img: Image.Image, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Cover a small part of the logo box with a patch (sticker, tag, fold, finger), in place."""
    x0, y0, x1, y1 = box
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    pw, ph = int(w * rng.uniform(0.2, 0.45)), int(h * rng.uniform(0.2, 0.45))
    px = int(rng.integers(x0 - pw // 3, max(x0 - pw // 3 + 1, x1 - 2 * pw // 3)))
    py = int(rng.integers(y0 - ph // 3, max(y0 - ph // 3 + 1, y1 - 2 * ph // 3)))
    draw = ImageDraw.Draw(img)
    fill = (int(rng.integers(170, 240)), int(rng.integers(120, 190)), int(rng.integers(100, 160))) \
        if rng.random() < 0.4 else _random_colour(rng)  # skin-like tones for a finger or hand
    if rng.random() < 0.5:
        draw.ellipse((px, py, px + pw, py + ph), fill=fill)
    else:
        draw.rectangle((px, py, px + pw, py + ph), fill=fill)


def compose_listing_photo(
    logo_rgba: Image.Image | None,
    rng: np.random.Generator,
    size: int = 320,
    *,
    product: str | None = None,
    product_color: RGB | None = None,
    caption: str | None = None,
    studio: bool = False,
) -> Image.Image:
    """Compose a marketplace-style product photo with a logo printed on a PIL-drawn mock-up.

    Args:
        logo_rgba: The logo (any RGBA render, e.g. from :func:`render_logo`); None for a product
            with no logo.
        rng: Source of every random choice.
        size: Side of the square output in pixels.
        product: One of :data:`PRODUCT_KINDS`; None picks one at random.
        product_color: Base colour of the product; None picks one at random.
        caption: Text overlaid on the photo (price sticker, "SALE", a brand name), or None.
        studio: Official-looking shot: plain light backdrop, less blur, better JPEG quality.

    Returns:
        The RGB photo, already blurred and JPEG-compressed.
    """
    kind = product if product is not None else PRODUCT_KINDS[int(rng.integers(len(PRODUCT_KINDS)))]
    if kind not in _PRODUCTS:
        raise ValueError(f"unknown product {kind!r}; known: {', '.join(PRODUCT_KINDS)}")
    spec = _PRODUCTS[kind]
    colour = product_color if product_color is not None else _random_colour(rng)

    photo = _background(rng, size, studio)

    # Product silhouette, drawn supersampled then reduced for smooth edges.
    big = size * _SS
    layer = Image.new("RGB", (big, big), colour)
    mask = Image.new("L", (big, big), 0)
    extent = rng.uniform(0.62, 0.88) * big
    w, h = (extent, extent / spec.aspect) if spec.aspect >= 1 else (extent * spec.aspect, extent)
    x0 = (big - w) / 2 + rng.uniform(-0.06, 0.06) * big
    y0 = (big - h) / 2 + rng.uniform(-0.06, 0.06) * big
    canvas = _Canvas(ImageDraw.Draw(layer), ImageDraw.Draw(mask), x0, y0, w, h)
    spec.draw(canvas, colour, rng)
    layer = layer.reduce(_SS)
    mask = mask.reduce(_SS)

    logo_box: tuple[int, int, int, int] | None = None
    if logo_rgba is not None:
        logo_w = int(size * rng.uniform(0.12, 0.45))
        logo_w = max(8, min(logo_w, int(spec.logo_max_width * w / _SS * rng.uniform(0.9, 1.15))))
        placed = _distort_logo(_recolour(logo_rgba, _pick_logo_colour(rng, logo_rgba, colour)), rng, logo_w)
        cu, cv = spec.logo_centre
        cx, cy = (x0 + cu * w) / _SS, (y0 + cv * h) / _SS
        if rng.random() < 0.15:  # slide towards the product edge, so its outline cuts the logo
            cx += rng.choice([-1, 1]) * rng.uniform(0.3, 0.5) * w / _SS * spec.logo_max_width
        else:
            cx += rng.uniform(-0.04, 0.04) * w / _SS
            cy += rng.uniform(-0.04, 0.04) * h / _SS
        lx, ly = int(cx - placed.width / 2), int(cy - placed.height / 2)
        logo_layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        logo_layer.paste(placed, (lx, ly))
        # The logo is printed on the product: clip it to the silhouette, then shade both together.
        alpha = Image.fromarray(
            (np.asarray(logo_layer.getchannel("A"), dtype=np.uint16) * np.asarray(mask) // 255).astype(np.uint8)
        )
        layer.paste(logo_layer.convert("RGB"), (0, 0), alpha)
        logo_box = alpha.getbbox()

    shading = _linear_shading(rng, size)
    shaded = np.asarray(layer, dtype=np.float32) * shading[..., None]
    if kind in ("tshirt", "hoodie", "tote", "cap"):  # fabric grain
        shaded += rng.normal(0.0, 5.0, (size, size, 1)).astype(np.float32)
    layer = Image.fromarray(np.clip(shaded, 0, 255).astype(np.uint8))

    # Soft drop shadow, then the product.
    shadow_alpha = mask.filter(ImageFilter.GaussianBlur(size * rng.uniform(0.01, 0.03)))
    offset = (int(size * rng.uniform(-0.02, 0.03)), int(size * rng.uniform(0.0, 0.04)))
    shadow = Image.new("L", (size, size), 0)
    shadow.paste(shadow_alpha.point(lambda a: int(a * 0.45)), offset)
    photo.paste((0, 0, 0), (0, 0, size, size), shadow)
    photo.paste(layer, (0, 0), mask)

    occlude = rng.random() < 0.2  # drawn even without a logo, so the later choices do not shift
    if logo_box is not None and occlude:
        _occlude(photo, logo_box, rng)
    if caption:
        _draw_caption(photo, caption, rng)
    blur = rng.uniform(0.0, 0.4 if studio else 1.2) * size / 320
    if blur > 0.15:
        photo = photo.filter(ImageFilter.GaussianBlur(blur))
    quality = int(rng.integers(75, 96)) if studio else int(rng.integers(35, 96))
    return _jpeg_roundtrip(photo, quality)


_REUPLOAD_TEXTS = (
    "100% Original",
    "Best Quality",
    "Free Shipping",
    "Hot Sale",
    "Limited Stock",
    "Top Seller",
    "Fast Delivery",
    "New Arrival",
    "In Stock Now",
    "Wholesale Price",
)


def make_reupload(img: Image.Image, rng: np.random.Generator, caption: str | None = None) -> Image.Image:
    """Re-use a known fake's photo the way another counterfeit seller would.

    Applies a random crop (up to 20 % per side pair), an optional horizontal flip, an optional
    border, an optional caption bar, a resize and a JPEG recompression.

    Args:
        img: The original photo.
        rng: Source of every random choice.
        caption: Text of the caption bar; None picks a stock phrase (when a bar is drawn).

    Returns:
        The re-uploaded RGB photo.
    """
    out = img.convert("RGB")
    w, h = out.size
    cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = out.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    if rng.random() < 0.4:
        out = ImageOps.expand(out, border=int(min(cw, ch) * rng.uniform(0.02, 0.08)), fill=_random_colour(rng))
    if caption is not None or rng.random() < 0.5:
        text = caption if caption is not None else _REUPLOAD_TEXTS[int(rng.integers(len(_REUPLOAD_TEXTS)))]
        bar_h = max(12, int(out.height * rng.uniform(0.09, 0.14)))
        bar_colour = _random_colour(rng)
        framed = Image.new("RGB", (out.width, out.height + bar_h), bar_colour)
        top = rng.random() < 0.5
        framed.paste(out, (0, bar_h if top else 0))
        draw = ImageDraw.Draw(framed)
        font = _font(max(8, int(bar_h * 0.6)))
        ink = _WHITE if _contrast(bar_colour, _WHITE) > _contrast(bar_colour, _BLACK) else _BLACK
        left, tp, right, bottom = draw.textbbox((0, 0), text, font=font)
        tx = max(2, (out.width - (right - left)) // 2) - left
        ty = (0 if top else out.height) + (bar_h - (bottom - tp)) // 2 - tp
        draw.text((tx, ty), text, font=font, fill=ink)
        out = framed
    target = int(max(w, h) * rng.uniform(0.75, 1.15))
    scale = target / max(out.size)
    out = out.resize((max(16, round(out.width * scale)), max(16, round(out.height * scale))),
                     Image.Resampling.BILINEAR)
    return _jpeg_roundtrip(out, int(rng.integers(40, 91)))
