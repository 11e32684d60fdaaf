"""A second, independently written photo composer: the same listings shot another way.

:func:`training.render.compose_listing_photo` prints a logo, recoloured and mildly distorted, on a PIL mock-up of a
product. Every model here was trained and tuned on its photos, so numbers measured on them can flatter a model that
learnt the renderer's habits. This module shows the same marks the way other sellers' photos do, with compositions
the first renderer never makes:

- ``label``: a sewn or printed label (satin, paper, rubber) carrying a small logo, on a fabric surface;
- ``emboss``: tone-on-tone, the mark pressed into leather or plastic (a brightness step with a bevel, no ink);
- ``pattern``: a monogram, the mark tiled small across the product in one colour;
- ``closeup``: the mark filling most of the frame, wrapped round a curved surface and cut by the frame edge;
- ``flatlay``: a top-down table of several items, the mark small on one of them;
- ``lifestyle``: a real photograph, sharp, with the item held small somewhere off centre;
- ``screen``: a photo of a screen or a print (keystone, moiré, glare).

Inks also differ (metallic gradients, outlines only, a colour two shades off the surface), and every photo goes
through a camera model the first renderer lacks (white balance, exposure, sensor noise, vignetting, motion blur,
lost resolution) before the JPEG. Photos without a logo get the same scenes with no mark (blank labels, monograms of
plain shapes), so a scene never gives a logo away. Every random choice comes from the generator passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from training import render

__all__ = ["SCENES", "compose_scene_photo", "scene_of"]

RGB = tuple[int, int, int]
_Scene = Callable[["_Shot"], Image.Image]


# ----------------------------------------------------------------------------------------------
# Marks and inks
# ----------------------------------------------------------------------------------------------


def _mark(logo: Image.Image | None, width: int) -> Image.Image | None:
    """The logo's coverage as an ``L`` mask cropped to its ink, ``width`` pixels wide (None without a logo)."""
    if logo is None:
        return None
    alpha = logo.getchannel("A")
    box = alpha.getbbox()
    if box is None:
        return None
    alpha = alpha.crop(box)
    w, h = alpha.size
    scale = max(2, width) / max(w, 1)
    return alpha.resize((max(2, round(w * scale)), max(2, round(h * scale))), Image.Resampling.LANCZOS)


