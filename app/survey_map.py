"""The survey map drawn on the server: every galaxy of the 2-D UMAP (``index_builder.survey_map``) binned into the
pixels of the requested view, so a view of 10^6 galaxies costs one histogram, whatever the zoom.

A view is coloured by density, by a catalog column or the anomaly score (its mean in each pixel; a text column's
most frequent value), or draws chosen galaxies on top (a tag's members and candidates, a researcher's ratings, the
query galaxy and its look-alikes). Colours are matplotlib's colour maps; the image is a PNG from Pillow.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.path import Path as MplPath
from PIL import Image, ImageDraw
from scipy.spatial import cKDTree

from survey.workdir import SURVEY_MAP, SURVEY_MAP_INFO

MAX_PIXELS = 1024  # a side of the largest image drawn
CATEGORIES = 10  # a text column's most frequent values get their own colour (tab10); the rest are grey
BACKGROUND = (17, 17, 17)


@dataclass(frozen=True)
class View:
    """The map's data window ``x0 < x1``, ``y0 < y1`` drawn into ``width`` x ``height`` pixels (y up)."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = 512
    height: int = 512

    def __post_init__(self) -> None:
        if not (np.isfinite([self.x0, self.x1, self.y0, self.y1]).all() and self.x0 < self.x1
                and self.y0 < self.y1):
            raise ValueError("a map view needs finite x0 < x1 and y0 < y1")
        if not (16 <= self.width <= MAX_PIXELS and 16 <= self.height <= MAX_PIXELS):
            raise ValueError(f"a map image is 16 to {MAX_PIXELS} pixels a side")

    def pixels(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column and row (0 at the top) of each point, and which points fall inside the view."""
        col = np.floor((xy[:, 0] - self.x0) / (self.x1 - self.x0) * self.width).astype(np.int64)
        row = np.floor((self.y1 - xy[:, 1]) / (self.y1 - self.y0) * self.height).astype(np.int64)
        inside = (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        return col, row, inside


class SurveyMap:
    """The saved map of one workdir, opened memory-mapped; None from ``load`` where the workdir has none."""

    def __init__(self, coords: np.ndarray, info: dict) -> None:
        self.coords, self.info = coords, info
        self.bounds = tuple(info["bounds"])

    @classmethod
    def load(cls, workdir: Path, count: int) -> SurveyMap | None:
        workdir = Path(workdir)
        if not (workdir / SURVEY_MAP).exists() or not (workdir / SURVEY_MAP_INFO).exists():
            return None
        coords = np.load(workdir / SURVEY_MAP, mmap_mode="r")
        if coords.shape != (count, 2):
            return None  # made before galaxies were added: rebuild it (galsearch index)
        return cls(coords, json.loads((workdir / SURVEY_MAP_INFO).read_text()))

    @cached_property
    def _tree(self) -> cKDTree:
        """Built on the first hover or click, not at start-up."""
        return cKDTree(np.nan_to_num(np.asarray(self.coords, np.float64), nan=np.inf))

    def nearest(self, x: float, y: float, radius: float) -> int | None:
        """The row of the galaxy nearest (x, y) within ``radius`` map units, or None."""
        distance, row = self._tree.query([x, y], distance_upper_bound=radius)
        return int(row) if np.isfinite(distance) else None

    def inside(self, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        """Rows of the galaxies inside the box, in survey order."""
        xy = self.coords
        return np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))

    def inside_polygon(self, vertices: np.ndarray) -> np.ndarray:
        """Rows of the galaxies inside the closed polygon ``vertices`` (n, 2) (a lasso), in survey order: the
        polygon's bounding box first, so the exact test runs on the few galaxies near it."""
        (x0, y0), (x1, y1) = vertices.min(axis=0), vertices.max(axis=0)
        near = self.inside(x0, x1, y0, y1)
        if not len(near):
            return near
        return near[MplPath(vertices).contains_points(np.asarray(self.coords[near], np.float64))]

    def render(self, view: View, values: np.ndarray | None = None, labels: list[str] | None = None,
               marks: list[tuple[np.ndarray, tuple[int, int, int], int]] = ()) -> bytes:
        """The view as a PNG: density alone, or coloured by ``values`` (one per row: numbers, NaN unknown; or codes
        into ``labels``, -1 for the rest), with ``marks`` (rows, colour, radius in px) drawn on top."""
        col, row, inside = view.pixels(np.asarray(self.coords))
        flat = row[inside] * view.width + col[inside]
        size = view.width * view.height
        count = np.bincount(flat, minlength=size).astype(np.float64)
        seen = count > 0
        shade = np.zeros(size)
        shade[seen] = np.log1p(count[seen]) / np.log1p(count.max()) if seen.any() else 0
        rgb = np.zeros((size, 3))
        if values is None:
            rgb[seen] = colormaps["magma"](0.25 + 0.75 * shade[seen])[:, :3]
        elif labels is not None:
            codes = np.asarray(values)[inside]
            votes = np.zeros((len(labels) + 1, size))
            for c in range(-1, len(labels)):
                votes[c + 1] = np.bincount(flat[codes == c], minlength=size)
            winner = votes.argmax(0) - 1
            palette = np.vstack([[0.5, 0.5, 0.5], colormaps["tab10"](np.arange(CATEGORIES))[:, :3]])
            rgb[seen] = palette[np.clip(winner[seen] + 1, 0, CATEGORIES)]
            rgb[seen] *= (0.45 + 0.55 * shade[seen])[:, None]
        else:
            v = np.asarray(values, np.float64)[inside]
            known = np.isfinite(v)
            total = np.bincount(flat[known], weights=v[known], minlength=size)
            n = np.bincount(flat[known], minlength=size)
            mean = np.divide(total, n, out=np.full(size, np.nan), where=n > 0)
            lo, hi = np.nanpercentile(v[known], [2, 98]) if known.any() else (0.0, 1.0)
            scaled = np.clip((mean - lo) / (hi - lo or 1.0), 0, 1)
            coloured = seen & np.isfinite(mean)
            rgb[coloured] = colormaps["viridis"](scaled[coloured])[:, :3]
            rgb[seen & ~coloured] = 0.35
            rgb[seen] *= (0.45 + 0.55 * shade[seen])[:, None]
        pixels = (rgb * 255).astype(np.uint8).reshape(view.height, view.width, 3)
        seen = seen.reshape(view.height, view.width)
        if len(flat) < size // 16:  # a sparse view: each galaxy a 2 x 2 dot, not a pixel lost in the dark
            for dy, dx in ((0, 1), (1, 0), (1, 1)):
                spread = np.zeros_like(seen)
                spread[dy:, dx:] = seen[: view.height - dy, : view.width - dx] & ~seen[dy:, dx:]
                pixels[spread] = pixels[np.roll(np.roll(spread, -dy, 0), -dx, 1)]
                seen = seen | spread
        pixels[~seen] = BACKGROUND
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        xy = np.asarray(self.coords)
        for rows, colour, radius in marks:
            rows = np.asarray(rows, int)
            if not len(rows):
                continue
            c, r, ok = view.pixels(xy[rows])
            for cx, cy in zip(c[ok], r[ok]):
                draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=colour, width=2)
        if labels:
            _legend(draw, labels, view)
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)  # speed over size: a view is drawn for one look
        return buf.getvalue()


def _legend(draw: ImageDraw.ImageDraw, labels: list[str], view: View) -> None:
    """A text column's colours, in the image's top-left corner."""
    palette = (np.asarray(colormaps["tab10"](np.arange(CATEGORIES))[:, :3]) * 255).astype(int)
    for i, label in enumerate([*labels, "other"]):
        colour = tuple(palette[i]) if i < len(labels) else (128, 128, 128)
        y = 4 + 13 * i
        if y + 12 > view.height:
            break
        draw.rectangle([4, y + 2, 12, y + 10], fill=colour)
        draw.text((16, y), label[:24], fill=(230, 230, 230))


def categorical(column: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A text column as codes into its ``CATEGORIES`` most frequent values (-1: another value or blank)."""
    text = np.char.strip(np.ma.filled(np.ma.asarray(column).astype(str), ""))
    values, inverse, counts = np.unique(text, return_inverse=True, return_counts=True)
    order = [i for i in np.argsort(-counts, kind="stable") if values[i] != ""][:CATEGORIES]
    code_of = np.full(len(values), -1)
    code_of[order] = np.arange(len(order))
    return code_of[inverse.ravel()], [str(values[i]) for i in order]
