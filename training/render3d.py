"""A third photo composer: the mark printed on a textured 3-D object, ray-cast through a pinhole camera.

:mod:`training.render` pastes a distorted logo on a PIL mock-up and :mod:`training.scenes` composes 2-D scenes; both
warp the mark in the image plane. Here the mark is a texture on a surface in space, so what a real product photo
does to it comes from geometry and light rather than from image-plane distortions chosen by hand: a mug or a bottle
wraps it round a cylinder (foreshortened towards the sides, cut by the silhouette when the camera turns), a ball
bends it over a sphere, a box shows it on one face in perspective, a hanging piece of cloth folds it. A key light
shades it (Lambert plus a highlight that washes out glossy and metallic inks), the object casts a shadow on a
textured floor, the backdrop (a wall, or a real photograph) is out of focus, and the sensor adds noise and JPEG.

Every pixel is one camera ray, intersected with the object and the floor in numpy and rendered at 2x, then reduced;
textures are sampled with OpenCV's bilinear ``remap``. Photos without a logo show the same objects with a plain
mark or none, and every draw that only a photo with a mark makes comes from a second generator, so one seed gives
the same scene with and without the logo. Every random choice comes from the generator passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

from training import render

__all__ = ["OBJECTS", "compose_3d_photo", "object_of"]

RGB = tuple[int, int, int]
_SS = 2  # supersampling: rays per output pixel along each axis


@dataclass
class _Hit:
    """Where rays meet a surface: distance (inf for a miss), unit normal and texture coordinates in [0, 1]."""

    t: np.ndarray  # (N,)
    normal: np.ndarray  # (N, 3)
    uv: np.ndarray  # (N, 2)

    @classmethod
    def miss(cls, n: int) -> "_Hit":
        return cls(np.full(n, np.inf), np.zeros((n, 3)), np.zeros((n, 2)))

    def merge(self, other: "_Hit") -> "_Hit":
        """The nearer of two hits, ray by ray."""
        near = other.t < self.t
        return _Hit(np.where(near, other.t, self.t), np.where(near[:, None], other.normal, self.normal),
                    np.where(near[:, None], other.uv, self.uv))


def _cylinder(o: np.ndarray, d: np.ndarray, radius: float, height: float) -> _Hit:
    """The side of a cylinder on the y axis from y = 0 to ``height``; u runs round it (0.5 faces +z), v downwards."""
    hit = _Hit.miss(len(d))
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (o[..., 0] * d[:, 0] + o[..., 2] * d[:, 2])
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - radius**2
    disc = b**2 - 4 * a * c
    ok = (disc > 0) & (a > 1e-12)
    t = np.where(ok, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12)), np.inf)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    ok &= (t > 0) & (p[:, 1] >= 0) & (p[:, 1] <= height)
    hit.t = np.where(ok, t, np.inf)
    hit.normal = np.stack([p[:, 0] / radius, np.zeros(len(d)), p[:, 2] / radius], axis=1)
    hit.uv = np.stack([np.arctan2(p[:, 0], p[:, 2]) / (2 * math.pi) + 0.5, 1 - p[:, 1] / height], axis=1)
    return hit


def _sphere(o: np.ndarray, d: np.ndarray, centre: np.ndarray, radius: float) -> _Hit:
    """A sphere; u is longitude (0.5 faces +z), v latitude from the top."""
    hit = _Hit.miss(len(d))
    oc = o - centre
    b = np.sum(d * oc, axis=-1)
    disc = b**2 - (np.sum(oc * oc, axis=-1) - radius**2)
    t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    t = np.where(t > 0, t, np.inf)
    n = (o + np.where(np.isfinite(t), t, 0)[:, None] * d - centre) / radius
    hit.t, hit.normal = t, n
    hit.uv = np.stack([np.arctan2(n[:, 0], n[:, 2]) / (2 * math.pi) + 0.5,
                       np.arccos(np.clip(n[:, 1], -1, 1)) / math.pi], axis=1)
    return hit


def _box(o: np.ndarray, d: np.ndarray, half: np.ndarray) -> tuple[_Hit, np.ndarray]:
    """An axis-aligned box standing on y = 0, and which face each ray enters (0: +z front, 1: +x side, 2: top,
    3: any other); the uv of the front and side faces run left to right and top to bottom."""
    lo, hi = np.array([-half[0], 0, -half[2]]), np.array([half[0], 2 * half[1], half[2]])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / d, (hi - o) / d
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(tmin, axis=1)
    near, far = tmin.max(axis=1), tmax.min(axis=1)
    ok = (near < far) & (near > 0)
    hit = _Hit.miss(len(d))
    hit.t = np.where(ok, near, np.inf)
    p = o + np.where(ok, near, 0)[:, None] * d
    sign = np.sign(-d[np.arange(len(d)), axis])
    hit.normal = np.zeros((len(d), 3))
    hit.normal[np.arange(len(d)), axis] = sign
    face = np.full(len(d), 3)
    face[(axis == 2) & (sign > 0)] = 0
    face[(axis == 0) & (sign > 0)] = 1
    face[(axis == 1) & (sign > 0)] = 2
    v = 1 - p[:, 1] / (2 * half[1])
    hit.uv = np.where((face == 1)[:, None], np.stack([(half[2] - p[:, 2]) / (2 * half[2]), v], axis=1),
                      np.stack([(p[:, 0] + half[0]) / (2 * half[0]), v], axis=1))
    return hit, face


def _plane_z(o: np.ndarray, d: np.ndarray, width: float, height: float, folds: list[tuple[float, ...]]) -> _Hit:
    """A hanging cloth: the rectangle z = 0, |x| <= width / 2, 0 <= y <= height, facing +z, its shading and print
    bent by ``folds`` (amplitude, wave vector x, y, phase) of a height field."""
    hit = _Hit.miss(len(d))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[..., 2] / d[:, 2]
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    ok = (t > 0) & (np.abs(p[:, 0]) <= width / 2) & (p[:, 1] >= 0) & (p[:, 1] <= height)
    gx, gy = np.zeros(len(d)), np.zeros(len(d))
    for amp, kx, ky, phase in folds:
        c = amp * np.cos(kx * p[:, 0] + ky * p[:, 1] + phase)
        gx, gy = gx + c * kx, gy + c * ky
    hit.t = np.where(ok, t, np.inf)
    n = np.stack([-gx, -gy, np.ones(len(d))], axis=1)
    hit.normal = n / np.linalg.norm(n, axis=1, keepdims=True)
    # The print follows the fabric: where it slopes, the texture is drawn in a little (a crude stretch).
    u = (p[:, 0] + width / 2) / width - 0.04 * gx
    v = 1 - p[:, 1] / height + 0.04 * gy
    hit.uv = np.stack([u, v], axis=1)
    return hit


# ----------------------------------------------------------------------------------------------
# Textures
# ----------------------------------------------------------------------------------------------


@dataclass
class _Texture:
    """An RGB image (floats in [0, 1]) with a per-texel shininess (ink can be glossier than the surface)."""

    rgb: np.ndarray  # (H, W, 3)
    gloss: np.ndarray  # (H, W)

    def sample(self, uv: np.ndarray, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.gloss.shape
        n = len(uv)
        rows = -(-n // 1024)  # remap wants maps under 32767 a side: lay the points out 1024 a row
        maps = np.zeros((2, rows * 1024), np.float32)
        maps[0, :n] = uv[:, 0] * w - 0.5
        maps[1, :n] = uv[:, 1] * h - 0.5
        border = cv2.BORDER_WRAP if wrap else cv2.BORDER_REPLICATE
        both = np.concatenate([self.rgb, self.gloss[..., None]], axis=2).astype(np.float32)
        out = cv2.remap(both, maps[0].reshape(rows, 1024), maps[1].reshape(rows, 1024), cv2.INTER_LINEAR,
                        borderMode=border).reshape(-1, 4)[:n]
        return out[:, :3], out[:, 3]


def _surface(rng: np.random.Generator, colour: RGB, shape: tuple[int, int], material: str, gloss: float) -> _Texture:
    """A plain product surface with the grain of its material (fabric weave, cardboard fibres, ceramic)."""
    h, w = shape
    base = np.broadcast_to(np.asarray(colour, np.float64) / 255, (h, w, 3)).copy()
    if material == "fabric":
        yy, xx = np.mgrid[0:h, 0:w]
        weave = 0.03 * np.sin(xx * rng.uniform(1.2, 2.0)) * np.sin(yy * rng.uniform(1.2, 2.0))
        base *= 1 + weave[..., None] + rng.normal(0, 0.02, (h, w, 1))
    elif material == "cardboard":
        fibres = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
        base *= 1 + 0.05 * fibres[..., None]
    return _Texture(np.clip(base, 0, 1), np.full((h, w), gloss))


def _ink_colour(rng: np.random.Generator, surface: RGB, brand: RGB | None) -> tuple[RGB, float]:
    """Ink colour and its shininess: the brand's colour, white or black for contrast, or metallic foil."""
    roll = rng.random()
    if roll < 0.35 and brand is not None and render._contrast(brand, surface) > 1.6:
        return brand, 0.2
    if roll < 0.8:
        white, black = (245, 245, 242), (20, 20, 22)
        return (white if render._contrast(white, surface) > render._contrast(black, surface) else black), 0.2
    foil = [(212, 175, 55), (192, 192, 200), (184, 115, 51)][int(rng.integers(3))]
    return foil, 0.9  # gold, silver, copper: the highlight can wipe it out


