from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from survey.generator import ANOMALOUS, CLASS_FRACTIONS, INTERESTING, class_counts, generate


def _read_all(folder: Path) -> tuple[Table, list[np.ndarray]]:
    cat = Table.read(folder / "catalog.fits")
    return cat, [fits.getdata(folder / r["file"], int(r["hdu"])) for r in cat]


def test_catalog_columns_and_truth(survey_dir: Path) -> None:
    cat = Table.read(survey_dir / "catalog.fits")
    for col in ("id", "ra", "dec", "file", "hdu", "morphology", "is_anomaly", "interesting", "tags"):
        assert col in cat.colnames
    assert len(set(cat["id"])) == len(cat)
    morph = np.asarray(cat["morphology"]).astype(str)
    assert set(morph) <= set(CLASS_FRACTIONS)
    assert np.array_equal(np.asarray(cat["interesting"]), np.isin(morph, list(INTERESTING)))
    assert np.array_equal(np.asarray(cat["is_anomaly"]), np.isin(morph, list(ANOMALOUS)))
    assert all(t == "#diffuse" for t in cat["tags"][morph == "diffuse"])


@pytest.mark.parametrize("n", [240, 1000, 5000, 12345])
def test_class_counts_follow_fractions(n: int) -> None:
    counts = class_counts(n)
    assert sum(counts.values()) == n
    for cls, frac in CLASS_FRACTIONS.items():
        assert abs(counts[cls] - frac * n) <= 1


def test_generated_counts_within_tolerance(survey_dir: Path) -> None:
    cat = Table.read(survey_dir / "catalog.fits")
    counts = Counter(np.asarray(cat["morphology"]).astype(str))
    for cls, frac in CLASS_FRACTIONS.items():
        assert abs(counts[cls] - frac * len(cat)) <= 1, cls


def test_cutouts_are_finite_with_valid_headers(survey_dir: Path) -> None:
    cat, images = _read_all(survey_dir)
    for row, img in zip(cat[:40], images[:40]):
        assert img.shape == (3, 64, 64) and img.dtype.kind == "f"
        assert np.isfinite(img).all()
        hdr = fits.getheader(survey_dir / row["file"], int(row["hdu"]))
        assert hdr["BUNIT"] == "nanomaggy"
        assert [hdr[f"BAND{i}"] for i in (1, 2, 3)] == ["g", "r", "z"]
        w = WCS(hdr, naxis=2)
        ra, dec = w.pixel_to_world_values(31.5, 31.5)
        assert ra == pytest.approx(row["ra"], abs=1e-6) and dec == pytest.approx(row["dec"], abs=1e-6)


def test_colours_differ_between_classes(survey_dir: Path) -> None:
    cat = Table.read(survey_dir / "catalog.fits")
    gr = np.asarray(cat["mag_g"] - cat["mag_r"])
    morph = np.asarray(cat["morphology"]).astype(str)
    spirals = np.isin(morph, ["spiral_2arm", "spiral_multiarm"])
    assert np.median(gr[morph == "elliptical"]) > np.median(gr[spirals]) + 0.2


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    generate(12, 5, tmp_path / "a", workers=1, progress=False)
    generate(12, 5, tmp_path / "b", workers=2, progress=False)
    generate(12, 6, tmp_path / "c", workers=1, progress=False)
    (ca, ia), (cb, ib), (cc, ic) = (_read_all(tmp_path / x) for x in "abc")
    assert ca.as_array().tobytes() == cb.as_array().tobytes()
    assert all(np.array_equal(x, y) for x, y in zip(ia, ib))
    assert not all(np.array_equal(x, y) for x, y in zip(ia, ic))


def test_rejects_empty_survey(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(0, 0, tmp_path)
