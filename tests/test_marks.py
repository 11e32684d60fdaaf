"""Made-up marks (training.marks): reproducible, distinct, drawn like simple-icons icons, never a brand."""

from __future__ import annotations

import numpy as np
from PIL import Image

from training import marks, render


def _alpha(mark: marks.Mark, size: int = 128) -> np.ndarray:
    return np.asarray(render.render_logo(mark, size))[..., 3]


def test_made_up_marks_are_reproducible_distinct_and_of_every_style():
    made = marks.make_marks(12, seed=[0, 4])
    assert made == marks.make_marks(12, seed=[0, 4])
    assert made != marks.make_marks(12, seed=[1, 4])
    assert len({m.slug for m in made}) == len({m.title for m in made}) == 12
    assert [m.style for m in made] == list(marks.STYLES) * 4
    brands = {icon.slug for icon in render.list_icons()}
    assert not brands & {m.slug for m in made}  # no made-up mark shares a brand's slug
    assert all(len(m.hex) == 6 and int(m.hex, 16) >= 0 for m in made)


def test_made_up_marks_render_like_icons():
    """Each mark is one even-odd path in a 24 x 24 box: the renderers draw it in its colour, filling part of the
    square, and a monogram's letters are knocked out of its shape."""
    made = marks.make_marks(9, seed=0)
    for mark in made:
        assert mark.svg.count("<path ") == 1 and 'viewBox="0 0 24 24"' in mark.svg
        alpha = _alpha(mark)
        coverage = (alpha > 128).mean()
        assert 0.02 < coverage < 0.97, (mark.title, coverage)  # never an empty or a solid square
        ys, xs = np.nonzero(alpha > 128)
        # fitted to the box: the mark spans the width or the height of the square
        assert max(xs.max() - xs.min(), ys.max() - ys.min()) > 0.9 * alpha.shape[0]
        for variant in render.REFERENCE_VARIANTS:
            ref = render.render_reference(mark, variant)
            assert isinstance(ref, Image.Image) and np.asarray(ref).std() > 10  # the mark shows on its background
    logo = np.asarray(render.render_logo(made[0], 64))
    ink = logo[logo[..., 3] > 250][:, :3]
    assert np.abs(ink.astype(int) - render.hex_to_rgb(made[0].hex)).max() <= 2  # drawn in its own colour
    for mark in (m for m in made if m.style == "monogram"):
        centre = _alpha(mark)[40:88, 40:88]
        assert (centre > 200).any() and (centre < 50).any(), mark.title  # shape and knocked-out letters


def test_made_up_marks_come_from_bundled_fonts():
    fonts = marks._fonts()
    assert len(fonts) >= 10 and all(f.endswith(".ttf") for f in fonts)
    assert not any("STIXSiz" in f or "cmex" in f or "LastResort" in f for f in fonts)  # symbol fonts draw no words
