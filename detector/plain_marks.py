"""Plain geometric marks: discs, rings, polygons, a star, bars, dot grids, chevrons, crosses, a wave, a check.

Anyone may print such shapes on goods, and a few brands' marks are little more than one of them (a ring, three
bars). A photo region that matches a brand's reference while looking just as much like a plain mark is weak
evidence of that brand: the featurizer reports, per image match, the region's cosine to the nearest plain mark
(``img_generic``), so the brand model can ask for more evidence before it names a brand on a stripe or a ring.

The shapes are drawn here, from this fixed list, and embedded as references by the model's own embedder, so the
statistic lives in the space the authentic index searches. Embedding them takes tens of seconds on 2 cores, once
per embedder: the bank is kept in memory and in a cache file keyed by the embedder's model id, config and the marks'
pixels (beside the ONNX exports, :func:`detector.onnx_runtime.default_cache_dir`), so a service restart or a
second evaluation of one model reuses it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["draw_plain_marks", "plain_mark_bank", "plain_mark_similarity"]

log = logging.getLogger(__name__)

_SIDE = 256
_INKS = (((20, 20, 20), (245, 245, 245)), ((245, 245, 245), (20, 20, 20)))  # dark on light, light on dark


def _polygon(n: int, inner: float | None = None) -> list[tuple[float, float]]:
    """A regular ``n``-gon (or, with ``inner``, an ``n``-pointed star) around the centre, radius 0.4 of the side."""
    c, s = _SIDE / 2, _SIDE
    if inner is None:
        return [(c + .4 * s * math.cos(2 * math.pi * k / n - math.pi / 2),
                 c + .4 * s * math.sin(2 * math.pi * k / n - math.pi / 2)) for k in range(n)]
    return [(c + (.4 if k % 2 == 0 else inner) * s * math.cos(math.pi * k / n - math.pi / 2),
             c + (.4 if k % 2 == 0 else inner) * s * math.sin(math.pi * k / n - math.pi / 2)) for k in range(2 * n)]


def _masks() -> list[Image.Image]:
    s, c = _SIDE, _SIDE / 2
    masks: list[Image.Image] = []

    def new() -> ImageDraw.ImageDraw:
        masks.append(Image.new("L", (s, s), 0))
        return ImageDraw.Draw(masks[-1])

    for hole in (0, 0.08, 0.15, 0.25):  # a disc and rings of three weights
        d = new()
        d.ellipse((s * .1, s * .1, s * .9, s * .9), fill=255)
        if hole:
            d.ellipse((s * (.1 + hole), s * (.1 + hole), s * (.9 - hole), s * (.9 - hole)), fill=0)
    for n in (3, 4, 5, 6):
        new().polygon(_polygon(n), fill=255)
    new().polygon(_polygon(5, inner=.16), fill=255)
    new().rounded_rectangle((s * .1, s * .1, s * .9, s * .9), radius=s // 6, fill=255)
    for n in (1, 2, 3, 4, 5):  # bars, across and upright
        for upright in (False, True):
            d = new()
            for k in range(n):
                a = s * (.1 + .8 * k / n)
                b = a + s * .8 / n * .55
                d.rectangle((a, s * .1, b, s * .9) if upright else (s * .1, a, s * .9, b), fill=255)
    for nx, ny in ((2, 2), (3, 2), (3, 3), (4, 4)):  # dot grids
        d, r = new(), s * .35 / max(nx, ny)
        for i in range(nx):
            for j in range(ny):
                x, y = s * (.15 + .7 * (i + .5) / nx), s * (.15 + .7 * (j + .5) / ny)
                d.ellipse((x - r, y - r, x + r, y + r), fill=255)
    for weight in (0.08, 0.16):  # chevron, plus, cross and wave, thin and bold
        w = int(s * weight)
        new().line([(s * .1, s * .3), (c, s * .7), (s * .9, s * .3)], fill=255, width=w)
        d = new()
        d.rectangle((c - w, s * .1, c + w, s * .9), fill=255)
        d.rectangle((s * .1, c - w, s * .9, c + w), fill=255)
        d = new()
        d.line([(s * .15, s * .15), (s * .85, s * .85)], fill=255, width=w)
        d.line([(s * .15, s * .85), (s * .85, s * .15)], fill=255, width=w)
        new().line([(s * .1 + s * .8 * k / 40, c + s * .2 * math.sin(2 * math.pi * k / 20)) for k in range(41)],
                   fill=255, width=w)
    d = new()
    for i in range(4):
        for j in range(4):
            if (i + j) % 2 == 0:
                d.rectangle((s * (.1 + .2 * i), s * (.1 + .2 * j), s * (.3 + .2 * i), s * (.3 + .2 * j)), fill=255)
    return masks


def draw_plain_marks() -> list[Image.Image]:
    """Every plain mark, dark on light and light on dark (as brands' references come), ``256 x 256`` RGB."""
    out = []
    for mask in _masks():
        for ink, paper in _INKS:
            image = Image.new("RGB", mask.size, paper)
            image.paste(Image.new("RGB", mask.size, ink), mask=mask)
            out.append(image)
    return out


_BANKS: dict[Path, np.ndarray] = {}


def _cache_file(embedder: Any, marks: list[Image.Image], cache_dir: Path) -> Path:
    from detector.onnx_runtime import config_fingerprint

    pixels = hashlib.sha256(b"".join(m.tobytes() for m in marks)).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9@._-]+", "_", f"{embedder.model_id}_{config_fingerprint(embedder)}_{pixels}")
    return cache_dir / f"{stem}.npy"


def plain_mark_bank(embedder: Any, cache_dir: str | Path | None = None) -> np.ndarray:
    """The plain marks embedded as references by ``embedder``: ``(M, dim)`` unit vectors (read-only).

    Computed once per embedder (model id and config) and kept in memory and in ``cache_dir`` (default
    ``default_cache_dir("plain-marks")``); a cache file of the wrong shape or unreadable is computed again. Anything
    but an :class:`~detector.embedder.Embedder` (a test double) is never cached.
    """
    from detector.embedder import Embedder
    from detector.onnx_runtime import default_cache_dir

    marks = draw_plain_marks()
    if not isinstance(embedder, Embedder):
        return np.asarray(embedder.embed_references(marks), np.float32)
    path = _cache_file(embedder, marks, Path(cache_dir) if cache_dir is not None else default_cache_dir("plain-marks"))
    bank = _BANKS.get(path)
    if bank is None and path.is_file():
        try:
            bank = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            log.warning("plain-mark cache %s unreadable (%s): embedding the marks again", path, exc)
        if bank is not None and (bank.dtype != np.float32 or bank.shape != (len(marks), embedder.dim)):
            log.warning("plain-mark cache %s holds %s %s: embedding the marks again", path, bank.dtype, bank.shape)
            bank = None
    if bank is None:
        bank = np.asarray(embedder.embed_references(marks), np.float32)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, bank)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not keep the plain-mark bank in %s: %s", path, exc)
    bank.setflags(write=False)
    _BANKS[path] = bank
    return bank


def plain_mark_similarity(vectors: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Each (unit) vector's cosine to its nearest plain mark: ``(..., dim)`` -> ``(...)``."""
    flat = vectors.reshape(-1, vectors.shape[-1])
    return (flat @ bank.T).max(axis=1).reshape(vectors.shape[:-1])