def _plain_mark(rng: np.random.Generator, width: int) -> Image.Image:
    """A mark that is no brand's: a circle, a ring, a star, a diamond or a rounded square."""
    side = max(4, width)
    mask = Image.new("L", (side * 2, side * 2), 0)
    draw = ImageDraw.Draw(mask)
    kind = int(rng.integers(5))
    s = side * 2
    if kind == 0:
        draw.ellipse((0, 0, s - 1, s - 1), fill=255)
    elif kind == 1:
        draw.ellipse((0, 0, s - 1, s - 1), fill=255)
        draw.ellipse((s // 4, s // 4, 3 * s // 4, 3 * s // 4), fill=0)
    elif kind == 2:
        pts = [(s / 2 + (s / 2 if k % 2 == 0 else s / 5) * math.cos(math.pi * k / 5 - math.pi / 2),
                s / 2 + (s / 2 if k % 2 == 0 else s / 5) * math.sin(math.pi * k / 5 - math.pi / 2)) for k in range(10)]
        draw.polygon(pts, fill=255)
    elif kind == 3:
        draw.polygon([(s / 2, 0), (s - 1, s / 2), (s / 2, s - 1), (0, s / 2)], fill=255)
    else:
        draw.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 5, fill=255)
    return mask.resize((side, side), Image.Resampling.LANCZOS)


def _ink(rng: np.random.Generator, mask: Image.Image, surface: RGB, brand: RGB | None) -> Image.Image:
    """Colour a mask into an RGBA print: brand colour, black/white, metallic gradient, outline only or tone-on-tone."""
    w, h = mask.size
    choice = int(rng.choice(5, p=[0.3, 0.25, 0.2, 0.1, 0.15]))
    if choice == 0 and brand is not None and render._contrast(brand, surface) >= 1.5:
        fill = np.broadcast_to(np.asarray(brand, np.float32), (h, w, 3))
    elif choice == 2:  # gold, silver or copper foil: a vertical gradient with a bright band
        base = np.asarray(((212, 175, 55), (192, 192, 198), (184, 115, 51))[int(rng.integers(3))], np.float32)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        band = np.exp(-((t - rng.uniform(0.2, 0.8)) ** 2) / 0.02)
        fill = np.clip(base * (0.7 + 0.3 * t) + 90 * band, 0, 255) * np.ones((1, w, 1), np.float32)
    elif choice == 4:  # two shades off the surface: a low-contrast print
        factor = rng.choice([rng.uniform(0.45, 0.7), rng.uniform(1.35, 1.8)])
        fill = np.broadcast_to(np.clip(np.asarray(surface, np.float32) * factor + (20 if factor > 1 else 0), 0, 255),
                               (h, w, 3))
    else:
        dark = render._contrast((17, 17, 17), surface) > render._contrast((250, 250, 250), surface)
        fill = np.broadcast_to(np.asarray((17, 17, 17) if dark else (250, 250, 250), np.float32), (h, w, 3))
    alpha = np.asarray(mask, np.float32)
    if choice == 3:  # outline only: the mask less its eroded self
        k = max(3, (min(w, h) // 25) | 1)
        inner = np.asarray(mask.filter(ImageFilter.MinFilter(k)), np.float32)
        alpha = np.clip(alpha - inner, 0, 255)
        dark = render._contrast((17, 17, 17), surface) > render._contrast((250, 250, 250), surface)
        fill = np.broadcast_to(np.asarray((17, 17, 17) if dark else (250, 250, 250), np.float32), (h, w, 3))
    rgba = np.dstack([np.clip(fill, 0, 255), alpha]).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def _tilt(img: Image.Image, rng: np.random.Generator, jitter: float, angle: float) -> Image.Image:
    """Perspective jitter (a fraction of the side) and a rotation, growing the canvas to keep every corner."""
    pad = max(2, round(0.15 * max(img.size)))
    img = ImageOps.expand(img, border=pad, fill=(0, 0, 0, 0) if img.mode == "RGBA" else 0)
    w, h = img.size
    j = jitter * min(w, h)
    corners = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    moved = [(x + rng.uniform(-j, j), y + rng.uniform(-j, j)) for x, y in corners]
    img = img.transform((w, h), Image.Transform.PERSPECTIVE, render._perspective_coeffs(corners, moved),
                        Image.Resampling.BICUBIC)
    return img.rotate(rng.uniform(-angle, angle), Image.Resampling.BICUBIC, expand=True)


def _wrap(img: Image.Image, strength: float) -> Image.Image:
    """Wrap an image round a vertical cylinder: columns squeezed towards both edges and darkened there."""
    arr = np.asarray(img)
    h, w = arr.shape[:2]
    u = np.linspace(-1, 1, w)
    src = np.arcsin(np.clip(u * math.sin(strength), -1, 1)) / strength  # where each output column samples from
    cols = np.clip(((src + 1) / 2 * (w - 1)).round().astype(int), 0, w - 1)
    out = arr[:, cols].astype(np.float32)
    light = (0.55 + 0.45 * np.cos(u * strength * 1.2))[None, :, None]
    if out.shape[2] == 4:
        out[..., :3] *= light
    else:
        out *= light
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), img.mode)


def _place(base: Image.Image, print_: Image.Image, centre: tuple[float, float]) -> tuple[int, int, int, int]:
    """Alpha-paste an RGBA print centred on ``centre``, in place; returns its box."""
    x, y = round(centre[0] - print_.width / 2), round(centre[1] - print_.height / 2)
    base.paste(print_.convert("RGB"), (x, y), print_.getchannel("A"))
    return x, y, x + print_.width, y + print_.height


# ----------------------------------------------------------------------------------------------
# Surfaces
# ----------------------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1] of shape (h, w)."""
    w, h = size
    grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC), np.float32) / 255.0


