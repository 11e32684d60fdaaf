"""A fourth photo composer: a seller's phone snapshot of a real item that carries the mark.

:mod:`training.render` pastes the logo on a drawn mock-up, :mod:`training.scenes` composes 2-D scenes and
:mod:`training.render3d` ray-casts textured solids. None of those is what most marketplace photos are: a phone held
over a flat thing. Here the mark is printed on a flat or gently bent item, laid out as a texture:

- ``hang_tag``: a card tag on a string, on the garment it hangs from;
- ``sticker``: a die-cut (white-bordered) or shaped sticker on a laptop lid or round a water bottle;
- ``shopping_bag``: the front of a paper bag with its handles;
- ``shoebox``: a shoebox lid with its rim;
- ``card``: a printed card or flyer with lines of text;
- ``patch``: a woven patch with a stitched border, the mark embroidered, on a garment;
- ``enamel_pin``: a pin with a metal rim, the mark in enamel between metal lines;
- ``phone_case``: the back of a phone case with its camera cut-out;
- ``poster``: a poster, framed or taped, on a wall;
- ``shipping_label``: a box top with packing tape and a shipping label, the mark on the label or on the board.

Inks differ per item: flat print, halftone dots, metallic foil, satin-stitch thread, debossing (shading only) and a
one-colour knock-out (the mark cut out of a solid patch of ink). The item is then placed by a full 3x3 homography, a
pinhole camera looking at the turned plane (``cv2.warpPerspective``; some shots strongly tilted), onto the surface it
lies on (a texture in the same plane, so its grain converges with the item) or in front of a real photograph. Fingers,
price stickers, coins and pens sometimes cover part of it, a glare patch may wash part of it out, and a second, smaller
copy of the mark (a sticker) sometimes lies beside it. Last comes a phone camera: lens distortion and chromatic
aberration (``cv2.remap``), defocus or motion blur (sometimes over part of the frame only), vignetting, a white-balance
cast, exposure and gamma, shot and read noise, lost resolution, and JPEG. The mark spans about 8 % to 60 % of the
photo's side, mostly 12 % to 35 %; a 320-pixel photo takes about 0.04 s on one core.

Photos without a logo show the same items with a plain mark (a shape or a generic word) or none. Every draw that only
a photo with a mark makes comes from a second generator split off at a fixed point, so one seed gives the same scene
with and without the logo. Every random choice comes from the generator passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

from training import render

__all__ = ["KINDS", "compose_snapshot_photo", "kind_of"]

RGB = tuple[int, int, int]
_MAX_TEXTURE = 720  # longest side of an item's texture in texels: bounds the cost of big items
_MARGIN = 1.12  # the scene is drawn this much larger than the photo, for the lens distortion to sample from
_WORDS = ("ORIGINAL", "PREMIUM", "CLASSIC", "HANDMADE", "QUALITY", "STUDIO", "NATURAL", "GOODS", "NEW")
_SKIN: tuple[RGB, ...] = ((233, 190, 160), (214, 160, 125), (190, 130, 95), (150, 100, 70), (105, 70, 50))
_METALS: tuple[tuple[RGB, RGB], ...] = (((120, 86, 30), (252, 226, 150)),  # gold
                                        ((95, 98, 106), (246, 247, 250)),  # silver
                                        ((105, 52, 28), (242, 176, 128)),  # copper
                                        ((22, 22, 26), (130, 132, 140)))  # black nickel
_WHITE: RGB = (246, 246, 243)
_BLACK: RGB = (22, 22, 24)


def _c(colour: RGB) -> np.ndarray:
    """An RGB tuple as floats in [0, 1]."""
    return np.asarray(colour, np.float32) / 255


def _contrasting(surface: RGB) -> RGB:
    """White or black, whichever reads better on ``surface``."""
    return _WHITE if render._contrast(_WHITE, surface) > render._contrast(_BLACK, surface) else _BLACK


# ----------------------------------------------------------------------------------------------
# Masks, noise and materials
# ----------------------------------------------------------------------------------------------


def _poly(h: int, w: int, pts: np.ndarray) -> np.ndarray:
    """An anti-aliased filled polygon as a float mask of shape (h, w)."""
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(pts) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255


def _rounded(x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
    """The outline of a rounded rectangle as polygon points."""
    r = max(0.0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    a = np.linspace(0, math.pi / 2, 7)
    corners = [(x1 - r, y1 - r, 0.0), (x0 + r, y1 - r, math.pi / 2), (x0 + r, y0 + r, math.pi),
               (x1 - r, y0 + r, 1.5 * math.pi)]
    return np.concatenate([np.stack([cx + r * np.cos(a + s), cy + r * np.sin(a + s)], 1) for cx, cy, s in corners])


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """The outline of an ellipse as polygon points."""
    a = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


def _shield(cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """The outline of a badge shield: a square top, sides curving into a point at the bottom."""
    t = np.linspace(0, 1, 10)[:, None]
    top = cy - h / 2
    right = np.hstack([cx + w / 2 * (1 - t**2), top + h * 0.45 + h * 0.55 * t])
    left = right[::-1] * [-1, 1] + [2 * cx, 0]
    return np.concatenate([[(cx - w / 2, top), (cx + w / 2, top)], right, left])


def _noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Smooth noise in [0, 1] of shape (h, w), about ``cells`` blobs along the longer side."""
    gh = max(2, round(cells * h / max(h, w))) + 1
    gw = max(2, round(cells * w / max(h, w))) + 1
    grid = rng.random((gh, gw), dtype=np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def _material(rng: np.random.Generator, name: str, h: int, w: int, colour: RGB) -> np.ndarray:
    """A surface of shape (h, w, 3) in [0, 1]: paper, cardboard, fabric, denim, metal, plastic, wood, ... ."""
    base = np.empty((h, w, 3), np.float32)
    base[:] = _c(colour)
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    fine = rng.standard_normal((h, w), dtype=np.float32)
    if name == "paper":
        t = 0.015 * fine + 0.05 * (_noise(rng, h, w, 5) - 0.5)
    elif name == "cardboard":
        t = 0.07 * cv2.blur(fine, (9, 1)) + 0.1 * (_noise(rng, h, w, 6) - 0.5)
    elif name == "fabric":
        f = rng.uniform(1.3, 2.2)
        t = 0.06 * np.sin(x * f) * np.sin(y * f) + 0.05 * fine + 0.18 * (_noise(rng, h, w, 4) - 0.5)
    elif name == "denim":
        f = rng.uniform(1.0, 1.6)
        t = 0.09 * np.sin((x + y) * f) + 0.08 * cv2.blur(fine, (1, 5)) + 0.15 * (_noise(rng, h, w, 5) - 0.5)
    elif name == "metal":  # brushed
        t = 0.15 * cv2.blur(fine, (41, 1)) + 0.05 * (_noise(rng, h, w, 3) - 0.5)
    elif name == "wood":
        f = rng.uniform(0.08, 0.2)
        warp = 25 * _noise(rng, h, w, 4)
        t = 0.1 * np.sin((y + warp + 3 * cv2.blur(fine, (31, 1))) * f) + 0.03 * fine
        t = t + 0.1 * (_noise(rng, h, w, 3) - 0.5)
    elif name == "marble":
        veins = np.abs(np.sin((x * 0.02 + y * 0.015) * rng.uniform(3, 6) + 6 * _noise(rng, h, w, 5)))
        t = -0.3 * np.clip(1 - 4 * veins, 0, 1) + 0.01 * fine  # dark veins where the wave crosses zero
    elif name == "cork":
        t = 0.22 * cv2.GaussianBlur(fine, (0, 0), 1.2) + 0.08 * (_noise(rng, h, w, 5) - 0.5)
    elif name == "concrete":
        t = 0.04 * fine + 0.12 * (_noise(rng, h, w, 8) - 0.5) + 0.1 * (_noise(rng, h, w, 3) - 0.5)
    elif name == "carpet":
        t = 0.16 * cv2.GaussianBlur(fine, (0, 0), 0.8) + 0.1 * (_noise(rng, h, w, 4) - 0.5)
    else:  # "plastic", "paint": nearly plain
        t = 0.012 * fine + 0.04 * (_noise(rng, h, w, 3) - 0.5)
    return np.clip(base * (1 + t[..., None]), 0, 1)


def _paint(tex: np.ndarray, mask: np.ndarray, colour: np.ndarray | RGB) -> None:
    """Lay opaque paint (a colour, or an image the texture's size) through ``mask`` on a premultiplied RGBA texture."""
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))  # only where the mask reaches: shapes are small
    if w == 0 or h == 0:
        return
    region = tex[y : y + h, x : x + w]
    a = mask[y : y + h, x : x + w, None]
    col = _c(colour) if isinstance(colour, tuple) else colour[y : y + h, x : x + w]
    region[..., :3] = region[..., :3] * (1 - a) + col * a
    region[..., 3:] = region[..., 3:] * (1 - a) + a