def _stamp(tex: _Texture, mask: Image.Image, centre: tuple[float, float], ink: RGB, gloss: float,
           full_colour: Image.Image | None = None) -> None:
    """Print a mask (``L``) on the texture, centred at fractions of its size, in one ink or the logo's own colours."""
    h, w = tex.gloss.shape
    mw, mh = mask.size
    x0, y0 = int(centre[0] * w - mw / 2), int(centre[1] * h - mh / 2)
    xs, ys = slice(max(0, x0), min(w, x0 + mw)), slice(max(0, y0), min(h, y0 + mh))
    if xs.start >= xs.stop or ys.start >= ys.stop:
        return
    crop = (xs.start - x0, ys.start - y0, xs.stop - x0, ys.stop - y0)
    alpha = np.asarray(mask.crop(crop), np.float64)[..., None] / 255
    colour = (np.asarray(full_colour.crop(crop), np.float64)[..., :3] / 255 if full_colour is not None
              else np.asarray(ink, np.float64) / 255)
    tex.rgb[ys, xs] = tex.rgb[ys, xs] * (1 - alpha) + colour * alpha
    tex.gloss[ys, xs] = tex.gloss[ys, xs] * (1 - alpha[..., 0]) + gloss * alpha[..., 0]


def _plain_mark(rng: np.random.Generator, side: int) -> Image.Image:
    """A mark that is no brand's (stripes, dots, a chevron or a ring) for photos of unbranded products."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    kind = int(rng.integers(4))
    if kind == 0:
        for k in range(3):
            draw.rectangle((0, side * (0.15 + 0.3 * k), side, side * (0.3 + 0.3 * k)), fill=255)
    elif kind == 1:
        r = side / 10
        for cx in (0.25, 0.5, 0.75):
            for cy in (0.3, 0.7):
                draw.ellipse((cx * side - r, cy * side - r, cx * side + r, cy * side + r), fill=255)
    elif kind == 2:
        draw.line([(0, side * 0.3), (side / 2, side * 0.75), (side, side * 0.3)], fill=255, width=max(2, side // 6))
    else:
        draw.ellipse((side * 0.1, side * 0.1, side * 0.9, side * 0.9), outline=255, width=max(2, side // 8))
    return mask


class _Print:
    """What goes on the product: the logo (mask and own colours) or, without one, maybe a plain mark."""

    def __init__(self, logo: Image.Image | None, rng: np.random.Generator, mrng: np.random.Generator) -> None:
        self.logo, self.rng, self.mrng = logo, rng, mrng
        self.brand: RGB | None = None
        self.box = logo.getchannel("A").getbbox() if logo is not None else None
        if logo is not None and self.box is not None:
            arr = np.asarray(logo.crop(self.box))
            opaque = arr[..., 3] > 128
            if opaque.any():
                self.brand = tuple(int(v) for v in np.median(arr[opaque][:, :3], axis=0))  # type: ignore[assignment]
        self.plain = logo is None and rng.random() < 0.6

    def apply(self, tex: _Texture, centre: tuple[float, float], width: int, surface: RGB) -> None:
        """Print the mark about ``width`` texels wide at ``centre`` (fractions of the texture)."""
        own_colours = self.rng.random() < 0.3  # drawn always, so the scene does not depend on the mark
        ink, gloss = _ink_colour(self.rng, surface, self.brand)
        if self.logo is not None:
            if self.box is None:
                return
            cropped = self.logo.crop(self.box)
            scale = max(4, width) / max(cropped.width, cropped.height)
            size = (max(2, round(cropped.width * scale)), max(2, round(cropped.height * scale)))
            cropped = cropped.resize(size, Image.Resampling.LANCZOS)
            _stamp(tex, cropped.getchannel("A"), centre, ink, gloss, cropped if own_colours else None)
        elif self.plain:
            _stamp(tex, _plain_mark(self.mrng, max(4, width)), centre, ink, gloss)


# ----------------------------------------------------------------------------------------------
# Objects: each returns the hit of every ray and the colour and gloss seen there
# ----------------------------------------------------------------------------------------------


@dataclass
class _Object:
    intersect: Callable[[np.ndarray, np.ndarray], tuple[_Hit, np.ndarray, np.ndarray]]
    target: np.ndarray  # where the camera looks
    extent: float  # rough radius, for the camera distance
    floor: bool = True


def _obj_cylinder(rng: np.random.Generator, p: _Print, colour: RGB, kind: str) -> _Object:
    radius, height = (0.45, rng.uniform(0.9, 1.2)) if kind == "mug" else (0.28, rng.uniform(1.3, 1.8))
    circumference = 2 * math.pi * radius
    res = 600
    shape = (int(res * height / circumference), res)
    glossy = 0.6 if kind == "mug" else rng.choice([0.3, 0.9])
    tex = _surface(rng, colour, shape, "ceramic", glossy)
    # The mark faces the camera more or less (u 0.5 is +z, towards the camera's default azimuth).
    width = int(res * rng.uniform(0.08, 0.22) * (0.45 / radius) ** 0.5)
    p.apply(tex, (0.5 + rng.uniform(-0.08, 0.08), rng.uniform(0.35, 0.6)), width, colour)
    cap = np.asarray(render._shade(colour, 0.8), np.float64) / 255

    def intersect(o: np.ndarray, d: np.ndarray) -> tuple[_Hit, np.ndarray, np.ndarray]:
        hit = _cylinder(o, d, radius, height)
        rgb, gloss = tex.sample(hit.uv, wrap=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_top = (height - o[..., 1]) / d[:, 1]
        top = o + np.where(np.isfinite(t_top), t_top, 0)[:, None] * d
        on_top = (t_top > 0) & (top[:, 0] ** 2 + top[:, 2] ** 2 <= radius**2) & (t_top < hit.t)
        hit.t = np.where(on_top, t_top, hit.t)
        hit.normal[on_top] = (0, 1, 0)
        rgb[on_top] = cap * (0.55 if kind == "mug" else 1.0)  # a mug's inside is in shade
        return hit, rgb, gloss

    return _Object(intersect, np.array([0, height * 0.5, 0]), max(radius, height / 2))


def _obj_ball(rng: np.random.Generator, p: _Print, colour: RGB) -> _Object:
    radius = 0.5
    shape = (300, 600)
    tex = _surface(rng, colour, shape, "ceramic", 0.5)
    # On a longitude-latitude texture a mark near the equator keeps its proportions best; allow it to drift.
    p.apply(tex, (0.5 + rng.uniform(-0.06, 0.06), 0.5 + rng.uniform(-0.12, 0.08)),
            int(shape[1] * rng.uniform(0.07, 0.14)), colour)
    centre = np.array([0, radius, 0])

    def intersect(o: np.ndarray, d: np.ndarray) -> tuple[_Hit, np.ndarray, np.ndarray]:
        hit = _sphere(o, d, centre, radius)
        rgb, gloss = tex.sample(hit.uv, wrap=True)
        return hit, rgb, gloss

    return _Object(intersect, centre, radius)


def _obj_box(rng: np.random.Generator, p: _Print, colour: RGB) -> _Object:
    half = np.array([rng.uniform(0.4, 0.6), rng.uniform(0.25, 0.5), rng.uniform(0.25, 0.45)])
    res = 360
    front = _surface(rng, colour, (int(res * half[1] / half[0]), res), "cardboard", 0.15)
    side = _surface(rng, colour, (int(res * half[1] / half[0]), int(res * half[2] / half[0])), "cardboard", 0.15)
    p.apply(front, (0.5 + rng.uniform(-0.15, 0.15), 0.5 + rng.uniform(-0.15, 0.15)),
            int(res * rng.uniform(0.2, 0.5)), colour)
    on_side = rng.random() < 0.4
    if on_side:
        p.apply(side, (0.5, 0.5), int(side.gloss.shape[1] * 0.5), colour)
    lid = np.asarray(render._shade(colour, 1.05), np.float64) / 255

    def intersect(o: np.ndarray, d: np.ndarray) -> tuple[_Hit, np.ndarray, np.ndarray]:
        hit, face = _box(o, d, half)
        rgb_f, gloss_f = front.sample(hit.uv, wrap=False)
        rgb_s, gloss_s = side.sample(hit.uv, wrap=False)
        use_side = (face == 1)[:, None]
        rgb = np.where(use_side, rgb_s, rgb_f)
        gloss = np.where(face == 1, gloss_s, gloss_f)
        rgb[face >= 2] = lid
        gloss[face >= 2] = 0.15
        return hit, rgb, gloss

    return _Object(intersect, np.array([0, half[1], 0]), float(max(half)) * 1.2)


def _obj_cloth(rng: np.random.Generator, p: _Print, colour: RGB) -> _Object:
    width, height = 1.4, 1.4
    res = 500
    tex = _surface(rng, colour, (res, res), "fabric", 0.05)
    p.apply(tex, (0.5 + rng.uniform(-0.12, 0.12), rng.uniform(0.3, 0.55)), int(res * rng.uniform(0.15, 0.4)), colour)
    folds = [(rng.uniform(0.01, 0.04), rng.uniform(-9, 9), rng.uniform(-9, 9), rng.uniform(0, 2 * math.pi))
             for _ in range(int(rng.integers(2, 5)))]

    def intersect(o: np.ndarray, d: np.ndarray) -> tuple[_Hit, np.ndarray, np.ndarray]:
        hit = _plane_z(o, d, width, height, folds)
        rgb, gloss = tex.sample(hit.uv, wrap=False)
        return hit, rgb, gloss

    return _Object(intersect, np.array([0, height / 2, 0]), height / 2 * 0.75, floor=False)


OBJECTS: dict[str, Callable[[np.random.Generator, _Print, RGB], _Object]] = {
    "mug": lambda rng, p, c: _obj_cylinder(rng, p, c, "mug"),
    "bottle": lambda rng, p, c: _obj_cylinder(rng, p, c, "bottle"),
    "box": _obj_box,
    "ball": _obj_ball,
    "cloth": _obj_cloth,
}


# ----------------------------------------------------------------------------------------------
# Camera, light, floor and backdrop
# ----------------------------------------------------------------------------------------------


def _camera_rays(rng: np.random.Generator, obj: _Object, n: int, studio: bool) -> tuple[np.ndarray, np.ndarray]:
    """A pinhole camera looking at the object from a random azimuth and elevation: its origin and ``n * n`` rays."""
    fov = math.radians(rng.uniform(28, 45))
    azimuth = math.radians(rng.uniform(-35, 35) * (0.5 if studio else 1.0))
    elevation = math.radians(rng.uniform(-5, 15) if not obj.floor else rng.uniform(8, 40))
    fill = rng.uniform(0.45, 0.85)  # how much of the frame the object takes
    distance = obj.extent / math.tan(fov / 2) / fill
    eye = obj.target + distance * np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                                            math.cos(elevation) * math.cos(azimuth)])
    look = obj.target + rng.uniform(-0.15, 0.15, 3) * obj.extent  # off centre
    forward = (look - eye) / np.linalg.norm(look - eye)
    right = np.cross(forward, [0, 1, 0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    roll = math.radians(rng.normal(0, 4))
    right, up = right * math.cos(roll) + up * math.sin(roll), up * math.cos(roll) - right * math.sin(roll)
    s = np.tan(fov / 2) * ((np.arange(n) + 0.5) / n * 2 - 1)
    xx, yy = np.meshgrid(s, -s)
    d = forward + xx.reshape(-1, 1) * right + yy.reshape(-1, 1) * up
    return eye.astype(np.float32), (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)


def _floor_texture(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A floor colour function of world x, z: wood planks, a tiled stone, or a plain sheet."""
    kind = int(rng.integers(3))
    a = np.asarray(render._random_colour(rng, 90, 230), np.float64) / 255
    b = a * rng.uniform(0.6, 0.85)
    freq, phase = rng.uniform(6, 14), rng.uniform(0, 10)

    def colour(p: np.ndarray) -> np.ndarray:
        if kind == 0:  # planks with grain
            grain = 0.5 + 0.5 * np.sin(p[:, 0] * freq * 6 + np.sin(p[:, 2] * 3 + phase) * 2)
            seams = (np.mod(p[:, 2] * 3 + phase, 1.0) < 0.03)[:, None]
            out = a * (1 - grain[:, None] * 0.25)
            return np.where(seams, b * 0.7, out)
        if kind == 1:  # tiles
            tiles = (np.floor(p[:, 0] * 2 + phase) + np.floor(p[:, 2] * 2)) % 2
            return np.where(tiles[:, None] > 0, a, b)
        return np.broadcast_to(a, (len(p), 3))

    return colour


