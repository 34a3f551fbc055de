"""Sky positions: find a galaxy by RA/Dec, and drop repeated detections of one object from a list of look-alikes.

Positions are parsed the way astronomers type them: decimal degrees (``150.1167 2.2058``) or sexagesimal, RA in
hours (``10:00:28.0 +02:12:21``, ``10h00m28s +2d12m21s``). Matching uses astropy's sky k-d tree, built once.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, angular_separation


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
    """The survey's positions (rows without coordinates left out), for nearest-object look-ups."""

    def __init__(self, ra: np.ndarray, dec: np.ndarray) -> None:
        self.ra, self.dec = np.asarray(ra, float), np.asarray(dec, float)
        self.rows = np.flatnonzero(np.isfinite(self.ra) & np.isfinite(self.dec))
        self.coords = SkyCoord(self.ra[self.rows], self.dec[self.rows], unit="deg") if len(self.rows) else None

    def nearest(self, position: SkyCoord, radius_arcsec: float) -> tuple[int, float] | None:
        """(row, separation in arcsec) of the closest galaxy within the radius, or None."""
        if self.coords is None:
            return None
        idx, sep, _ = position.match_to_catalog_sky(self.coords)
        idx, sep = int(np.ravel(idx)[0]), float(np.ravel(sep.arcsec)[0])
        return (int(self.rows[idx]), sep) if sep <= radius_arcsec else None

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