def _at(shape: tuple[int, ...], m: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """A small mask put down with its top-left corner at (x0, y0) on an empty mask of ``shape``, cut at the edges."""
    out = np.zeros(shape[:2], np.float32)
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(shape[1], x0 + m.shape[1]), min(shape[0], y0 + m.shape[0])
    if xs < xe and ys < ye:
        out[ys:ye, xs:xe] = m[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return out


def _bars(tex: np.ndarray, x0: float, y0: float, x1: float, y1: float, rng: np.random.Generator, colour: RGB,
          lines: int) -> None:
    """Small text as bars of varied length (what body text looks like at phone resolution)."""
    h = (y1 - y0) / max(1, lines)
    for k in range(lines):
        length = (x1 - x0) * rng.uniform(0.35, 1.0)
        top = y0 + k * h + h * 0.25
        box = _rounded(x0, top, x0 + length, top + max(1.0, h * 0.45), h * 0.2)
        _paint(tex, _poly(*tex.shape[:2], box) * rng.uniform(0.6, 0.95), colour)


def _word(text: str, height: int) -> np.ndarray:
    """A word as a float mask about ``height`` pixels tall."""
    font = render._font(max(6, height))
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(img).text((-left, -top), text, font=font, fill=255)
    return np.asarray(img, np.float32) / 255


# ----------------------------------------------------------------------------------------------
# The mark and its inks
# ----------------------------------------------------------------------------------------------


class _Mark:
    """The logo's coverage (or, with no logo, maybe a plain mark), fitted into a square box on demand."""

    def __init__(self, logo: Image.Image | None, mrng: np.random.Generator) -> None:
        self.alpha: np.ndarray | None = None
        self.brand: RGB | None = None
        self.plain: int | None = None  # with no logo: which plain mark, or None for no mark at all
        self.word, self.turn = _WORDS[0], 0.0
        if logo is not None:
            a = logo.getchannel("A")
            box = a.getbbox()
            self.alpha = np.asarray(a.crop(box), np.float32) / 255 if box else np.zeros((2, 2), np.float32)
            arr = np.asarray(logo)
            opaque = arr[..., 3] > 128
            if opaque.any():
                self.brand = tuple(int(v) for v in np.median(arr[opaque][:, :3], axis=0))  # type: ignore[assignment]
        else:  # unbranded goods: a shape, a generic word, or nothing
            self.plain = int(mrng.integers(6)) if mrng.random() < 0.7 else None
            self.word = _WORDS[int(mrng.integers(len(_WORDS)))]
            self.turn = mrng.uniform(0, math.pi)

    def mask(self, side: int) -> np.ndarray:
        """Coverage in [0, 1] of shape (side, side): the mark fitted into the square and centred."""
        out = np.zeros((side, side), np.float32)
        if self.alpha is not None:
            h, w = self.alpha.shape
            scale = side / max(h, w)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            fitted = cv2.resize(self.alpha, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            x0, y0 = (side - nw) // 2, (side - nh) // 2
            out[y0 : y0 + nh, x0 : x0 + nw] = np.clip(fitted, 0, 1)
            return out
        c, r = side / 2, side / 2 * 0.92
        if self.plain == 0:
            return _poly(side, side, _ellipse(c, c, r, r))
        if self.plain == 1:
            inner = _poly(side, side, _ellipse(c, c, r * 0.6, r * 0.6))
            return np.clip(_poly(side, side, _ellipse(c, c, r, r)) - inner, 0, 1)
        if self.plain == 2:
            k = np.arange(10)
            rad = np.where(k % 2 == 0, r, r * 0.42)
            ang = k * math.pi / 5 - math.pi / 2 + self.turn * 0.2
            return _poly(side, side, np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1))
        if self.plain == 3:
            return _poly(side, side, np.array([(c, c - r), (c + r, c + r * 0.75), (c - r, c + r * 0.75)]))
        if self.plain == 4:
            for k in range(3):
                top = side * (0.18 + 0.25 * k)
                bottom = top + side * 0.14
                out += _poly(side, side, np.array([(0, top), (side, top), (side, bottom), (0, bottom)]))
            return np.clip(out, 0, 1)
        if self.plain == 5:
            word = _word(self.word, max(6, side // 3))
            scale = min(side / word.shape[1], side / word.shape[0])
            nw, nh = max(1, int(word.shape[1] * scale)), max(1, int(word.shape[0] * scale))
            out[(side - nh) // 2 : (side - nh) // 2 + nh, (side - nw) // 2 : (side - nw) // 2 + nw] = cv2.resize(
                word, (nw, nh), interpolation=cv2.INTER_AREA)
        return out


def _ink_colour(rng: np.random.Generator, surface: RGB, brand: RGB | None) -> RGB:
    """The ink: the brand's colour, another colour, or white or black, kept readable on the surface."""
    roll, other = rng.random(), render._random_colour(rng, 0, 256)
    colour = brand if roll < 0.5 and brand is not None else other if roll < 0.65 else _contrasting(surface)
    return colour if render._contrast(colour, surface) >= 1.5 else _contrasting(surface)


def _relief(m: np.ndarray, sigma: float, angle: float) -> np.ndarray:
    """How a raised mask catches a light from ``angle``: positive on lit edges, negative on shaded ones (about ±1)."""
    h = cv2.GaussianBlur(m, (0, 0), sigma)
    gx = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(h, cv2.CV_32F, 0, 1, ksize=3) / 8
    return -(gx * math.cos(angle) + gy * math.sin(angle)) * sigma * 2.5


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel coordinates (x, y) of an n x n square."""
    a = np.arange(n, dtype=np.float32)
    return a[None, :], a[:, None]


def _ink_flat(rng: np.random.Generator, rgb: np.ndarray, m: np.ndarray, ink: RGB, surface: RGB) -> None:
    """Flat print, slightly uneven."""
    col = _c(ink) * (1 + 0.05 * (_noise(rng, *m.shape, 4)[..., None] - 0.5))
    rgb[:] = rgb * (1 - m[..., None]) + col * m[..., None]


def _ink_halftone(rng: np.random.Generator, rgb: np.ndarray, m: np.ndarray, ink: RGB, surface: RGB) -> None:
    """A screen print: the mark built of dots on a rotated grid."""
    n = m.shape[0]
    pitch = max(2.6, n / rng.uniform(14, 26))
    angle = math.radians(float(rng.choice([15.0, 45.0, 75.0])))
    tone = cv2.GaussianBlur(m, (0, 0), pitch * 0.35) * rng.uniform(0.55, 0.85)
    x, y = _grid(n)
    xr, yr = x * math.cos(angle) + y * math.sin(angle), y * math.cos(angle) - x * math.sin(angle)
    screen = 0.5 + 0.25 * (np.cos(2 * math.pi * xr / pitch) + np.cos(2 * math.pi * yr / pitch))
    cover = np.clip((tone + screen - 1) * 3.5, 0, 1)[..., None]
    rgb[:] = rgb * (1 - cover) + _c(ink) * cover


def _ink_foil(rng: np.random.Generator, rgb: np.ndarray, m: np.ndarray, ink: RGB, surface: RGB) -> None:
    """Metallic foil: a gradient between a dark and a bright metal with a bevel on the edges."""
    dark, light = (_c(c) for c in _METALS[int(rng.integers(3))])
    n = m.shape[0]
    x, y = _grid(n)
    phi, period, phase = rng.uniform(0, math.pi), n * rng.uniform(0.5, 1.4), rng.uniform(0, 2 * math.pi)
    t = 0.5 + 0.5 * np.sin(2 * math.pi * (x * math.cos(phi) + y * math.sin(phi)) / period + phase)
    col = dark + (light - dark) * (t**1.5)[..., None]
    col = np.clip(col + 0.25 * _relief(m, max(0.7, n / 90), rng.uniform(0, 2 * math.pi))[..., None], 0, 1)
    rgb[:] = rgb * (1 - m[..., None]) + col * m[..., None]


def _ink_thread(rng: np.random.Generator, rgb: np.ndarray, m: np.ndarray, ink: RGB, surface: RGB) -> None:
    """Embroidery: satin stitches across the mark, raised, with a darker edge where the thread dives in."""
    n = m.shape[0]
    x, y = _grid(n)
    angle, pitch = rng.uniform(0, math.pi), max(1.8, n / rng.uniform(30, 55))
    stitch = 0.5 + 0.5 * np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / pitch)
    col = _c(ink) * (0.72 + 0.4 * stitch)[..., None]
    k = max(1, round(n / 70))
    edge = np.clip(cv2.dilate(m, np.ones((2 * k + 1, 2 * k + 1), np.uint8)) - m, 0, 1)
    rgb[:] = rgb * (1 - m[..., None]) + col * m[..., None]
    rgb *= (1 - 0.4 * edge)[..., None]
    rgb[:] = np.clip(rgb * (1 + 0.3 * _relief(m, max(0.8, n / 60), rng.uniform(0, 2 * math.pi)))[..., None], 0, 1)


def _ink_deboss(rng: np.random.Generator, rgb: np.ndarray, m: np.ndarray, ink: RGB, surface: RGB) -> None:
    """Pressed into the surface (or raised out of it): no ink, only the light on the step's walls."""
    n = m.shape[0]
    depth = float(rng.choice([-1.0, 1.0])) * rng.uniform(0.5, 0.8)
    shade = depth * _relief(m, max(0.8, n / 50), rng.uniform(0, 2 * math.pi))
    lift = 0.12 if sum(surface) < 150 else 0.0  # a dark surface shows the walls as lighter lines
    rgb[:] = np.clip(rgb * (1 + shade[..., None]) + lift * np.abs(shade)[..., None] - 0.06 * rgb * m[..., None], 0, 1)


def _ink_knockout(rng: np.random.Generator, rgb: np.ndarray, m: np.ndarray, ink: RGB, surface: RGB) -> None:
    """One colour of ink over a badge, the mark cut out of it so that the surface shows through."""
    n = m.shape[0]
    shape, r = int(rng.integers(3)), rng.uniform(0.0, 0.25) * n
    badge = _contrasting(surface) if rng.random() < 0.5 else render._random_colour(rng, 0, 256)
    if render._contrast(badge, surface) < 1.5:
        badge = _contrasting(surface)
    pts = _ellipse(n / 2, n / 2, n / 2 - 0.5, n / 2 - 0.5) if shape == 0 else _rounded(0.5, 0.5, n - 0.5, n - 0.5, r)
    cover = (_poly(n, n, pts) * (1 - m))[..., None]
    rgb[:] = rgb * (1 - cover) + _c(badge) * cover


def _ink_enamel(rng: np.random.Generator, rgb: np.ndarray, m: np.ndarray, ink: RGB, surface: RGB) -> None:
    """Hard enamel: the mark filled with a colour between raised metal lines."""
    n = m.shape[0]
    dark, light = (_c(c) for c in _METALS[int(rng.integers(len(_METALS)))])
    k = max(1, round(n / 45))
    rim = np.clip(cv2.dilate(m, np.ones((2 * k + 1, 2 * k + 1), np.uint8)) - cv2.erode(m, np.ones((3, 3), np.uint8)),
                  0, 1)
    rgb[:] = rgb * (1 - m[..., None]) + _c(ink) * m[..., None]
    x, y = _grid(n)
    metal = dark + (light - dark) * (0.5 + 0.5 * np.sin((x + y) / n * rng.uniform(4, 9)))[..., None]
    rgb[:] = rgb * (1 - rim[..., None]) + metal * rim[..., None]


_Ink = Callable[[np.random.Generator, np.ndarray, np.ndarray, RGB, RGB], None]
_INKS: dict[str, _Ink] = {"flat": _ink_flat, "halftone": _ink_halftone, "foil": _ink_foil, "thread": _ink_thread,
                          "deboss": _ink_deboss, "knockout": _ink_knockout, "enamel": _ink_enamel}


@dataclass
class _Shot:
    """What every item needs: the generator, the mark, its side in texels and the product colour."""

    rng: np.random.Generator
    mark: _Mark
    u: int  # side of the mark's square box, texels (before any item shrinks it to bound its texture)
    colour: RGB

    def fit(self, extent: float) -> int:
        """The mark's side for an item ``extent`` mark-sides long, so that its texture stays within bounds."""
        return max(12, min(self.u, int(_MAX_TEXTURE / extent)))

    def pick(self, styles: dict[str, float]) -> str:
        """One of several ink styles, by weight."""
        names = tuple(styles)
        p = np.asarray([styles[k] for k in names])
        return names[int(self.rng.choice(len(names), p=p / p.sum()))]

    def box(self, side: int) -> np.ndarray:
        """The mark at ``side`` texels in the middle of a mask padded on every side (for borders and badges)."""
        pad = max(3, side // 5)
        m = np.zeros((side + 2 * pad, side + 2 * pad), np.float32)
        m[pad : pad + side, pad : pad + side] = self.mark.mask(side)
        return m

    def print_mark(self, tex: np.ndarray, centre: tuple[float, float], side: int, style: str, surface: RGB,
                   ink: RGB | None = None) -> None:
        """Print the mark ``side`` texels wide, centred at ``centre``, in an ink ``style``, on ``tex`` in place."""
        ink = _ink_colour(self.rng, surface, self.mark.brand) if ink is None else ink
        m = self.box(side)
        n = m.shape[0]
        x0, y0 = round(centre[0] - n / 2), round(centre[1] - n / 2)
        h, w = tex.shape[:2]
        xs, ys = slice(max(0, x0), min(w, x0 + n)), slice(max(0, y0), min(h, y0 + n))
        if xs.start >= xs.stop or ys.start >= ys.stop:
            return
        region = tex[ys, xs]
        rgb = np.zeros((n, n, 3), np.float32)
        rgb[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = region[..., :3]
        before = rgb.copy()
        _INKS[style](self.rng, rgb, m, ink, surface)
        changed = (rgb - before)[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        region[..., :3] = np.clip(region[..., :3] + changed * region[..., 3:], 0, 1)  # no ink off the item


@dataclass
class _Item:
    """A flat item as a premultiplied RGBA texture, and how it sits in the photo."""

    rgba: np.ndarray  # (h, w, 4) float32
    anchor: tuple[float, float]  # texel at the mark's centre, which the camera aims at
    side: int  # the mark's side in texels
    gloss: float  # 0 (cloth) to 1 (glossy plastic): how bright a glare it can take
    ground: str  # what it lies on: "garment", "table", "floor" or "wall"


# ----------------------------------------------------------------------------------------------
# Items
# ----------------------------------------------------------------------------------------------


def _canvas(h: float, w: float) -> np.ndarray:
    """An empty premultiplied RGBA texture."""
    return np.zeros((int(math.ceil(h)), int(math.ceil(w)), 4), np.float32)


def _shadow_under(tex: np.ndarray, mask: np.ndarray, blur: float, strength: float, dx: float, dy: float) -> None:
    """A soft contact shadow of ``mask`` on a texture, shifted by (dx, dy) texels."""
    shifted = cv2.warpAffine(mask, np.float32([[1, 0, dx], [0, 1, dy]]), mask.shape[::-1])
    shade = cv2.GaussianBlur(shifted, (0, 0), max(0.5, blur)) * strength * (1 - mask)
    tex[..., :3] *= 1 - shade[..., None]


def _curl(tex: np.ndarray, amount: float, anchor: tuple[float, float]) -> tuple[np.ndarray, tuple[float, float]]:
    """Bend paper gently: the middle sags by ``amount`` of the height, the sides darken a little; returns the bent
    texture (taller by the sag) and where ``anchor`` went."""
    h, w = tex.shape[:2]
    pad = int(math.ceil(abs(amount) * h)) + 2
    tex = np.pad(tex, ((pad, pad), (0, 0), (0, 0)))
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    y = np.arange(h + 2 * pad, dtype=np.float32)[:, None]
    map_y = np.broadcast_to(y - amount * h * (1 - x**2), (h + 2 * pad, w)).astype(np.float32)
    map_x = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h + 2 * pad, w)).astype(np.float32)
    out = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out[..., :3] *= (1 - 0.25 * x**2 * min(1.0, abs(amount) * 8))[..., None]
    xa = -1 + 2 * anchor[0] / max(1, w - 1)
    return out, (anchor[0], anchor[1] + pad + amount * h * (1 - xa**2))


def _cylinder(tex: np.ndarray, angle: float, light: float) -> np.ndarray:
    """Wrap a texture round a vertical cylinder seen from the front, ``angle`` radians either side visible."""
    h, w = tex.shape[:2]
    x = np.linspace(-1, 1, w, dtype=np.float32)
    theta = np.arcsin(np.clip(x * math.sin(angle), -1, 1))
    src = ((theta / angle + 1) / 2 * (w - 1)).astype(np.float32)
    map_x = np.broadcast_to(src[None, :], (h, w)).astype(np.float32)
    map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).astype(np.float32)
    out = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    shade = 0.55 + 0.45 * np.clip(np.cos(theta - light), 0, 1) + 0.35 * np.exp(-((theta - light * 0.6) ** 2) / 0.01)
    out[..., :3] = np.clip(out[..., :3] * shade[None, :, None], 0, out[..., 3:])
    return out


def _hang_tag(s: _Shot) -> _Item:
    """A card tag on a string, hanging from a garment."""
    rng = s.rng
    wr, hr, top = rng.uniform(1.5, 1.9), rng.uniform(1.35, 1.8), rng.uniform(0.7, 1.3)
    u = s.fit(wr * hr + top)
    w, h, t = u * wr, u * wr * hr, u * top
    tex = _canvas(h + t + 2, w + 2)
    paper = ((245, 242, 232), (250, 250, 250), (196, 160, 118), (28, 28, 30), s.colour)[int(rng.integers(5))]
    cut = w * rng.uniform(0.0, 0.22)
    outline = np.array([(1 + cut, t + 1), (1 + w - cut, t + 1), (1 + w, t + 1 + cut), (1 + w, t + h),
                        (1, t + h), (1, t + 1 + cut)])
    shape = _poly(*tex.shape[:2], outline)
    _paint(tex, shape, _material(rng, "cardboard" if paper[2] < 130 else "paper", *tex.shape[:2], paper))
    hx, hy, hr_ = 1 + w / 2, t + 1 + h * 0.09, max(1.5, w * 0.045)
    metal = _METALS[int(rng.integers(len(_METALS)))][1]
    if rng.random() < 0.6:  # a grommet
        _paint(tex, _poly(*tex.shape[:2], _ellipse(hx, hy, hr_ * 1.9, hr_ * 1.9)), metal)
    tex[..., :] *= (1 - _poly(*tex.shape[:2], _ellipse(hx, hy, hr_, hr_)))[..., None]  # the hole
    string = ((240, 240, 235), (20, 20, 20), (190, 40, 40), (160, 130, 90))[int(rng.integers(4))]
    bend = rng.uniform(-0.4, 0.4) * w
    pts = [(hx + bend * 4 * f * (1 - f) + rng.uniform(-0.2, 0.2) * w * f, hy - (hy + 2) * f)
           for f in np.linspace(0, 1, 9)]
    line = np.zeros(tex.shape[:2], np.uint8)
    cv2.polylines(line, [np.round(np.asarray(pts) * 16).astype(np.int32)], False, 255, max(1, round(w / 45)),
                  cv2.LINE_AA, shift=4)
    _paint(tex, line.astype(np.float32) / 255, string)
    cy = t + 1 + h * 0.45
    s.print_mark(tex, (1 + w / 2, cy), u, s.pick({"flat": 3, "foil": 1.5, "deboss": 1, "knockout": 1.5, "halftone": 1}),
            paper)
    _bars(tex, 1 + w * 0.2, cy + u * 0.7, 1 + w * 0.8, min(t + h - 2, cy + u * 0.7 + h * 0.2), rng,
          _contrasting(paper), int(rng.integers(1, 4)))
    return _Item(tex, (1 + w / 2, cy), u, 0.25, "garment")


def _sticker(s: _Shot) -> _Item:
    """A sticker on a laptop lid or round a water bottle: die-cut round the mark with a white border, or shaped."""
    rng = s.rng
    bottle = rng.random() < 0.35
    wr, hr = ((rng.uniform(1.7, 2.2), rng.uniform(1.7, 2.3)) if bottle
              else (rng.uniform(3.2, 5.0), rng.uniform(0.62, 0.7)))
    u = s.fit(wr * max(1.0, hr))
    w, h = u * wr, u * wr * hr
    tex = _canvas(h, w)
    lids = ((200, 202, 206), (60, 62, 66), (18, 18, 20), (236, 236, 238))  # silver, space grey, black, white
    body = s.colour if rng.random() < 0.5 else lids[int(rng.integers(4))]
    shape = _poly(*tex.shape[:2], _rounded(0, 0, w, h, (0.02 if bottle else 0.05) * w))
    _paint(tex, shape, _material(rng, "metal" if rng.random() < 0.6 else "plastic", *tex.shape[:2], body))
    if not bottle:  # other stickers already on the lid
        for _ in range(2):
            cx, cy, r = rng.uniform(0.1, 0.9) * w, rng.uniform(0.15, 0.85) * h, u * rng.uniform(0.25, 0.45)
            other = _poly(*tex.shape[:2], _ellipse(cx, cy, r, r) if rng.random() < 0.5 else
                          _rounded(cx - r, cy - r * 0.7, cx + r, cy + r * 0.7, r * 0.2))
            if rng.random() < 0.6:
                _paint(tex, other * shape, render._random_colour(rng, 0, 256))
    centre = (w / 2, h * 0.5) if bottle else (w * rng.uniform(0.3, 0.7), h * rng.uniform(0.35, 0.65))
    stock = _WHITE if rng.random() < 0.7 else render._random_colour(rng, 0, 256)
    die_cut, border = rng.random() < 0.6, max(2, round(u * rng.uniform(0.06, 0.12)))
    m = s.box(u)
    n = m.shape[0]
    if die_cut:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border + 1, 2 * border + 1))
        outline = cv2.GaussianBlur(cv2.dilate(m, k), (0, 0), 0.7)
    else:
        r = n / 2 - 1
        round_ = rng.random() < 0.5
        outline = _poly(n, n, _ellipse(n / 2, n / 2, r, r) if round_ else _rounded(1, 1, n - 1, n - 1, n * 0.15))
    full = _at(tex.shape[:2], outline, round(centre[0] - n / 2), round(centre[1] - n / 2)) * shape
    _shadow_under(tex, full, max(1, u / 40), 0.35, u / 60, u / 40)
    _paint(tex, full, stock)
    style = s.pick({"flat": 3, "halftone": 1, "foil": 1} if die_cut else {"flat": 2, "knockout": 2, "foil": 1})
    s.print_mark(tex, centre, u, style, stock)
    if bottle:
        tex = _cylinder(tex, rng.uniform(0.9, 1.35), rng.uniform(-0.6, 0.6))
    return _Item(tex, centre, u, 0.7, "table")


def _shopping_bag(s: _Shot) -> _Item:
    """The front of a paper shopping bag: folded top, side creases, rope or ribbon handles."""
    rng = s.rng
    wr, hr, handle = rng.uniform(2.2, 3.0), rng.uniform(1.05, 1.35), rng.uniform(0.35, 0.5)
    u = s.fit(wr * (hr + handle))
    w, h = u * wr, u * wr * hr
    t = w * handle
    tex = _canvas(h + t, w)
    paper = ((196, 160, 118), (245, 244, 240), (20, 20, 22), s.colour, s.colour)[int(rng.integers(5))]
    body = _poly(*tex.shape[:2], np.array([(0, t), (w, t), (w, t + h), (0, t + h)]))
    surface = _material(rng, "cardboard" if paper == (196, 160, 118) else "paper", *tex.shape[:2], paper)
    x = np.linspace(0, 1, tex.shape[1], dtype=np.float32)[None, :]
    y = np.arange(tex.shape[0], dtype=np.float32)[:, None]
    creases = 1 - 0.1 * np.exp(-((x - 0.12) ** 2) / 0.0008) - 0.1 * np.exp(-((x - 0.88) ** 2) / 0.0008)
    fold = 1 - 0.12 * ((y > t + h * 0.1) & (y < t + h * 0.1 + 2)) - 0.06 * (y < t + h * 0.1)
    surface *= (creases * fold)[..., None]
    rope = ((235, 235, 230), (20, 20, 20), (196, 160, 118), _contrasting(paper))[int(rng.integers(4))]
    thick = max(2, round(w * rng.uniform(0.015, 0.035)))
    rx, ry = w * rng.uniform(0.16, 0.22), t * rng.uniform(0.8, 0.95)
    arc = np.zeros(tex.shape[:2], np.uint8)
    cv2.ellipse(arc, (round(w * 8), round((t + h * 0.05) * 16)), (round(rx * 16), round(ry * 16)), 0, 180, 360, 255,
                thick, cv2.LINE_AA, shift=4)
    _paint(tex, arc.astype(np.float32) / 255, rope)
    _paint(tex, body, surface)
    centre = (w / 2, t + h * rng.uniform(0.42, 0.55))
    s.print_mark(tex, centre, u, s.pick({"flat": 3, "knockout": 1.5, "foil": 1, "halftone": 1}), paper)
    if rng.random() < 0.5:
        tex, centre = _curl(tex, rng.uniform(-0.04, 0.04), centre)
    return _Item(tex, centre, u, 0.2, "floor")


def _shoebox(s: _Shot) -> _Item:
    """A shoebox lid from above: the top, with its rim along the near edge, the mark on the top."""
    rng = s.rng
    wr, hr = rng.uniform(2.6, 3.6), rng.uniform(0.55, 0.7)
    u = s.fit(wr)
    w, h = u * wr, u * wr * hr
    rim = h * rng.uniform(0.1, 0.18)
    tex = _canvas(h + rim, w)
    colours = ((236, 110, 40), (24, 24, 26), (240, 240, 238), (200, 40, 40), (140, 140, 146), s.colour)
    colour = colours[int(rng.integers(6))]
    surface = _material(rng, "cardboard", *tex.shape[:2], colour)
    y = np.arange(tex.shape[0], dtype=np.float32)[:, None, None]
    surface *= np.where(y > h, 0.72, 1.0)  # the rim faces away from the light
    _paint(tex, _poly(*tex.shape[:2], np.array([(0, 0), (w, 0), (w, h + rim), (0, h + rim)])), surface)
    if rng.random() < 0.4:  # an accent stripe across the lid
        sy = h * rng.uniform(0.75, 0.9)
        _paint(tex, _poly(*tex.shape[:2], np.array([(0, sy), (w, sy), (w, sy + h * 0.06), (0, sy + h * 0.06)])),
               render._random_colour(rng, 0, 256))
    corner = rng.random() < 0.35
    centre = (u * 0.9, h * 0.4) if corner else (w / 2, h * 0.45)
    style = s.pick({"flat": 2.5, "foil": 1.5, "deboss": 1, "knockout": 1.5, "halftone": 0.5})
    s.print_mark(tex, centre, u, style, colour)
    return _Item(tex, centre, u, 0.3, "floor")


def _card(s: _Shot) -> _Item:
    """A printed card or flyer: the mark at the top or the side, lines of text, maybe a coloured band."""
    rng = s.rng
    wr = rng.uniform(1.9, 2.8)
    hr = rng.uniform(0.55, 0.65) if rng.random() < 0.5 else rng.uniform(1.3, 1.45)
    u = s.fit(wr * max(1.0, hr))
    w, h = u * wr, u * wr * hr
    tex = _canvas(h, w)
    paper = (_WHITE, (240, 234, 220), (24, 24, 28), render._random_colour(rng, 0, 256))[int(rng.integers(4))]
    _paint(tex, _poly(*tex.shape[:2], _rounded(0, 0, w, h, w * rng.uniform(0, 0.04))),
           _material(rng, "paper", *tex.shape[:2], paper))
    ink = _contrasting(paper)
    if hr < 1:  # landscape card: mark on the left, text on the right
        centre = (w * 0.08 + u * 0.6, h / 2)
        _bars(tex, centre[0] + u * 0.75, h * 0.3, w * 0.92, h * 0.75, rng, ink, int(rng.integers(2, 5)))
    else:  # flyer: mark at the top, a headline and text below
        centre = (w / 2, h * 0.08 + u * 0.6)
        _bars(tex, w * 0.1, centre[1] + u * 0.75, w * 0.9, h * 0.85, rng, ink, int(rng.integers(4, 8)))
    if rng.random() < 0.4:
        _paint(tex, _poly(*tex.shape[:2], np.array([(0, h * 0.92), (w, h * 0.92), (w, h), (0, h)])),
               render._random_colour(rng, 0, 256))
    s.print_mark(tex, centre, u, s.pick({"flat": 3, "halftone": 1.5, "foil": 1, "deboss": 1, "knockout": 1}), paper)
    if rng.random() < 0.6:
        tex, centre = _curl(tex, rng.uniform(-0.05, 0.05), centre)
    return _Item(tex, centre, u, 0.35, "table")


def _patch(s: _Shot) -> _Item:
    """A woven patch with a stitched (merrowed) border, the mark embroidered, sewn on a garment."""
    rng = s.rng
    shape, ratio = int(rng.integers(3)), rng.uniform(1.35, 1.8)
    u = s.fit(ratio * 1.3)
    w = u * ratio
    h = w * (1.0 if shape != 1 else rng.uniform(0.65, 0.8)) * (1.15 if shape == 2 else 1.0)
    tex = _canvas(h + 4, w + 4)
    cx, cy = 2 + w / 2, 2 + h / 2
    outline = (_ellipse(cx, cy, w / 2, h / 2) if shape == 0 else _rounded(2, 2, 2 + w, 2 + h, w * 0.12) if shape == 1
               else _shield(cx, cy, w, h))
    mask = _poly(*tex.shape[:2], outline)
    colour = render._random_colour(rng, 0, 256)
    _paint(tex, mask, _material(rng, "denim" if rng.random() < 0.5 else "fabric", *tex.shape[:2], colour))
    b = max(2, round(w * 0.06))
    ring = np.clip(mask - cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * b + 1, 2 * b + 1))), 0, 1)
    x, y = _grid(max(tex.shape[:2]))
    stitch = (0.75 + 0.35 * np.sin((x + y) * 2.2))[: tex.shape[0], : tex.shape[1]]
    edge = (_contrasting(colour) if rng.random() < 0.5 else render._random_colour(rng, 0, 256))
    _paint(tex, ring, _c(edge) * stitch[..., None])
    tex[..., :3] *= (1 + 0.25 * _relief(mask, max(1.0, b / 2), -2.3))[..., None].clip(0.6, 1.3)
    s.print_mark(tex, (cx, cy), u, s.pick({"thread": 4, "flat": 1}), colour)
    return _Item(np.clip(tex, 0, None), (cx, cy), u, 0.0, "garment")