def _backdrop(rng: np.random.Generator, n: int, studio: bool) -> np.ndarray:
    """What is behind the scene, ``(n, n, 3)`` in [0, 1]: a lit wall, or a real photograph out of focus."""
    photos = render._photo_pool()
    if photos and not studio and rng.random() < 0.5:
        photo = photos[int(rng.integers(len(photos)))]
        side = int(min(photo.size) * rng.uniform(0.4, 0.9))
        x0 = int(rng.integers(0, photo.width - side + 1))
        y0 = int(rng.integers(0, photo.height - side + 1))
        arr = np.asarray(photo.crop((x0, y0, x0 + side, y0 + side)).resize((n, n)), np.float32) / 255
        return cv2.GaussianBlur(arr, (0, 0), n / rng.uniform(40, 90))  # depth of field
    top = np.asarray(render._random_colour(rng, 170, 256) if studio else render._random_colour(rng, 60, 240)) / 255
    ramp = np.linspace(1.0, rng.uniform(0.6, 0.9), n)[:, None, None]
    return np.broadcast_to(top * ramp, (n, n, 3)).astype(np.float32)


def _shade(rgb: np.ndarray, gloss: np.ndarray, normal: np.ndarray, view: np.ndarray, light: np.ndarray,
           ambient: float) -> np.ndarray:
    """Lambert diffuse plus a Blinn-Phong highlight whose strength is the texel's gloss."""
    lambert = np.clip(normal @ light, 0, 1)
    half = light - view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    spec = np.clip(np.sum(normal * half, axis=1), 0, 1) ** (8 + 120 * gloss) * gloss * 1.2
    return rgb * (ambient + (1 - ambient) * lambert)[:, None] + spec[:, None]