def _surface(rng: np.random.Generator, size: tuple[int, int], colour: RGB, material: str | None = None) -> Image.Image:
    """A material in a colour: knit, denim twill, pebbled leather, matte plastic or paper."""
    w, h = size
    material = material or ("knit", "twill", "leather", "plastic", "paper")[int(rng.integers(5))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if material == "knit":
        period = rng.uniform(3.0, 6.0)
        t = 0.5 + 0.18 * np.sin(xx * 2 * math.pi / period) * np.sign(np.sin(yy * math.pi / period))
    elif material == "twill":
        period = rng.uniform(3.0, 5.0)
        t = 0.5 + 0.2 * np.sin((xx + yy) * 2 * math.pi / period) + 0.05 * rng.standard_normal((h, w))
    elif material == "leather":
        cells = Image.fromarray((rng.random((h // 3 + 1, w // 3 + 1)) * 255).astype(np.uint8))
        grain = np.asarray(cells.resize((w, h), Image.Resampling.BICUBIC), np.float32) / 255.0
        t = 0.45 + 0.3 * grain
    elif material == "plastic":
        t = 0.5 + 0.06 * rng.standard_normal((h, w))
    else:
        t = 0.55 + 0.04 * rng.standard_normal((h, w)) + 0.1 * (_noise(rng, size, 6) - 0.5)
    t = t + 0.25 * (_noise(rng, size, 4) - 0.5)  # folds and uneven light
    base = np.asarray(colour, np.float32)
    out = base * (0.55 + 0.9 * t[..., None])
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _backdrop(rng: np.random.Generator, size: int, studio: bool) -> Image.Image:
    """A sharp crop of a real photograph, a table top or a plain sweep."""
    if studio:
        grey = int(rng.integers(215, 250))
        return _surface(rng, (size, size), (grey, grey, grey - int(rng.integers(0, 12))), "paper")
    pool = render._photo_pool()
    if pool and rng.random() < 0.6:
        photo = pool[int(rng.integers(len(pool)))]
        w, h = photo.size
        side = int(min(w, h) * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BICUBIC)
        return ImageOps.mirror(crop) if rng.random() < 0.5 else crop
    return _surface(rng, (size, size), render._random_colour(rng, 60, 230), ("twill", "leather", "paper")[int(rng.integers(3))])


# ----------------------------------------------------------------------------------------------
# Scenes
# ----------------------------------------------------------------------------------------------


class _Shot:
    """What every scene needs: the logo (or None), the product colour, the brand colour, the size and the rng."""

    def __init__(self, logo: Image.Image | None, rng: np.random.Generator, size: int, colour: RGB,
                 studio: bool) -> None:
        self.logo, self.rng, self.size, self.colour, self.studio = logo, rng, size, colour, studio
        # Draws that only a photo with (or only one without) a logo makes come from here, so that the same seed
        # gives the same scene either way and the mark is the only difference.
        self.mrng = np.random.default_rng(int(rng.integers(2**63)))
        self.brand: RGB | None = None
        if logo is not None:
            arr = np.asarray(logo)
            opaque = arr[..., 3] > 128
            if opaque.any():
                self.brand = tuple(int(v) for v in np.median(arr[opaque][:, :3], axis=0))  # type: ignore[assignment]

    def mark(self, width: int) -> Image.Image | None:
        """The logo's mask at a width, or None for a logo-less photo."""
        return _mark(self.logo, width)


def _scene_label(s: _Shot) -> Image.Image:
    """A label sewn or stuck on the product, the logo printed small on it."""
    rng, size = s.rng, s.size
    photo = _surface(rng, (size, size), s.colour, ("knit", "twill", "leather")[int(rng.integers(3))])
    lw, lh = int(size * rng.uniform(0.35, 0.6)), int(size * rng.uniform(0.2, 0.4))
    stock = ((245, 242, 230), (250, 250, 250), (24, 24, 26), (180, 30, 40), (30, 50, 110))[int(rng.integers(5))]
    label = _surface(rng, (lw, lh), stock, ("plastic", "paper", "twill")[int(rng.integers(3))]).convert("RGBA")
    draw = ImageDraw.Draw(label)
    inset = max(2, lh // 12)
    stitch = render._shade(stock, 0.6) if sum(stock) > 380 else render._shade(stock, 1.6)
    for x in range(inset, lw - inset, max(3, lw // 30)):  # dashed stitching along the long edges
        draw.line([(x, inset), (x + max(1, lw // 60), inset)], fill=stitch, width=1)
        draw.line([(x, lh - inset), (x + max(1, lw // 60), lh - inset)], fill=stitch, width=1)
    mark = s.mark(int(min(lw * rng.uniform(0.45, 0.8), lh * 1.6)))
    if mark is not None:
        if mark.height > lh * 0.75:
            mark = mark.resize((max(2, round(mark.width * lh * 0.75 / mark.height)), round(lh * 0.75)))
        printed = _ink(s.mrng, mark, stock, s.brand)
        label.alpha_composite(printed, ((lw - printed.width) // 2, (lh - printed.height) // 2))
    else:  # blank labels carry care-symbol-like shapes, so a label alone never means a logo
        for k in range(int(s.mrng.integers(1, 4))):
            shape = _plain_mark(s.mrng, lh // 4)
            label.paste(stitch, (inset * 2 + k * lh // 3, lh // 2 - lh // 8), shape)
    label = _tilt(label, rng, 0.06, 20)
    centre = (size * rng.uniform(0.35, 0.65), size * rng.uniform(0.35, 0.65))
    shadow = Image.new("RGBA", label.size, (0, 0, 0, 0))
    shadow.putalpha(label.getchannel("A").point(lambda a: a // 3).filter(ImageFilter.GaussianBlur(3)))
    _place(photo, shadow, (centre[0] + 3, centre[1] + 4))
    _place(photo, label, centre)
    return photo


def _scene_emboss(s: _Shot) -> Image.Image:
    """The mark pressed into leather or plastic: no ink, a brightness step and a bevel."""
    rng, size = s.rng, s.size
    photo = _surface(rng, (size, size), s.colour, ("leather", "plastic")[int(rng.integers(2))])
    mark = s.mark(int(size * rng.uniform(0.3, 0.6))) or _plain_mark(s.mrng, int(size * s.mrng.uniform(0.15, 0.3)))
    mask = Image.new("L", (size, size), 0)
    mask.paste(mark, (int(size / 2 - mark.width / 2 + rng.uniform(-0.1, 0.1) * size),
                      int(size / 2 - mark.height / 2 + rng.uniform(-0.1, 0.1) * size)))
    mask = _tilt(mask, rng, 0.04, 12).resize((size, size), Image.Resampling.BILINEAR)
    m = np.asarray(mask, np.float32) / 255.0
    shift = max(1, size // 110)
    lit = np.roll(np.roll(m, -shift, 0), -shift, 1) - m  # the upper-left edge catches light
    base = np.asarray(photo, np.float32)
    depth = rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.3)
    out = base * (1.0 + depth * m[..., None]) + 70 * np.clip(lit, -1, 1)[..., None] * np.sign(depth)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _scene_pattern(s: _Shot) -> Image.Image:
    """A monogram: the mark tiled small in one colour across the product, on a diagonal grid."""
    rng, size = s.rng, s.size
    photo = _surface(rng, (size * 2, size * 2), s.colour, ("twill", "leather", "paper")[int(rng.integers(3))])
    step = int(size * rng.uniform(0.16, 0.26))
    mark = s.mark(int(step * rng.uniform(0.5, 0.7))) or _plain_mark(s.mrng, int(step * 0.4))
    ink = _ink(rng, mark, s.colour, s.brand)
    flower = _plain_mark(rng, max(4, step // 4))
    for row, y in enumerate(range(-step, size * 2 + step, step)):
        for col, x in enumerate(range(-step, size * 2 + step, step)):
            cx = x + (step // 2 if row % 2 else 0)
            if (row + col) % 2 == 0:
                photo.paste(ink.convert("RGB"), (cx - ink.width // 2, y - ink.height // 2), ink.getchannel("A"))
            else:
                photo.paste(ink.convert("RGB").resize(flower.size), (cx - flower.width // 2, y - flower.height // 2),
                            flower)
    photo = photo.rotate(rng.uniform(-35, 35), Image.Resampling.BICUBIC)
    c = size // 2
    return photo.crop((c, c, c + size, c + size))


def _scene_closeup(s: _Shot) -> Image.Image:
    """The mark filling most of the frame on a curved surface (mug, bottle, sleeve), cut by the frame edge."""
    rng, size = s.rng, s.size
    big = int(size * 1.4)
    photo = _surface(rng, (big, big), s.colour)
    mark = s.mark(int(size * rng.uniform(0.55, 0.95)))
    if mark is not None:
        _place(photo, _ink(s.mrng, mark, s.colour, s.brand), (big / 2, big / 2))
    else:  # a seam where the mark would be
        draw = ImageDraw.Draw(photo)
        draw.line([(big * 0.2, big * s.mrng.uniform(0.3, 0.7)), (big * 0.8, big * s.mrng.uniform(0.3, 0.7))],
                  fill=render._shade(s.colour, 0.6), width=max(2, size // 60))
    photo = _wrap(photo, rng.uniform(0.6, 1.3))
    x = int(rng.uniform(0.05, 0.35) * size)
    y = int(rng.uniform(0.05, 0.35) * size)
    return photo.crop((x, y, x + size, y + size))


def _item(rng: np.random.Generator, colour: RGB, w: int, h: int) -> Image.Image:
    """A flat item seen from above: a rounded box, a round badge or a folded garment block, as RGBA."""
    item = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    body = _surface(rng, (w, h), colour)
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if rng.random() < 0.3:
        draw.ellipse((0, 0, w - 1, h - 1), fill=255)
    else:
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=min(w, h) // int(rng.integers(4, 12)), fill=255)
    item.paste(body, (0, 0), mask)
    return item


def _scene_flatlay(s: _Shot) -> Image.Image:
    """Several items on a table seen from above; the mark small on one of them."""
    rng, size = s.rng, s.size
    photo = _backdrop(rng, size, s.studio)
    n = int(rng.integers(2, 5))
    slots = [(0.28, 0.28), (0.72, 0.3), (0.3, 0.72), (0.72, 0.72)]
    order = rng.permutation(len(slots))[:n]
    for k, slot in enumerate(order):
        colour = s.colour if k == 0 else render._random_colour(rng, 30, 240)
        w, h = int(size * rng.uniform(0.3, 0.42)), int(size * rng.uniform(0.3, 0.42))
        item = _item(rng, colour, w, h)
        if k == 0:
            mark = s.mark(int(w * rng.uniform(0.35, 0.6)))
            if mark is not None:
                printed = _ink(s.mrng, mark, colour, s.brand)
                item.alpha_composite(printed, ((w - printed.width) // 2, (h - printed.height) // 2))
        elif rng.random() < 0.5:  # other items carry plain marks or stripes
            shape = _plain_mark(rng, int(min(w, h) * 0.3))
            item.paste(render._random_colour(rng), ((w - shape.width) // 2, (h - shape.height) // 2), shape)
        item = item.rotate(rng.uniform(-30, 30), Image.Resampling.BICUBIC, expand=True)
        cx, cy = slots[slot]
        shadow = Image.new("RGBA", item.size, (0, 0, 0, 0))
        shadow.putalpha(item.getchannel("A").point(lambda a: a // 3).filter(ImageFilter.GaussianBlur(4)))
        centre = (cx * size + rng.uniform(-0.05, 0.05) * size, cy * size + rng.uniform(-0.05, 0.05) * size)
        _place(photo, shadow, (centre[0] + 4, centre[1] + 5))
        _place(photo, item, centre)
    return photo


def _scene_lifestyle(s: _Shot) -> Image.Image:
    """A real photograph, sharp, with the item held small somewhere off centre."""
    rng, size = s.rng, s.size
    photo = _backdrop(rng, size, s.studio)
    w, h = int(size * rng.uniform(0.25, 0.42)), int(size * rng.uniform(0.25, 0.42))
    item = _item(rng, s.colour, w, h)
    mark = s.mark(int(w * rng.uniform(0.5, 0.8)))
    if mark is not None:
        printed = _ink(s.mrng, mark, s.colour, s.brand)
        item.alpha_composite(printed, ((w - printed.width) // 2, (h - printed.height) // 2))
    item = _tilt(item, rng, 0.12, 35)
    centre = (size * rng.choice([rng.uniform(0.2, 0.35), rng.uniform(0.65, 0.8)]), size * rng.uniform(0.25, 0.75))
    _place(photo, item, centre)
    if rng.random() < 0.5:  # a hand or sleeve across the item's corner
        draw = ImageDraw.Draw(photo)
        skin = (int(rng.integers(150, 235)), int(rng.integers(105, 180)), int(rng.integers(80, 150)))
        x, y = centre[0] + w * rng.uniform(0.1, 0.4), centre[1] + h * rng.uniform(0.1, 0.4)
        draw.ellipse((x, y, x + w * 0.5, y + h * 0.9), fill=skin)
    return photo


def _scene_screen(s: _Shot) -> Image.Image:
    """A photo of a screen or a print: keystone, scan lines or moiré, a glare spot."""
    rng, size = s.rng, s.size
    screen = Image.new("RGB", (size, size), render._random_colour(rng, 180, 256) if rng.random() < 0.6
                       else render._random_colour(rng, 0, 60))
    paper = tuple(int(v) for v in np.asarray(screen).reshape(-1, 3)[0])
    mark = s.mark(int(size * rng.uniform(0.3, 0.6)))
    if mark is not None:
        _place(screen, _ink(s.mrng, mark, paper, s.brand),
               (size * s.mrng.uniform(0.4, 0.6), size * s.mrng.uniform(0.35, 0.6)))
    draw = ImageDraw.Draw(screen)
    for k in range(int(rng.integers(2, 5))):  # lines of body text as grey bars
        y = size * (0.75 + 0.05 * k)
        draw.rectangle((size * 0.15, y, size * rng.uniform(0.5, 0.85), y + size * 0.02), fill=render._shade(paper, 0.6))
    arr = np.asarray(screen, np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if rng.random() < 0.5:
        arr *= (0.85 + 0.15 * np.sin(yy * rng.uniform(1.2, 2.6)))[..., None]  # scan lines
    else:
        arr *= (0.9 + 0.1 * np.sin((xx * 0.7 + yy) * rng.uniform(0.8, 1.6)) * np.sin(xx * 0.31))[..., None]  # moiré
    gx, gy = rng.uniform(0.2, 0.8, size=2) * size
    arr += 120 * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (size * 0.12) ** 2))[..., None]
    screen = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGBA")
    screen = _tilt(screen, rng, 0.12, 8)
    photo = _backdrop(rng, size, s.studio)
    inner = screen.resize((int(size * 0.9), int(size * 0.9)), Image.Resampling.BICUBIC)
    _place(photo, inner, (size / 2, size / 2))
    return photo


SCENES: dict[str, _Scene] = {
    "label": _scene_label,
    "emboss": _scene_emboss,
    "pattern": _scene_pattern,
    "closeup": _scene_closeup,
    "flatlay": _scene_flatlay,
    "lifestyle": _scene_lifestyle,
    "screen": _scene_screen,
}


# ----------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------


def _camera(img: Image.Image, rng: np.random.Generator, studio: bool) -> Image.Image:
    """White balance, exposure, vignetting, sensor noise, motion blur and lost resolution, then JPEG."""
    size = img.width
    arr = np.asarray(img, np.float32) / 255.0
    cast = 1.0 + rng.uniform(-0.08, 0.08, 3) * (0.4 if studio else 1.0)
    arr = arr * cast
    arr = np.clip(arr, 0, 1) ** rng.uniform(0.8, 1.25) * rng.uniform(0.85, 1.15)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    vignette = 1.0 - rng.uniform(0.0, 0.35) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2
    arr = arr * vignette[..., None]
    arr = arr + rng.normal(0, rng.uniform(0.0, 0.012 if studio else 0.035), arr.shape)
    out = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))
    if not studio and rng.random() < 0.2:  # hand shake or missed focus
        k = int(rng.integers(3, 6))
        out = out.filter(ImageFilter.BoxBlur(1)) if k == 3 else out.filter(ImageFilter.GaussianBlur(k / 4))
    if not studio and rng.random() < 0.3:  # shot small, shown large
        small = int(size * rng.uniform(0.45, 0.8))
        out = out.resize((small, small), Image.Resampling.BILINEAR).resize((size, size), Image.Resampling.BICUBIC)
    out = ImageEnhance.Sharpness(out).enhance(rng.uniform(0.8, 1.6))
    return render._jpeg_roundtrip(out, int(rng.integers(70, 95)) if studio else int(rng.integers(30, 90)))


def _caption(img: Image.Image, text: str, rng: np.random.Generator) -> None:
    """A banner along the bottom or a diagonal, half-transparent watermark, in place."""
    size = img.width
    font = render._font(max(9, int(size * rng.uniform(0.05, 0.08))))
    if rng.random() < 0.5:
        bar = int(size * 0.12)
        draw = ImageDraw.Draw(img)
        colour = render._random_colour(rng)
        draw.rectangle((0, size - bar, size, size), fill=colour)
        ink = (255, 255, 255) if render._contrast(colour, (255, 255, 255)) > 3 else (0, 0, 0)
        draw.text((size * 0.05, size - bar * 0.85), text, font=font, fill=ink)
        return
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((size * 0.15, size * 0.45), text, font=font, fill=(255, 255, 255, 110))
    layer = layer.rotate(rng.uniform(20, 40), Image.Resampling.BICUBIC)
    img.paste(layer.convert("RGB"), (0, 0), layer.getchannel("A"))


def scene_of(seed: int) -> str:
    """The scene :func:`compose_scene_photo` draws for a photo's seed (its first random choice)."""
    return render.first_choice(SCENES, seed)


def compose_scene_photo(
    logo_rgba: Image.Image | None,
    rng: np.random.Generator,
    size: int = 320,
    *,
    product_color: RGB | None = None,
    caption: str | None = None,
    studio: bool = False,
    scene: str | None = None,
) -> Image.Image:
    """Compose a listing photo in one of :data:`SCENES`, through a camera model, JPEG-compressed.

    Args:
        logo_rgba: The logo (an RGBA render); None for a photo with no mark.
        rng: Source of every random choice; its first draw picks the scene (:func:`scene_of`).
        size: Side of the square output in pixels.
        product_color: Colour of the product surface; None picks one.
        caption: Text overlaid on the photo, or None.
        studio: Official-looking shot: a light backdrop where the scene has one, a better camera.
        scene: Draw this scene instead of the one the first draw picks (the draw is still made).

    Returns:
        The RGB photo.
    """
    drawn = render.first_choice(SCENES, rng)
    scene = drawn if scene is None else scene
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENES)}")
    colour = product_color if product_color is not None else render._random_colour(rng)
    photo = SCENES[scene](_Shot(logo_rgba, rng, size, colour, studio))
    if caption:
        _caption(photo, caption, rng)
    return _camera(photo, rng, studio)