def _enamel_pin(s: _Shot) -> _Item:
    """An enamel pin: a metal rim round an enamel face, the mark in enamel between metal lines."""
    rng = s.rng
    shape, ratio = int(rng.integers(3)), rng.uniform(1.2, 1.45)
    u = s.fit(ratio * 1.3)
    w = u * ratio
    h = w * (1.15 if shape == 2 else 1.0)
    tex = _canvas(h + 4, w + 4)
    cx, cy = 2 + w / 2, 2 + h / 2
    outline = (_ellipse(cx, cy, w / 2, h / 2) if shape == 0 else _rounded(2, 2, 2 + w, 2 + h, w * 0.2) if shape == 1
               else _shield(cx, cy, w, h))
    mask = _poly(*tex.shape[:2], outline)
    dark, light = (_c(c) for c in _METALS[int(rng.integers(len(_METALS)))])
    x, y = _grid(max(tex.shape[:2]))
    metal = (dark + (light - dark) * (0.5 + 0.5 * np.cos((x - y) / w * 5))[..., None])[: tex.shape[0], : tex.shape[1]]
    _paint(tex, mask, metal)
    b = max(2, round(w * 0.05))
    face = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * b + 1, 2 * b + 1)))
    enamel = render._random_colour(rng, 0, 256)
    _paint(tex, face, enamel)
    tex[..., :3] = np.clip(tex[..., :3] * (1 + 0.3 * _relief(mask, max(1.0, b / 2), -2.3))[..., None], 0, tex[..., 3:])
    s.print_mark(tex, (cx, cy), u, s.pick({"enamel": 4, "foil": 1}), enamel)
    return _Item(tex, (cx, cy), u, 0.9, "garment")


