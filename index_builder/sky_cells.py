"""The survey's positions in HEALPix cells, for RA/Dec look-ups that open at once at any survey size.

Built with the index: the rows with a position, ordered by their HEALPix cell (nested scheme), beside the sorted
cell numbers, both memory-mapped by the server. A cone search asks astropy-healpix for the cells the cone
touches, finds each cell's rows by bisection and measures the exact separations of those few rows only: no tree
built at start-up, nothing per galaxy in Python.

The resolution is chosen so that a cell holds a few galaxies on average (``PER_CELL``), whatever the survey's
size; a dense field puts more in a cell, which only lengthens that cell's exact pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix

from survey.store import Store
from survey.workdir import SKY_CELLS, SKY_INFO, SKY_ROWS, Workdir, atomic_path, write_text

PER_CELL = 4  # galaxies a cell holds on average
MAX_NSIDE = 2**20  # cells of 0.2 arcsec: finer cannot help a look-up


def nside_for(count: int) -> int:
    """The power of two whose 12 nside^2 cells hold about ``PER_CELL`` galaxies each."""
    nside = 1
    while 12 * nside * nside * PER_CELL < count and nside < MAX_NSIDE:
        nside *= 2
    return nside


def _ordered(ra: np.ndarray, dec: np.ndarray, block: int = 1_000_000) -> tuple[int, np.ndarray, np.ndarray]:
    """(nside, the rows with a position in cell order, their cells), a block of rows at a time."""
    finite = np.zeros(len(ra), bool)
    for lo in range(0, len(ra), block):
        r, d = np.asarray(ra[lo : lo + block], np.float64), np.asarray(dec[lo : lo + block], np.float64)
        finite[lo : lo + block] = np.isfinite(r) & np.isfinite(d) & (np.abs(d) <= 90)
    rows = np.flatnonzero(finite)
    pixels = HEALPix(nside=nside_for(len(rows)), order="nested")
    cells = np.empty(len(rows), np.int64)
    for lo in range(0, len(rows), block):
        part = rows[lo : lo + block]
        cells[lo : lo + block] = pixels.lonlat_to_healpix(np.asarray(ra[part], np.float64) * u.deg,
                                                          np.asarray(dec[part], np.float64) * u.deg)
    order = np.argsort(cells, kind="stable")
    return pixels.nside, rows[order], cells[order]


def build_for_store(workdir: Path) -> dict:
    """``build`` from the positions in the workdir's store catalog (memory-mapped: read a block at a time)."""
    catalog = Store(Workdir(workdir).store).catalog
    ra, dec = (catalog[c] if c in catalog.colnames else np.full(len(catalog), np.nan) for c in ("ra", "dec"))
    return build(workdir, np.asarray(ra), np.asarray(dec))


def build(workdir: Path, ra: np.ndarray, dec: np.ndarray) -> dict:
    """Write the cell order of the rows with a position (degrees; NaN: none) and return its summary."""
    nside, rows, cells = _ordered(ra, dec)
    workdir = Path(workdir)
    with atomic_path(workdir / SKY_ROWS) as tmp:
        np.save(tmp, rows)
    with atomic_path(workdir / SKY_CELLS) as tmp:
        np.save(tmp, cells)
    summary = {"nside": nside, "order": "nested", "count": int(len(rows)), "survey_count": int(len(ra))}
    write_text(workdir / SKY_INFO, json.dumps(summary))
    return summary


@dataclass
class SkyCells:
    """The saved cell order, memory-mapped: ``near(ra, dec, radius)`` gives the rows in the cells a cone touches."""

    pixels: HEALPix
    rows: np.ndarray
    cells: np.ndarray

    @classmethod
    def open(cls, workdir: Path, ra: np.ndarray, dec: np.ndarray) -> SkyCells:
        """The workdir's saved cells; made now where an older workdir has none, or none for this many galaxies
        (saved when the workdir can be written, else kept in memory)."""
        workdir = Path(workdir)
        info_path = workdir / SKY_INFO
        if not (info_path.exists() and json.loads(info_path.read_text()).get("survey_count") == len(ra)
                and (workdir / SKY_ROWS).exists() and (workdir / SKY_CELLS).exists()):
            try:
                build(workdir, ra, dec)
            except OSError:
                nside, rows, cells = _ordered(ra, dec)
                return cls(HEALPix(nside=nside, order="nested"), rows, cells)
        info = json.loads(info_path.read_text())
        rows, cells = (np.asarray(np.load(workdir / name, mmap_mode="r")) for name in (SKY_ROWS, SKY_CELLS))
        return cls(HEALPix(nside=info["nside"], order=info["order"]), rows, cells)

    def near(self, ra_deg: float, dec_deg: float, radius_arcsec: float) -> np.ndarray:
        """Rows in every cell the cone touches (a superset of those inside it). astropy-healpix's cone search can
        leave out a cell the cone only grazes, so the cone is widened by one cell's size."""
        widened = radius_arcsec * u.arcsec + self.pixels.pixel_resolution
        touched = np.unique(self.pixels.cone_search_lonlat(ra_deg * u.deg, dec_deg * u.deg, widened))
        lo, hi = np.searchsorted(self.cells, touched, "left"), np.searchsorted(self.cells, touched, "right")
        if not (hi > lo).any():
            return np.empty(0, np.int64)
        return np.concatenate([self.rows[a:b] for a, b in zip(lo, hi) if b > a])
