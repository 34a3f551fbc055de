"""RA/Dec look-ups through HEALPix cells find what a full pass over every position finds, at the poles and across
RA = 0 too."""

from __future__ import annotations

import json
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import angular_separation

from app.sky import SkyIndex, parse_position
from index_builder import sky_cells
from index_builder.sky_cells import SkyCells, nside_for
from survey.workdir import SKY_INFO


def _positions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # Crowds where cell edges are hardest: at both poles, straddling RA = 0, and pairs a few arcsec apart.
    ra[:300], dec[:300] = rng.uniform(0, 360, 300), 89.99 + rng.uniform(0, 0.01, 300)
    ra[300:600], dec[300:600] = rng.uniform(0, 360, 300), -89.99 - rng.uniform(0, 0.01, 300)
    ra[600:900], dec[600:900] = (rng.uniform(-0.01, 0.01, 300) % 360), rng.uniform(-0.01, 0.01, 300)
    ra[900:1200], dec[900:1200] = ra[1200:1500] + rng.normal(0, 1e-3, 300) % 360, dec[1200:1500]
    ra[1500:1600] = np.nan  # no position
    return ra, dec


@pytest.mark.parametrize("radius", [1.0, 30.0, 3600.0])
def test_the_nearest_galaxy_is_the_full_pass_nearest(tmp_path: Path, radius: float) -> None:
    ra, dec = _positions(20_000)
    summary = sky_cells.build(tmp_path, ra, dec)
    assert summary["count"] == 19_900 and summary["nside"] == nside_for(19_900)
    sky = SkyIndex(ra, dec, SkyCells.open(tmp_path, ra, dec))
    rng = np.random.default_rng(1)
    known = np.flatnonzero(np.isfinite(ra))
    # Queries near galaxies (so something is in reach) and anywhere.
    at = rng.choice(known, 150)
    queries = [(ra[i] + rng.normal(0, radius / 3600 / 3), np.clip(dec[i] + rng.normal(0, radius / 3600 / 3), -90, 90))
               for i in at] + [(rng.uniform(0, 360), rng.uniform(-90, 90)) for _ in range(50)]
    for q_ra, q_dec in queries:
        sep = angular_separation(q_ra * u.deg, q_dec * u.deg, ra[known] * u.deg, dec[known] * u.deg).to_value(u.arcsec)
        best = int(np.argmin(sep))
        found = sky.nearest(parse_position(str(q_ra % 360), str(q_dec)), radius)
        if sep[best] > radius:
            assert found is None
        else:
            assert found is not None and found[0] == known[best] and found[1] == pytest.approx(sep[best], abs=1e-6)


def test_cells_are_remade_for_another_survey_and_kept_in_memory_when_unwritable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ra, dec = _positions(3000)
    assert SkyCells.open(tmp_path, ra, dec).rows.shape == (2900,)  # none saved: made and saved now
    assert json.loads((tmp_path / SKY_INFO).read_text())["survey_count"] == 3000

    def read_only(*_args) -> dict:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(sky_cells, "build", read_only)
    more_ra, more_dec = np.concatenate([ra, [10.0]]), np.concatenate([dec, [20.0]])
    cells = SkyCells.open(tmp_path, more_ra, more_dec)  # saved for 3,000 galaxies: not these 3,001
    assert cells.rows.shape == (2901,) and 3000 in cells.near(10.0, 20.0, 1.0)
    assert nside_for(0) == 1 and 12 * nside_for(10**7) ** 2 * sky_cells.PER_CELL >= 10**7