def _phone_case(s: _Shot) -> _Item:
    """The back of a phone case: rounded corners, a camera cut-out, the mark in the middle."""
    rng = s.rng
    wr = rng.uniform(1.7, 2.3)
    u = s.fit(wr * 2.05)
    w = u * wr
    h = w * rng.uniform(1.95, 2.1)
    tex = _canvas(h, w)
    colour = s.colour if rng.random() < 0.6 else ((20, 20, 22), (230, 228, 224), (190, 196, 204))[int(rng.integers(3))]
    outline = _rounded(0, 0, w, h, w * 0.16)
    _paint(tex, _poly(*tex.shape[:2], outline), _material(rng, "plastic", *tex.shape[:2], colour))
    bump = w * rng.uniform(0.36, 0.46)
    m, r = w * 0.07, bump * 0.22
    _paint(tex, _poly(*tex.shape[:2], _rounded(m, m, m + bump, m + bump, bump * 0.25)), (32, 32, 36))
    for fx, fy in ((0.3, 0.3), (0.3, 0.72), (0.72, 0.5)):
        lx, ly = m + bump * fx, m + bump * fy
        _paint(tex, _poly(*tex.shape[:2], _ellipse(lx, ly, r, r)), (70, 72, 80))
        _paint(tex, _poly(*tex.shape[:2], _ellipse(lx, ly, r * 0.65, r * 0.65)), (8, 8, 12))
    centre = (w / 2, h * rng.uniform(0.48, 0.56))
    s.print_mark(tex, centre, u, s.pick({"flat": 3, "foil": 1.5, "deboss": 1.5, "knockout": 1}), colour)
    return _Item(tex, centre, u, 0.8, "table")


