"""Sky positions: find a galaxy by RA/Dec, and drop repeated detections of one object from a list of look-alikes.

Positions are parsed the way astronomers type them: decimal degrees (``150.1167 2.2058``) or sexagesimal, RA in
hours (``10:00:28.0 +02:12:21``, ``10h00m28s +2d12m21s``). Matching goes through the HEALPix cells saved with the
index (``index_builder.sky_cells``): only the galaxies in the cells a search cone touches are measured.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, angular_separation

from index_builder.sky_cells import SkyCells


def parse_position(ra: str, dec: str) -> SkyCoord:
    """A SkyCoord from typed RA/Dec text; ValueError with the reason when it is not a position."""
    try:
        ra_deg, dec_deg = float(ra), float(dec)
    except ValueError:
        pass  # not two plain numbers: try sexagesimal
    else:
        if not (np.isfinite(ra_deg) and np.isfinite(dec_deg)):
            raise ValueError(f"RA {ra!r}, Dec {dec!r}: both must be finite numbers")
        try:
            return SkyCoord(ra_deg, dec_deg, unit="deg")
        except ValueError as exc:
            raise ValueError(f"RA {ra!r}, Dec {dec!r}: {exc}") from exc
    try:
        return SkyCoord(ra.strip(), dec.strip(), unit=(u.hourangle, u.deg))
    except (ValueError, TypeError, u.UnitsError) as exc:  # astropy raises TypeError for e.g. an RA ending in N
        raise ValueError(f"cannot read RA {ra!r}, Dec {dec!r}: give degrees (150.1167, 2.2058) or sexagesimal "
                         f"with RA in hours (10:00:28.0, +02:12:21)") from exc


class SkyIndex:
    """The survey's positions (degrees per store row, NaN where unknown; memory-mapped catalog columns) and their
    HEALPix cells, for nearest-object look-ups."""

    def __init__(self, ra: np.ndarray, dec: np.ndarray, cells: SkyCells) -> None:
        self.ra, self.dec, self.cells = ra, dec, cells

    @property
    def count(self) -> int:
        """Galaxies with a position."""
        return len(self.cells.rows)

    def nearest(self, position: SkyCoord, radius_arcsec: float) -> tuple[int, float] | None:
        """(row, separation in arcsec) of the closest galaxy within the radius, or None."""
        ra, dec = float(position.ra.deg), float(position.dec.deg)
        rows = np.sort(self.cells.near(ra, dec, radius_arcsec))  # in file order: fewer pages touched
        if not len(rows):
            return None
        # Plain radians: astropy's formula without the cost of Quantity arithmetic on every look-up.
        others = np.radians(np.asarray(self.ra[rows], float)), np.radians(np.asarray(self.dec[rows], float))
        sep = np.degrees(angular_separation(np.radians(ra), np.radians(dec), *others)) * 3600
        best = int(np.argmin(sep))
        return (int(rows[best]), float(sep[best])) if sep[best] <= radius_arcsec else None

    def distinct(self, query: int, rows: list[int], within_arcsec: float) -> list[int]:
        """``rows`` without those closer than ``within_arcsec`` to the query or to a row kept before them (the same
        object detected twice, e.g. in overlapping cutouts); rows without coordinates are kept."""
        kept: list[int] = []
        anchors = [query]
        for r in rows:
            if np.isfinite(self.ra[r]) and np.isfinite(self.dec[r]):
                a = np.asarray(anchors)
                sep = angular_separation(self.ra[r] * u.deg, self.dec[r] * u.deg, self.ra[a] * u.deg,
                                         self.dec[a] * u.deg).to_value(u.arcsec)
                if np.nanmin(sep) < within_arcsec:
                    continue
                anchors.append(r)
            kept.append(r)
        return kept
