"""Made-up marks for fine-tuning: more classes for the contrastive loss than simple-icons' brands give.

Fine-tuning at 1,000 training brands reaches photo top-1 0.77 on d600's validation photos, at 3,036 brands 0.90
(``docs/results.md``): the number of marks the embedder learns to tell apart matters, and simple-icons has no more.
The photo misses are mostly confusions between marks of one layout (two wordmarks, two glyphs in a circle), so the
marks made here are of those layouts, drawn as vector paths like a simple-icons icon (one path in a 24 x 24 view
box, one colour) so every composer and reference renderer takes them as it takes a brand:

* ``wordmark``: a pronounceable made-up word in one of matplotlib's bundled fonts (lower, title or upper case,
  sometimes slanted or stretched);
* ``monogram``: its initials knocked out of a filled circle, rounded square, hexagon or diamond;
* ``badge``: a monogram, ring or solid shape to the left of the wordmark.

The word is the mark's name (the text the photo is also pulled towards). Glyph outlines come from
``matplotlib.textpath.TextPath`` with matplotlib's own fonts (DejaVu, STIX, Computer Modern), so the marks are the
same on every machine with the pinned matplotlib. Made-up marks are no brand: nothing here is held out or registered.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyBboxPatch
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D

__all__ = ["STYLES", "Mark", "make_marks"]

STYLES = ("wordmark", "monogram", "badge")
_SHAPES = ("circle", "rounded_square", "hexagon", "diamond")
_ONSETS = ("b", "br", "c", "ch", "cl", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "kr", "l", "m", "n", "p", "pl",
           "pr", "qu", "r", "s", "sk", "sn", "st", "t", "tr", "v", "w", "x", "z", "")
_VOWELS = ("a", "e", "i", "o", "u", "y", "ai", "ea", "io", "ou")
_CODAS = ("", "", "", "n", "r", "s", "x", "l", "m", "k", "t", "nd", "rk", "st")
_SLUG_PREFIX = "made-up-"  # no simple-icons slug starts so; a mark is never mistaken for a brand


@dataclass(frozen=True)
class Mark:
    """A made-up mark with the attributes of a simple-icons icon that rendering reads."""

    slug: str
    title: str
    hex: str
    svg: str
    style: str


@functools.cache
def _fonts() -> tuple[str, ...]:
    """matplotlib's bundled text fonts (symbol-only and fallback fonts left out)."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    keep = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cmr10", "cmss10", "cmtt10", "cmb10", "cmti10")
    return tuple(str(p) for p in sorted(folder.glob("*.ttf"))
                 if p.stem.startswith(keep) and "Display" not in p.stem)


def _word(rng: np.random.Generator) -> str:
    syllables = int(rng.integers(1, 4))
    word = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                   + _CODAS[rng.integers(len(_CODAS))] for _ in range(syllables))
    return word[:10] if len(word) >= 3 else word + "ex"


def _text_path(text: str, font: str) -> MplPath:
    return TextPath((0, 0), text, size=1.0, prop=FontProperties(fname=font))


def _fit(path: MplPath, box: tuple[float, float, float, float]) -> MplPath:
    """Scale ``path`` uniformly and centre it in ``box`` = (x0, y0, x1, y1)."""
    ext = path.get_extents()
    x0, y0, x1, y1 = box
    scale = min((x1 - x0) / max(ext.width, 1e-6), (y1 - y0) / max(ext.height, 1e-6))
    return path.transformed(Affine2D().translate(-ext.x0 - ext.width / 2, -ext.y0 - ext.height / 2)
                            .scale(scale).translate((x0 + x1) / 2, (y0 + y1) / 2))


def _shape(kind: str) -> MplPath:
    """A shape of side 2 centred on the origin."""
    if kind == "circle":
        return MplPath.circle((0, 0), 1.0)
    if kind == "hexagon":
        return MplPath.unit_regular_polygon(6)
    if kind == "diamond":
        return MplPath.unit_regular_polygon(4)
    return FancyBboxPatch((-1, -1), 2, 2, boxstyle="round,pad=0,rounding_size=0.35").get_path()