def _poster(s: _Shot) -> _Item:
    """A poster on a wall: a white margin or a frame, a coloured field, the mark big, a headline below."""
    rng = s.rng
    wr = rng.uniform(2.0, 2.8)
    u = s.fit(wr * 1.45)
    w = u * wr
    h = w * rng.uniform(1.3, 1.45)
    tex = _canvas(h, w)
    framed = rng.random() < 0.4
    frame = ((20, 20, 20), (150, 110, 70), (235, 235, 232))[int(rng.integers(3))] if framed else _WHITE
    _paint(tex, _poly(*tex.shape[:2], np.array([(0, 0), (w, 0), (w, h), (0, h)])),
           _material(rng, "wood" if framed and frame == (150, 110, 70) else "paper", *tex.shape[:2], frame))
    mg = w * rng.uniform(0.05, 0.09)
    field = render._random_colour(rng, 0, 256)
    inner = _poly(*tex.shape[:2], np.array([(mg, mg), (w - mg, mg), (w - mg, h - mg), (mg, h - mg)]))
    grad = _material(rng, "paper", *tex.shape[:2], field) * np.linspace(1.0, rng.uniform(0.7, 1.2), tex.shape[0],
                                                                         dtype=np.float32)[:, None, None]
    _paint(tex, inner, np.clip(grad, 0, 1))
    centre = (w / 2, h * rng.uniform(0.35, 0.45))
    s.print_mark(tex, centre, u, s.pick({"flat": 3, "halftone": 2, "knockout": 1}), field)
    ink = _contrasting(field)
    _bars(tex, w * 0.18, centre[1] + u * 0.7, w * 0.82, h - mg * 1.5, rng, ink, int(rng.integers(2, 4)))
    if not framed and rng.random() < 0.6:  # tape on the corners
        tape = (np.asarray((235, 225, 190), np.float32) / 255) * 0.9
        for tx, ty in ((0, 0), (w, 0), (0, h), (w, h)):
            _paint(tex, _poly(*tex.shape[:2], _rounded(tx - w * 0.06, ty - w * 0.025, tx + w * 0.06, ty + w * 0.025, 1))
                   * 0.75, np.broadcast_to(tape, tex.shape[:2] + (3,)))
    return _Item(tex, centre, u, 0.45, "wall")


def _shipping_label(s: _Shot) -> _Item:
    """A box top with packing tape and a shipping label; the mark on the label or printed on the board."""
    rng = s.rng
    wr, hr = rng.uniform(4.2, 5.5), rng.uniform(0.7, 0.95)
    u = s.fit(wr)
    w, h = u * wr, u * wr * hr
    tex = _canvas(h, w)
    board = ((190, 150, 105), (205, 170, 125), (235, 232, 225))[int(rng.integers(3))]
    _paint(tex, _poly(*tex.shape[:2], np.array([(0, 0), (w, 0), (w, h), (0, h)])),
           _material(rng, "cardboard", *tex.shape[:2], board))
    seam = h * rng.uniform(0.45, 0.55)
    tex[int(seam) : int(seam) + 2, :, :3] *= 0.6  # the flaps meet under the tape
    tape = np.asarray((200, 165, 110) if rng.random() < 0.5 else (225, 222, 214), np.float32) / 255
    tband = _poly(*tex.shape[:2], np.array([(0, seam - u * 0.35), (w, seam - u * 0.35), (w, seam + u * 0.35),
                                             (0, seam + u * 0.35)]))
    _paint(tex, tband * 0.45, np.broadcast_to(tape, tex.shape[:2] + (3,)))
    lw, lh = u * rng.uniform(2.0, 2.4), u * rng.uniform(2.5, 3.0)
    lx, ly = w * rng.uniform(0.45, 0.55) - lw / 2 + u * 0.8, h / 2 - lh / 2
    _shadow_under(tex, (label := _poly(*tex.shape[:2], np.array([(lx, ly), (lx + lw, ly), (lx + lw, ly + lh),
                                                                  (lx, ly + lh)]))), 1.5, 0.3, 1, 2)
    _paint(tex, label, _WHITE)
    on_label = rng.random() < 0.65
    _bars(tex, lx + lw * 0.08, ly + lh * (0.45 if on_label else 0.1), lx + lw * 0.92, ly + lh * 0.72, rng, _BLACK, 5)
    bars = np.zeros(tex.shape[:2], np.float32)
    bx = lx + lw * 0.1
    while bx < lx + lw * 0.9:  # a barcode
        bw = rng.choice([1.0, 1.0, 2.0, 3.0]) * max(0.7, u / 60)
        bars[int(ly + lh * 0.78) : int(ly + lh * 0.93), int(bx) : int(bx + bw)] = 1
        bx += bw + rng.choice([1.0, 2.0]) * max(0.7, u / 60)
    _paint(tex, bars, _BLACK)
    if on_label:
        side = round(u * 0.9)
        centre = (lx + lw * 0.1 + side / 2, ly + lh * 0.06 + side / 2)
        s.print_mark(tex, centre, side, s.pick({"flat": 3, "halftone": 1}), _WHITE, ink=_BLACK)
        return _Item(tex, centre, side, 0.4, "floor")
    centre = (lx - u * 1.0, seam - u * 0.9)
    centre = (max(centre[0], u * 0.7), max(centre[1], u * 0.7))
    s.print_mark(tex, centre, u, s.pick({"flat": 3, "knockout": 1.5, "halftone": 1}), board)
    return _Item(tex, centre, u, 0.4, "floor")


