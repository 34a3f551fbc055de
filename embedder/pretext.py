"""Auxiliary pretext targets (after Martinazzo et al. 2021): catalog properties regressed from the representation.

Magnitudes, colours and sizes are cheap to measure and tell the encoder what physically matters, without any
morphological label. Targets are standardised per column; missing or non-finite values are left out of the
loss rather than guessed.
"""

from __future__ import annotations

import re

import numpy as np
from astropy.table import Table

SIZE_COLUMNS = ("r50", "size", "hlr", "half_light_radius", "petroR50_r", "flux_radius")
_MAG = re.compile(r"^mag_(\w+)$")


def pretext_columns(catalog: Table, requested: str) -> list[str]:
    """Columns to regress: ``auto`` (every ``mag_*`` plus a size column) or a comma-separated list."""
    names = catalog.colnames
    if requested == "auto":
        cols = [c for c in names if _MAG.match(c)] + [c for c in SIZE_COLUMNS if c in names][:1]
        if not cols:
            raise ValueError("the catalog has no mag_<band> or size column for the pretext head; "
                             "name the columns with --pretext col1,col2 or leave the flag out")
        return cols
    cols = [c.strip() for c in requested.split(",") if c.strip()]
    missing = [c for c in cols if c not in names]
    if missing:
        raise ValueError(f"pretext column(s) {', '.join(missing)} not in the catalog ({', '.join(names)})")
    return cols


def pretext_targets(catalog: Table, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """(N, T) standardised targets (NaN where unknown) and their names; adjacent magnitudes add their colour."""
    values, names = [], []
    for c in columns:
        try:
            col = np.ma.filled(np.ma.asarray(catalog[c], dtype=np.float64), np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"pretext column {c!r} is not numeric") from exc
        values.append(col)
        names.append(c)
    mags = [(c, v) for c, v in zip(names, values) if _MAG.match(c)]
    for (a, va), (b, vb) in zip(mags, mags[1:]):
        values.append(va - vb)
        names.append(f"{_MAG.match(a)[1]}-{_MAG.match(b)[1]}")
    y = np.stack(values, axis=1)
    y[~np.isfinite(y)] = np.nan
    mean, std = np.nanmean(y, axis=0), np.nanstd(y, axis=0)
    if not np.all(np.isfinite(mean)):
        empty = [n for n, m in zip(names, mean) if not np.isfinite(m)]
        raise ValueError(f"pretext column(s) {', '.join(empty)} hold no finite value")
    return ((y - mean) / np.where(std > 0, std, 1.0)).astype(np.float32), names
