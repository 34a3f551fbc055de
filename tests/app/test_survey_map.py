from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.survey_map import SurveyMap, View, categorical


def _map(n: int = 10_000) -> SurveyMap:
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(0, 1, (n // 2, 2)), rng.normal(5, 0.5, (n - n // 2, 2))]).astype(np.float32)
    return SurveyMap(xy, {"bounds": [float(v) for v in (*xy.min(0), *xy.max(0))]})


def test_a_view_bins_every_galaxy_and_marks_the_chosen_ones() -> None:
    drawn = _map()
    png = drawn.render(View(-4, 8, -4, 8, 120, 60))
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape == (60, 120, 3)
    lit = (image != (17, 17, 17)).any(2)
    # y is up: the second cluster (x, y ~ 5) is drawn right of and above the first (x, y ~ 0).
    assert lit[:, 90:].any() and lit[:30, 75:].any() and lit[30:, 30:45].any()
    marked = drawn.render(View(-4, 8, -4, 8, 120, 60), marks=[(np.array([0]), (255, 0, 0), 3)])
    assert (np.asarray(Image.open(io.BytesIO(marked)).convert("RGB")) == (255, 0, 0)).all(2).any()
    codes, labels = categorical(np.array(["b"] * 5 + ["a"] * 7 + [""] * 2))
    assert labels == ["a", "b"] and list(codes[:5]) == [1] * 5 and codes[-1] == -1
    text = np.where(np.arange(len(drawn.coords)) < 5000, "near", "far")
    for values, labels in ((np.asarray(drawn.coords)[:, 0], None), (*categorical(text),)):
        assert Image.open(io.BytesIO(drawn.render(View(-4, 8, -4, 8), values, labels))).size == (512, 512)


def test_nearest_and_bad_views() -> None:
    drawn = _map()
    x, y = drawn.coords[123]
    assert drawn.nearest(float(x), float(y), 1e-3) == 123
    assert drawn.nearest(100.0, 100.0, 1.0) is None
    assert len(drawn.inside(4, 6, 4, 6)) > 3000
    diamond = np.array([[5, 4], [6, 5], [5, 6], [4, 5]], float)  # |x - 5| + |y - 5| <= 1
    xy = np.asarray(drawn.coords, float)
    assert list(drawn.inside_polygon(diamond)) == list(np.flatnonzero(np.abs(xy - 5).sum(1) <= 1))
    assert len(drawn.inside_polygon(np.array([[100, 100], [101, 100], [100, 101]], float))) == 0
    for bad in ((1, 0, 0, 1), (0, 1, 0, float("nan")), (0, 1, 0, 1, 8, 8), (0, 1, 0, 1, 4096, 64)):
        with pytest.raises(ValueError):
            View(*bad)
