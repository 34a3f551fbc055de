"""Each packed cutout keeps its sky coordinates: the WCS of the source file, carried through crop and resample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from survey.cutout_wcs import celestial, crop_box
from survey.ingest import ingest
from survey.store import Store, append


def _source_wcs(survey_dir: Path, row) -> WCS:
    return celestial(fits.getheader(survey_dir / row["file"], int(row["hdu"])))


@pytest.mark.parametrize(("crop", "size"), [(1.0, None), (0.5, 24), (0.35, 64)])
def test_packed_pixels_point_where_the_source_pixels_they_cover_point(survey_dir: Path, tmp_path: Path,
                                                                      crop: float, size: int | None) -> None:
    ingest(survey_dir / "catalog.fits", tmp_path / "s", progress=False, crop=crop, size=size)
    store = Store(tmp_path / "s")
    height, width = fits.getdata(survey_dir / store.catalog[0]["file"], int(store.catalog[0]["hdu"])).shape[-2:]
    y0, x0, rows, cols = crop_box(height, width, crop)
    n = store.images.shape[-1]
    packed = np.array([[0, 0], [n - 1, 0], [n // 2, n // 3], [n - 1, n - 1]], float)  # (x, y), 0-based
    # The centre of packed pixel p covers source pixels from x0 + f p to x0 + f (p + 1): its centre.
    source = np.column_stack([x0 + (packed[:, 0] + 0.5) * cols / n - 0.5, y0 + (packed[:, 1] + 0.5) * rows / n - 0.5])
    for r in (0, 7, len(store) - 1):
        ours, theirs = store.wcs(r), _source_wcs(survey_dir, store.catalog[r])
        got, want = ours.pixel_to_world(*packed.T), theirs.pixel_to_world(*source.T)
        assert got.separation(want).arcsec.max() < 1e-6
    assert store.meta["wcs"]["CTYPE1"] == "RA---TAN"


def test_the_galaxy_sits_at_the_packed_cutouts_centre(survey_dir: Path, tmp_path: Path) -> None:
    ingest(survey_dir / "catalog.fits", tmp_path / "s", progress=False, crop=0.5, size=20)
    store = Store(tmp_path / "s")
    for r in range(0, len(store), 37):
        x, y = store.wcs(r).world_to_pixel_values(float(store.catalog["ra"][r]), float(store.catalog["dec"][r]))
        assert abs(x - 9.5) < 0.05 and abs(y - 9.5) < 0.05  # the demo's galaxies sit at the stamp's centre


def test_appended_rows_keep_their_own_wcs_and_a_survey_without_one_has_none(survey_dir: Path,
                                                                           tmp_path: Path) -> None:
    ingest(survey_dir / "catalog.fits", tmp_path / "s", progress=False)
    cat = Table.read(survey_dir / "catalog.fits")[5:8]
    cat["file"] = [str((survey_dir / f).resolve()) for f in cat["file"]]
    cat["id"] = ["new-a", "new-b", "new-c"]
    cat.write(tmp_path / "b.fits")
    ingest(tmp_path / "b.fits", tmp_path / "b", progress=False)
    append(tmp_path / "s", tmp_path / "b")
    store, batch = Store(tmp_path / "s"), Store(tmp_path / "b")
    assert np.allclose(store.wcs(len(store) - 1).wcs.crval, batch.wcs(2).wcs.crval)
    assert np.allclose(store.wcs(len(store) - 1).wcs.crval, store.wcs(7).wcs.crval)  # the same source cutout

    no_wcs = tmp_path / "plain"
    no_wcs.mkdir()
    fits.PrimaryHDU(np.ones((3, 16, 16), np.float32)).writeto(no_wcs / "a.fits")
    Table({"id": ["a"], "file": ["a.fits"]}).write(no_wcs / "catalog.fits")
    ingest(no_wcs / "catalog.fits", tmp_path / "p", progress=False)
    assert Store(tmp_path / "p").wcs(0) is None and Store(tmp_path / "p").meta["wcs"] is None