KINDS: dict[str, Callable[[_Shot], _Item]] = {
    "hang_tag": _hang_tag,
    "sticker": _sticker,
    "shopping_bag": _shopping_bag,
    "shoebox": _shoebox,
    "card": _card,
    "patch": _patch,
    "enamel_pin": _enamel_pin,
    "phone_case": _phone_case,
    "poster": _poster,
    "shipping_label": _shipping_label,
}


def _mini_sticker(s: _Shot) -> _Item:
    """A small round or square sticker with the mark: the second copy of the mark in some photos."""
    rng, u = s.rng, s.u
    n = u * rng.uniform(1.35, 1.6)
    tex = _canvas(n + 2, n + 2)
    stock = _WHITE if rng.random() < 0.6 else render._random_colour(rng, 0, 256)
    c = 1 + n / 2
    shape = _ellipse(c, c, n / 2, n / 2) if rng.random() < 0.5 else _rounded(1, 1, 1 + n, 1 + n, n * 0.18)
    _paint(tex, _poly(*tex.shape[:2], shape), _material(rng, "paper", *tex.shape[:2], stock))
    s.print_mark(tex, (c, c), u, "flat", stock)
    return _Item(tex, (c, c), u, 0.6, "table")


# ----------------------------------------------------------------------------------------------
# Pose, homography and the ground
# ----------------------------------------------------------------------------------------------


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The item plane's orientation: turned about the vertical axis, tipped about the horizontal one, then rolled."""
    cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll),
                              math.sin(roll))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _homography(anchor: tuple[float, float], rotation: np.ndarray, focal: float, scale: float,
                centre: tuple[float, float]) -> np.ndarray:
    """The 3x3 map from texture texels to photo pixels of a flat item seen by a pinhole camera.

    The texture lies in a plane through ``anchor``, turned by ``rotation``, at the distance where one texel at the
    anchor spans ``scale`` pixels; a camera of focal length ``focal`` (pixels) sees the anchor at ``centre``.
    """
    depth = focal / scale
    k = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1.0]])
    plane = np.column_stack([rotation[:, 0], rotation[:, 1], [0.0, 0.0, depth]])
    shift = np.array([[1.0, 0, -anchor[0]], [0, 1, -anchor[1]], [0, 0, 1]])
    h = k @ plane @ shift
    return h / h[2, 2]


def _pose(rng: np.random.Generator, item: _Item, focal: float, scale: float, studio: bool) -> np.ndarray:
    """The item's orientation: mostly mild, sometimes strongly tilted, never so tilted that it leaves the view."""
    tilt = math.radians(rng.uniform(35, 62) if rng.random() < 0.25 else abs(rng.normal(0, 16)))
    direction = rng.uniform(0, 2 * math.pi)
    roll = math.radians(rng.normal(0, 14) if rng.random() < 0.88 else rng.uniform(-90, 90))
    if studio:
        tilt, roll = tilt * 0.15, roll * 0.2
    h, w = item.rgba.shape[:2]
    corners = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64) - item.anchor
    for _ in range(12):  # every corner stays well in front of the camera
        rot = _rotation(tilt * math.sin(direction), tilt * math.cos(direction), roll)
        if (focal / scale + corners @ rot[2, :2]).min() > 0.35 * focal / scale:
            break
        tilt *= 0.8
    return rot


def _ground(rng: np.random.Generator, ground: str, colour: RGB, n: int) -> np.ndarray:
    """A square texture of what the item lies on: cloth, a table top, a floor, a wall, or a real photo of a surface."""
    pool = render._photo_pool()
    use_photo, pick = rng.random() < 0.25 and ground != "garment", rng.random()
    if use_photo and pool:
        photo = pool[int(rng.integers(len(pool)))]
        side = int(min(photo.size) * rng.uniform(0.3, 0.7))
        x0, y0 = int(rng.integers(0, photo.width - side + 1)), int(rng.integers(0, photo.height - side + 1))
        return np.asarray(photo.crop((x0, y0, x0 + side, y0 + side)).resize((n, n)), np.float32) / 255
    vivid = render._random_colour(rng, 60, 240)
    grey, mix = sum(vivid) / 3, rng.uniform(0.2, 0.9)  # rooms are mostly muted: pull the colour towards grey
    tone: RGB = tuple(int(grey + (c - grey) * mix) for c in vivid)  # type: ignore[assignment]
    if ground == "garment":
        name, tone = ("fabric", "denim", "fabric")[int(pick * 3)], colour
        if name == "denim":
            tone = (int(40 + 0.2 * colour[0]), int(60 + 0.2 * colour[1]), int(100 + 0.3 * colour[2]))
    elif ground == "table":
        name = ("wood", "marble", "plastic", "fabric", "concrete")[int(pick * 5)]
    elif ground == "floor":
        name = ("wood", "carpet", "concrete", "wood")[int(pick * 4)]
    else:
        name = ("paint", "paint", "concrete", "cork")[int(pick * 4)]
        tone = (196, 160, 118) if name == "cork" else tone
    if name == "marble":
        tone = render._random_colour(rng, 200, 250)
    return _material(rng, name, n, n, tone)


def _backdrop(rng: np.random.Generator, n: int) -> np.ndarray:
    """What is behind and beyond the item: a defocused real photograph or a plain, unevenly lit room."""
    pool = render._photo_pool()
    if pool and rng.random() < 0.7:
        photo = pool[int(rng.integers(len(pool)))]
        side = int(min(photo.size) * rng.uniform(0.4, 1.0))
        x0, y0 = int(rng.integers(0, photo.width - side + 1)), int(rng.integers(0, photo.height - side + 1))
        crop = np.asarray(photo.crop((x0, y0, x0 + side, y0 + side)).resize((n, n)), np.float32) / 255
        return cv2.GaussianBlur(crop, (0, 0), n * rng.uniform(0.004, 0.02) + 0.5)
    vivid = _c(render._random_colour(rng, 80, 230))
    tone = vivid.mean() + (vivid - vivid.mean()) * rng.uniform(0.2, 0.8)
    return (tone * (0.75 + 0.35 * _noise(rng, n, n, 2))[..., None]).astype(np.float32)


def _studio_backdrop(rng: np.random.Generator, n: int) -> np.ndarray:
    """A seamless light sweep, brighter where the softbox points."""
    tone = _c(render._random_colour(rng, 225, 256))
    y = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, n, dtype=np.float32)[None, :]
    light = 1.02 - 0.08 * y - 0.05 * x**2 + 0.01 * _noise(rng, n, n, 3)
    return np.clip(tone * light[..., None], 0, 1)