def object_of(seed: int) -> str:
    """The object :func:`compose_3d_photo` draws for a photo's seed (its first random choice)."""
    return render.first_choice(OBJECTS, seed)


def compose_3d_photo(
    logo_rgba: Image.Image | None,
    rng: np.random.Generator,
    size: int = 320,
    *,
    product_color: RGB | None = None,
    caption: str | None = None,
    studio: bool = False,
    obj: str | None = None,
) -> Image.Image:
    """Render a listing photo of one of :data:`OBJECTS` carrying the mark, JPEG-compressed.

    Args:
        logo_rgba: The logo (an RGBA render); None for an unbranded product.
        rng: Source of every random choice; its first draw picks the object (:func:`object_of`).
        size: Side of the square output in pixels.
        product_color: Colour of the product; None picks one.
        caption: Text overlaid on the photo, or None.
        studio: Official-looking shot: a plain light backdrop, a frontal camera, soft light, little noise.
        obj: Render this object instead of the one the first draw picks (the draw is still made).

    Returns:
        The RGB photo.
    """
    drawn = render.first_choice(OBJECTS, rng)
    obj = drawn if obj is None else obj
    if obj not in OBJECTS:
        raise ValueError(f"unknown object {obj!r}; known: {', '.join(OBJECTS)}")
    mrng = np.random.default_rng(int(rng.integers(2**63)))
    colour = product_color if product_color is not None else render._random_colour(rng)
    thing = OBJECTS[obj](rng, _Print(logo_rgba, rng, mrng), colour)
    n = size * _SS
    eye, rays = _camera_rays(rng, thing, n, studio)
    hit, rgb, gloss = thing.intersect(eye, rays)

    elevation = math.radians(rng.uniform(25, 70))
    azimuth = math.radians(rng.uniform(-70, 70))
    light = np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                      math.cos(elevation) * math.cos(azimuth)])
    ambient = rng.uniform(0.35, 0.55) if studio else rng.uniform(0.15, 0.45)
    image = _backdrop(rng, n, studio).reshape(-1, 3).copy()

    if thing.floor:  # the floor y = 0 in front of the backdrop, with the object's shadow
        with np.errstate(divide="ignore", invalid="ignore"):
            t_floor = -eye[1] / rays[:, 1]
        on_floor = (t_floor > 0) & (t_floor < hit.t) & (t_floor < thing.extent * 12)
        p = eye + np.where(on_floor, t_floor, 0)[:, None] * rays
        floor_rgb = np.asarray(render._random_colour(rng, 200, 256), np.float64)[None] / 255 if studio \
            else _floor_texture(rng)(p)
        occluded = np.zeros(len(rays), bool)
        idx = np.flatnonzero(on_floor)
        for start in range(0, len(idx), 65536):  # shadow rays from the floor towards the light
            chunk = idx[start : start + 65536]
            shadow, _, _ = thing.intersect(p[chunk] + light * 1e-3, np.broadcast_to(light, (len(chunk), 3)))
            occluded[chunk] = np.isfinite(shadow.t)
        lit = np.where(occluded, ambient * 0.8, ambient + (1 - ambient) * max(light[1], 0))
        fog = np.clip((t_floor - thing.extent * 6) / (thing.extent * 6), 0, 1)  # the floor fades into the wall
        floor_col = floor_rgb * lit[:, None]
        floor_col = floor_col * (1 - fog[:, None]) + image * fog[:, None]
        image = np.where(on_floor[:, None], floor_col, image)

    on_obj = np.isfinite(hit.t)
    image[on_obj] = _shade(rgb[on_obj], gloss[on_obj], hit.normal[on_obj], rays[on_obj], light, ambient)
    out = np.clip(image.reshape(n, n, 3), 0, 1).astype(np.float32)
    out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    out = out + rng.normal(0, 0.006 if studio else rng.uniform(0.005, 0.03), out.shape)
    photo = Image.fromarray((np.clip(out, 0, 1) * 255).astype(np.uint8))
    if caption:
        render._draw_caption(photo, caption, rng)
    return render._jpeg_roundtrip(photo, int(rng.integers(75, 95)) if studio else int(rng.integers(35, 90)))

