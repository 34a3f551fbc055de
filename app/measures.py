"""The classical morphometry the embedder measured for every galaxy (``morphometry.npy``), for pages and exports.

Astronomers read asymmetry, concentration, Gini and M20 directly; the server shows them beside the catalog row
and adds them to tag exports. A workdir embedded without them simply has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from survey.workdir import MORPHOMETRY, MORPHOMETRY_FILE


@dataclass(frozen=True)
class Measures:
    values: np.ndarray  # (N, len(names)) float32, row-aligned with the store; NaN: not measurable
    names: tuple[str, ...]
    units: tuple[str, ...]
    descriptions: tuple[str, ...]

    @classmethod
    def load(cls, workdir: Path, count: int) -> Measures | None:
        """The workdir's measurements, or None where there are none or they do not cover the survey."""
        workdir = Path(workdir)
        if not (workdir / MORPHOMETRY).exists() or not (workdir / MORPHOMETRY_FILE).exists():
            return None
        values = np.asarray(np.load(workdir / MORPHOMETRY, mmap_mode="r"))  # pages in as rows are read
        with np.load(workdir / MORPHOMETRY_FILE) as saved:
            names, units = tuple(map(str, saved["names"])), tuple(map(str, saved["units"]))
            descriptions = tuple(map(str, saved["descriptions"]))
        if values.shape != (count, len(names)):
            return None
        return cls(values, names, units, descriptions)

    def of(self, row: int) -> dict[str, float | None]:
        """One galaxy's values (None where not measurable), for JSON and the detail page."""
        return {n: (round(float(v), 4) if np.isfinite(v) else None) for n, v in zip(self.names, self.values[row])}

    def add_columns(self, table: Table, rows: list[int | None]) -> None:
        """Add a column per statistic, with unit and description, to ``table`` whose galaxies sit at store
        ``rows`` (None: a galaxy no longer in the survey, NaN there)."""
        known = np.array([r is not None for r in rows], bool)
        picked = np.full((len(rows), len(self.names)), np.nan, np.float32)
        picked[known] = self.values[np.array([r for r in rows if r is not None], int)]
        for j, (name, unit, text) in enumerate(zip(self.names, self.units, self.descriptions)):
            table[name] = picked[:, j]
            table[name].unit, table[name].description = unit or None, text