def _lay_on_plane(rng: np.random.Generator, surface: np.ndarray, h: np.ndarray, item: _Item, scale: float,
                  far: np.ndarray) -> np.ndarray:
    """The surface texture tiled over the item's plane through ``h``, fading into ``far`` towards the horizon."""
    n = far.shape[0]
    ps = surface.shape[0]
    k = n / scale * rng.uniform(1.0, 1.8) / ps  # item texels per surface texel: it spans the frame and more
    ax, ay = item.anchor
    to_item = np.array([[k, 0, ax - k * ps / 2], [0, k, ay - k * ps / 2], [0, 0, 1.0]])
    plane = cv2.warpPerspective(surface, h @ to_item, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    inv = np.linalg.inv(h)
    coords = np.arange(n, dtype=np.float64)
    depth = inv[2, 0] * coords[None, :] + inv[2, 1] * coords[:, None] + inv[2, 2]  # 1/depth, up to a factor
    at = h @ [ax, ay, 1.0]  # where the anchor lands: in front of the camera by construction
    centre = inv[2] @ (at / at[2])
    fog = np.clip((0.4 - depth / centre) / 0.3, 0, 1).astype(np.float32)[..., None]
    return plane * (1 - fog) + far * fog


# ----------------------------------------------------------------------------------------------
# Things in front: fingers, price stickers, coins and pens; glare
# ----------------------------------------------------------------------------------------------


def _blend(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Paint ``colour`` (a colour or an image) over ``img`` through ``mask``, in place."""
    img[:] = img * (1 - mask[..., None]) + colour * mask[..., None]


def _thumb(rng: np.random.Generator, img: np.ndarray, quad: np.ndarray, size: int) -> None:
    """A thumb reaching in from the nearest frame edge over an edge of the item, with its nail and shadow."""
    n = img.shape[0]
    e, f = int(rng.integers(4)), rng.uniform(0.2, 0.8)
    short = min(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[1]))  # the item's narrower side
    width = float(np.clip(short * rng.uniform(0.2, 0.35), size * 0.06, size * 0.16))
    skin = np.asarray(_SKIN[int(rng.integers(len(_SKIN)))], np.float32) / 255 * rng.uniform(0.85, 1.1)
    shadow_dx, shadow_dy = rng.uniform(-0.4, 0.4, 2) * width
    tip = np.clip(quad[e] + f * (quad[(e + 1) % 4] - quad[e]), n * 0.1, n * 0.9)
    gaps = np.array([tip[0], n - tip[0], tip[1], n - tip[1]])
    side = int(np.argmin(gaps))
    base = tip.copy()
    base[side // 2] = -width if side % 2 == 0 else n + width
    axis = (tip - base) / max(1e-6, float(np.linalg.norm(tip - base)))
    tip = tip + axis * width * 0.3  # over the edge, onto the item
    mask = np.zeros((n, n), np.uint8)
    cv2.line(mask, tuple(np.round(base * 16).astype(int)), tuple(np.round(tip * 16).astype(int)), 255,
             max(2, round(width)), cv2.LINE_AA, shift=4)
    m = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 0.8)
    x = np.arange(n, dtype=np.float32)
    across = np.abs((x[None, :] - tip[0]) * axis[1] - (x[:, None] - tip[1]) * axis[0]) / (width / 2)
    shade = 0.72 + 0.35 * np.sqrt(np.clip(1 - across**2, 0, 1))
    shadow = cv2.warpAffine(m, np.float32([[1, 0, shadow_dx], [0, 1, shadow_dy]]), (n, n))
    img *= (1 - 0.35 * cv2.GaussianBlur(shadow, (0, 0), width * 0.3) * (1 - m))[..., None]
    _blend(img, m, np.clip(skin * shade[..., None], 0, 1))
    nail = np.zeros((n, n), np.uint8)
    centre = tip - axis * width * 0.38
    angle = math.degrees(math.atan2(axis[1], axis[0]))
    cv2.ellipse(nail, (round(centre[0] * 16), round(centre[1] * 16)),
                (round(width * 0.36 * 16), round(width * 0.3 * 16)), angle, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
    _blend(img, nail.astype(np.float32) / 255 * m, np.clip(skin * 1.15 + 0.08, 0, 1))


def _price_sticker(rng: np.random.Generator, img: np.ndarray, at: np.ndarray, size: int) -> None:
    """A price sticker stuck on the item."""
    text = ("$9.99", "$12", "SALE", "-30%", "$24.90", "NEW")[int(rng.integers(6))]
    colour = ((255, 255, 255), (250, 210, 40), (240, 120, 30), (220, 40, 40), (120, 200, 90))[int(rng.integers(5))]
    font = render._font(max(8, int(size * rng.uniform(0.045, 0.07))))
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, (bottom - top) // 2)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    sticker = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sticker)
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=pad if rng.random() < 0.5 else h // 2, fill=(*colour, 255))
    draw.text((pad - left, pad - top), text, font=font, fill=(*_contrasting(colour), 255))
    sticker = sticker.rotate(rng.uniform(-30, 30), Image.Resampling.BILINEAR, expand=True)
    arr = np.asarray(sticker, np.float32) / 255
    x0, y0 = int(at[0] - sticker.width / 2), int(at[1] - sticker.height / 2)
    n = img.shape[0]
    xs, ys = slice(max(0, x0), min(n, x0 + sticker.width)), slice(max(0, y0), min(n, y0 + sticker.height))
    if xs.start < xs.stop and ys.start < ys.stop:
        part = arr[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        _blend(img[ys, xs], part[..., 3], part[..., :3])


def _object(rng: np.random.Generator, img: np.ndarray, size: int) -> None:
    """A coin or a pen lying in the shot, partly over the item, with its shadow."""
    n = img.shape[0]
    coin, at = rng.random() < 0.5, rng.uniform(0.15, 0.85, 2) * n
    dark, light = (_c(c) for c in _METALS[int(rng.integers(3))])
    angle, colour = rng.uniform(0, math.pi), _c(render._random_colour(rng, 0, 256))
    radius, length = size * rng.uniform(0.05, 0.09), size * rng.uniform(0.5, 0.9)
    axis = np.array([math.cos(angle), math.sin(angle)])
    mask = np.zeros((n, n), np.uint8)
    if coin:
        cv2.circle(mask, tuple(np.round(at * 16).astype(int)), round(radius * 16), 255, -1, cv2.LINE_AA, shift=4)
    else:
        ends = [tuple(np.round((at + k * axis * length / 2) * 16).astype(int)) for k in (-1, 1)]
        cv2.line(mask, ends[0], ends[1], 255, max(2, round(size * 0.03)), cv2.LINE_AA, shift=4)
    m = mask.astype(np.float32) / 255
    shadow = cv2.GaussianBlur(cv2.warpAffine(m, np.float32([[1, 0, size * 0.015], [0, 1, size * 0.02]]), (n, n)),
                              (0, 0), size * 0.01 + 0.5)
    img *= (1 - 0.4 * shadow * (1 - m))[..., None]
    x = np.arange(n, dtype=np.float32)
    dx, dy = x[None, :] - at[0], x[:, None] - at[1]
    if coin:  # lit from the upper left, with a bright rim
        r = np.sqrt(dx**2 + dy**2) / radius
        t = np.clip(0.55 - 0.35 * (dx + dy) / (radius * 1.4) + 0.3 * (r > 0.85), 0, 1)
        face = dark + (light - dark) * t[..., None]
    else:  # a round barrel: bright along its top, dark along its underside
        across = (dx * axis[1] - dy * axis[0]) / max(1.0, size * 0.015)
        sheen = 0.35 * np.exp(-((across + 0.4) ** 2) * 8)
        face = colour * (0.6 + 0.4 * np.clip(1 - across**2, 0, 1))[..., None] + sheen[..., None]
    _blend(img, m, np.clip(face, 0, 1))


def _glare(rng: np.random.Generator, img: np.ndarray, alpha: np.ndarray, quad: np.ndarray, gloss: float) -> None:
    """A specular glare patch over part of the item: a soft, stretched ellipse that washes the colour out."""
    n = img.shape[0]
    f = rng.random(2)
    at = (quad[0] * (1 - f[0]) + quad[1] * f[0]) * (1 - f[1]) + (quad[3] * (1 - f[0]) + quad[2] * f[0]) * f[1]
    a, b, theta = n * rng.uniform(0.08, 0.3), n * rng.uniform(0.03, 0.12), rng.uniform(0, math.pi)
    strength = gloss * rng.uniform(0.5, 1.0)
    x = np.arange(n, dtype=np.float32)
    dx, dy = x[None, :] - at[0], x[:, None] - at[1]
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    glow = np.exp(-((u / a) ** 2 + (v / b) ** 2) * 1.5) * strength * alpha
    img[:] = img + (1 - img) * glow[..., None]


# ----------------------------------------------------------------------------------------------
# The phone camera
# ----------------------------------------------------------------------------------------------


def _blur(rng: np.random.Generator, img: np.ndarray, size: int, focus: np.ndarray, studio: bool) -> np.ndarray:
    """Missed focus (a disc) or hand shake (a line), over the whole frame or growing away from a sharp band."""
    mode = 0 if studio else int(rng.choice(4, p=[0.45, 0.18, 0.15, 0.22]))
    radius, length = rng.uniform(1.0, 3.2) * size / 320, rng.uniform(3, 10) * size / 320
    angle, band, ramp = rng.uniform(0, math.pi), rng.uniform(0.05, 0.2) * size, rng.uniform(0.1, 0.35) * size
    if mode == 0:
        return img
    if mode == 2:
        k = max(3, int(length) | 1)
        kernel = np.zeros((k, k), np.float32)
        d = np.array([math.cos(angle), math.sin(angle)]) * (k - 1) / 2
        cv2.line(kernel, tuple(np.round((k // 2 - d) * 16).astype(int)), tuple(np.round((k // 2 + d) * 16).astype(int)),
                 1.0, 1, cv2.LINE_AA, shift=4)
    else:
        r = max(1, round(radius))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(np.float32)
    blurred = cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    if mode != 3:
        return blurred
    n = img.shape[0]  # depth of field: sharp along a line through the item, softer away from it
    x = np.arange(n, dtype=np.float32)
    dist = np.abs((x[None, :] - focus[0]) * math.cos(angle) + (x[:, None] - focus[1]) * math.sin(angle))
    w = np.clip((dist - band) / ramp, 0, 1)[..., None]
    return img * (1 - w) + blurred * w


def _lens(rng: np.random.Generator, img: np.ndarray, size: int, studio: bool) -> np.ndarray:
    """Barrel or pincushion distortion and lateral chromatic aberration, cropping the scene to ``size``."""
    k1 = rng.uniform(-0.06, 0.1) * (0.15 if studio else 1.0)
    ca = rng.uniform(0.0, 0.005) * (0.0 if studio else 1.0)
    c = (img.shape[0] - 1) / 2
    a = np.arange(size, dtype=np.float32) - (size - 1) / 2
    x, y = np.broadcast_to(a[None, :], (size, size)), np.broadcast_to(a[:, None], (size, size))
    factor = 1 + k1 * (x**2 + y**2) / (size**2 / 2)
    out = np.empty((size, size, 3), np.float32)
    for ch, spread in enumerate((1 + ca, 1.0, 1 - ca)):
        f = factor * spread
        out[..., ch] = cv2.remap(img[..., ch], (c + x * f).astype(np.float32), (c + y * f).astype(np.float32),
                                 cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def _sensor(rng: np.random.Generator, img: np.ndarray, studio: bool) -> np.ndarray:
    """Vignetting, a white-balance cast, exposure and gamma, lost resolution, shot and read noise, sharpening."""
    size = img.shape[0]
    a = np.linspace(-1, 1, size, dtype=np.float32)
    r2 = a[None, :] ** 2 + a[:, None] ** 2
    img = img * (1 - rng.uniform(0.0, 0.12 if studio else 0.45) * r2 / 2)[..., None]
    cast = 1 + rng.normal(0, 0.025 if studio else 0.07, 3).astype(np.float32)
    img = np.clip(img * cast * rng.uniform(0.95, 1.08) if studio else img * cast * rng.uniform(0.7, 1.3), 0, 1)
    img = img ** rng.uniform(0.85, 1.2)
    if not studio and rng.random() < 0.4:  # a small sensor crop, upscaled by the phone or the marketplace
        small = max(16, int(size * rng.uniform(0.4, 0.75)))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_CUBIC)
    shot, read = (rng.uniform(0.0002, 0.001), rng.uniform(0.002, 0.006)) if studio else \
        (rng.uniform(0.0005, 0.006), rng.uniform(0.003, 0.02))
    luma, chroma = rng.standard_normal((size, size, 1), np.float32), rng.standard_normal((size, size, 3), np.float32)
    sigma = np.sqrt(shot * np.clip(img, 0, 1) + read**2)
    img = img + sigma * (0.75 * luma + 0.5 * cv2.GaussianBlur(chroma, (0, 0), 0.8) * 1.6)
    amount = rng.uniform(0.0, 0.8)
    if amount > 0.3:  # the phone's sharpening
        img = img + amount * (img - cv2.GaussianBlur(img, (0, 0), 1.0))
    return np.clip(img, 0, 1)


def _caption(img: Image.Image, text: str, rng: np.random.Generator) -> None:
    """Text the seller typed over the photo in a phone app: a translucent pill or outlined letters, in place."""
    size = img.width
    font = render._font(max(9, int(size * rng.uniform(0.06, 0.09))))
    draw = ImageDraw.Draw(img, "RGBA")
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    x = int(rng.uniform(0.04, 0.96) * max(1, size - tw)) if rng.random() < 0.5 else (size - tw) // 2
    y = int(size * (rng.uniform(0.04, 0.15) if rng.random() < 0.5 else rng.uniform(0.78, 0.9)))
    if rng.random() < 0.5:
        pad = max(3, th // 2)
        draw.rounded_rectangle((x - pad, y - pad, x + tw + pad, y + th + pad), radius=(th + 2 * pad) // 2,
                               fill=(0, 0, 0, int(rng.integers(110, 190))))
        draw.text((x - left, y - top), text, font=font, fill=(255, 255, 255, 255))
    else:
        fill = ((255, 255, 255), (255, 230, 0), (255, 80, 80))[int(rng.integers(3))]
        draw.text((x - left, y - top), text, font=font, fill=(*fill, 255), stroke_width=max(1, size // 110),
                  stroke_fill=(0, 0, 0, 255))


# ----------------------------------------------------------------------------------------------
# Composing
# ----------------------------------------------------------------------------------------------


def _place(img: np.ndarray, item: _Item, h: np.ndarray, shadow: tuple[float, float, float, float]) -> np.ndarray:
    """Warp the item into the photo through ``h`` over its (dx, dy, blur, strength) shadow; returns its coverage."""
    n = img.shape[0]
    warped = cv2.warpPerspective(item.rgba, h, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = np.clip(warped[..., 3], 0, 1)
    dx, dy, blur, strength = shadow
    if strength > 0:
        cast = cv2.GaussianBlur(cv2.warpAffine(alpha, np.float32([[1, 0, dx], [0, 1, dy]]), (n, n)), (0, 0), blur)
        img *= (1 - strength * cast)[..., None]
    img[:] = img * (1 - alpha[..., None]) + np.clip(warped[..., :3], 0, 1)
    return alpha


def _quad(h: np.ndarray, item: _Item) -> np.ndarray:
    """The photo positions of the item texture's four corners."""
    th, tw = item.rgba.shape[:2]
    pts = cv2.perspectiveTransform(np.array([[(0, 0), (tw, 0), (tw, th), (0, th)]], np.float64), h)
    return pts[0]


def kind_of(seed: int) -> str:
    """The item :func:`compose_snapshot_photo` draws for a photo's seed (its first random choice)."""
    return render.first_choice(KINDS, seed)


def compose_snapshot_photo(
    logo_rgba: Image.Image | None,
    rng: np.random.Generator,
    size: int = 320,
    *,
    product_color: RGB | None = None,
    caption: str | None = None,
    studio: bool = False,
    kind: str | None = None,
) -> Image.Image:
    """Take a phone snapshot of one of :data:`KINDS` carrying the mark, JPEG-compressed.

    Args:
        logo_rgba: The logo (an RGBA render); None for an unbranded item (a plain mark or none).
        rng: Source of every random choice; its first draw picks the item (:func:`kind_of`).
        size: Side of the square output in pixels.
        product_color: Colour of the product (a garment, a case, a bottle); None picks one.
        caption: Text overlaid on the photo, or None.
        studio: Official-looking shot: a plain light backdrop, a frontal camera, soft light, little noise.
        kind: Draw this item instead of the one the first draw picks (the draw is still made).

    Returns:
        The RGB photo.
    """
    drawn = render.first_choice(KINDS, rng)
    kind = drawn if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    mark = _Mark(logo_rgba, np.random.default_rng(int(rng.integers(2**63))))  # the only draws a mark makes
    colour = product_color if product_color is not None else render._random_colour(rng)
    spread = (math.log(0.3), 0.25, 0.15) if studio else (math.log(0.2), 0.38, 0.08)
    frac = float(np.clip(math.exp(rng.normal(spread[0], spread[1])), spread[2], 0.6))  # mark side / photo side
    u = int(np.clip(round(frac * size * rng.uniform(1.05, 1.35)), 16, 360))
    item = KINDS[kind](_Shot(rng, mark, u, colour))

    n = int(math.ceil(size * _MARGIN)) + 2
    scale = frac * size / item.side
    focal = n * (rng.uniform(1.6, 2.6) if studio else rng.uniform(0.6, 1.4))
    rot = _pose(rng, item, focal, scale, studio)
    reach = max(0.0, 0.5 - frac * 0.6) * size * 0.5  # sellers mostly centre what they shoot
    centre = n / 2 + rng.uniform(-reach, reach, 2)
    h = _homography(item.anchor, rot, focal, scale, (float(centre[0]), float(centre[1])))

    held = rng.random() < 0.25
    if studio:
        img = _studio_backdrop(rng, n)
    elif held:  # held up in front of a room: no plane behind it
        img = _backdrop(rng, n)
    else:
        img = _lay_on_plane(rng, _ground(rng, item.ground, colour, 320), h, item, scale, _backdrop(rng, n))
    shadow = (rng.uniform(-0.02, 0.02) * size, rng.uniform(0.005, 0.03) * size, rng.uniform(0.005, 0.02) * size + 0.5,
              rng.uniform(0.15, 0.45) * (0.5 if studio else 0.0 if held else 1.0))
    alpha = _place(img, item, h, shadow)
    quad = _quad(h, item)

    if rng.random() < (0.0 if studio else 0.2):  # a second, smaller copy of the mark: a sticker beside the item
        small = frac * rng.uniform(0.35, 0.65)
        extra = _mini_sticker(_Shot(rng, mark, max(12, round(small * size * 1.2)), colour))
        at = rng.uniform(0.2, 0.8, 2) * n
        rot2 = rot @ _rotation(0, 0, rng.uniform(-0.8, 0.8))
        h2 = _homography(extra.anchor, rot2, focal, small * size / extra.side, (float(at[0]), float(at[1])))
        _place(img, extra, h2, (shadow[0] * 0.5, shadow[1] * 0.5, shadow[2] * 0.5, shadow[3]))

    lx, ly = rng.uniform(-0.35, 0.35, 2)  # light falls off across the scene
    ramp = np.linspace(-1, 1, n, dtype=np.float32)
    img *= (1 + lx * ramp[None, :] + ly * ramp[:, None])[..., None].clip(0.5, 1.4)
    if rng.random() < item.gloss * (0.4 if studio else 0.7):
        _glare(rng, img, alpha, quad, item.gloss)
    if not studio:
        if rng.random() < (0.5 if held else 0.15):  # a held item usually shows the thumb holding it
            _thumb(rng, img, quad, size)
        if rng.random() < 0.12:
            f = rng.uniform(-0.6, 0.6, 2) * item.side
            _price_sticker(rng, img, cv2.perspectiveTransform(
                np.array([[(item.anchor[0] + f[0], item.anchor[1] + f[1])]], np.float64), h)[0, 0], size)
        if rng.random() < 0.12:
            _object(rng, img, size)

    img = _blur(rng, np.clip(img, 0, 1), size, centre, studio)
    img = _sensor(rng, _lens(rng, img, size, studio), studio)
    photo = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
    if caption:
        _caption(photo, caption, rng)
    return render._jpeg_roundtrip(photo, int(rng.integers(80, 96)) if studio else int(rng.integers(40, 92)))