def _join(*paths: MplPath) -> MplPath:
    return MplPath.make_compound_path(*paths)


def _svg(path: MplPath, title: str) -> str:
    """One even-odd path in a 24 x 24 view box (y down), as simple-icons draws an icon."""
    path = _fit(path, (0.0, 0.0, 24.0, 24.0)).transformed(Affine2D().scale(1, -1).translate(0, 24))
    d = []
    for verts, code in path.iter_segments(simplify=False, curves=True):
        xy = " ".join(f"{v:.3f}" for v in verts)
        d.append({MplPath.MOVETO: "M", MplPath.LINETO: "L", MplPath.CURVE3: "Q", MplPath.CURVE4: "C"}.get(code, "Z")
                 + ("" if code == MplPath.CLOSEPOLY else xy))
    return ('<svg role="img" viewBox="0 0 24 24" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{title}</title><path fill-rule="evenodd" d="{"".join(d)}"/></svg>')


def _colour(rng: np.random.Generator) -> str:
    """A brand colour: mostly saturated hues, some near-black and light ones (simple-icons has all three)."""
    kind = rng.random()
    if kind < 0.15:
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.random() * 0.3, rng.random() * 0.25)
    elif kind < 0.25:
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.random() * 0.5, 0.85 + rng.random() * 0.15)
    else:
        r, g, b = colorsys.hsv_to_rgb(rng.random(), 0.5 + rng.random() * 0.5, 0.45 + rng.random() * 0.55)
    return "{:02X}{:02X}{:02X}".format(*(int(round(v * 255)) for v in (r, g, b)))


def _monogram(rng: np.random.Generator, word: str, font: str) -> MplPath:
    letters = word[: int(rng.integers(1, 3))].upper()
    shape = _shape(_SHAPES[rng.integers(len(_SHAPES))])
    glyphs = _fit(_text_path(letters, font), (-0.5, -0.45, 0.5, 0.45))
    return _join(shape, glyphs)  # even-odd: the letters are holes in the shape


def _wordmark(rng: np.random.Generator, word: str, font: str) -> MplPath:
    case = rng.integers(3)
    text = word.lower() if case == 0 else word.title() if case == 1 else word.upper()
    path = _text_path(text, font)
    if rng.random() < 0.25:  # slanted or stretched lettering
        path = path.transformed(Affine2D().skew_deg(float(rng.uniform(-15, 15)), 0)
                                .scale(float(rng.uniform(0.8, 1.3)), 1.0))
    return path


def _mark(rng: np.random.Generator, style: str) -> tuple[str, MplPath]:
    word = _word(rng)
    fonts = _fonts()
    font = fonts[rng.integers(len(fonts))]
    if style == "wordmark":
        return word, _wordmark(rng, word, font)
    if style == "monogram":
        return word, _monogram(rng, word, font)
    words = _fit(_wordmark(rng, word, font), (1.3, -0.6, 1.3 + 8.0, 0.6))
    glyph_kind = rng.integers(3)
    if glyph_kind == 0:
        glyph = _monogram(rng, word, font)
    elif glyph_kind == 1:  # a ring
        glyph = _join(MplPath.circle((0, 0), 1.0), MplPath.circle((0, 0), float(rng.uniform(0.5, 0.8))))
    else:
        glyph = _shape(_SHAPES[rng.integers(len(_SHAPES))])
    return word, _join(glyph, words)


def make_marks(n: int, seed: int | tuple[int, ...] | list[int] = 0) -> list[Mark]:
    """``n`` made-up marks, styles in turn, each with a distinct name; the same ``seed`` gives the same marks."""
    rng = np.random.default_rng(seed)
    marks: list[Mark] = []
    seen: set[str] = set()
    while len(marks) < n:
        style = STYLES[len(marks) % len(STYLES)]
        word, path = _mark(rng, style)
        if word in seen:
            continue
        seen.add(word)
        title = word.title()
        marks.append(Mark(f"{_SLUG_PREFIX}{len(marks)}-{word}", title, _colour(rng), _svg(path, title), style))
    return marks
