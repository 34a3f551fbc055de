from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from survey.catalogs import IngestError
from survey.ingest import ingest
from survey.store import Store


@pytest.fixture()
def damaged_survey(survey_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of 12 demo galaxies with one missing, one corrupt, one all-NaN, one wrong-shape and one part-NaN, two
    ids no URL can address, and one IAU name with a space, '.' and '+'."""
    cat = Table.read(survey_dir / "catalog.fits")[:12]
    root = tmp_path / "survey"
    (root / "cutouts").mkdir(parents=True)
    cat["file"] = [f"cutouts/{r['id']}.fits" for r in cat]
    src = Table.read(survey_dir / "catalog.fits")[:12]
    for r, s in zip(cat, src):
        fits.writeto(root / r["file"], fits.getdata(survey_dir / s["file"], int(s["hdu"])))
    cat["hdu"] = 0
    ids = [str(i) for i in cat["id"]]
    (root / cat[0]["file"]).unlink()
    (root / cat[1]["file"]).write_bytes(b"SIMPLE  = this is not a FITS file")
    fits.writeto(root / cat[2]["file"], np.full((3, 64, 64), np.nan, np.float32), overwrite=True)
    fits.writeto(root / cat[3]["file"], np.zeros((3, 32, 32), np.float32), overwrite=True)
    part = fits.getdata(root / cat[4]["file"]).copy()
    part[0, :5] = np.nan
    fits.writeto(root / cat[4]["file"], part, overwrite=True)
    ids[5:8] = ["a/b", "x" * 65, "SDSS J152451.22+020518.4"]
    cat["id"] = ids
    cat.write(root / "catalog.fits")
    return root, {"missing": ids[0], "corrupt": ids[1], "nan": ids[2], "shape": ids[3], "partnan": ids[4],
                  "slash": ids[5], "long": ids[6], "iau": ids[7]}


def test_ingest_skips_and_reports_bad_records(damaged_survey, tmp_path: Path) -> None:
    root, ids = damaged_survey
    meta = ingest(root / "catalog.fits", tmp_path / "store", progress=False)
    assert meta["count"] == 6 and meta["skipped"] == 6
    with open(tmp_path / "store" / "ingest_report.csv") as fh:
        report = {r["id"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(report) == {ids["missing"], ids["corrupt"], ids["nan"], ids["shape"], ids["partnan"], ids["slash"],
                           ids["long"]}
    assert report[ids["slash"]].startswith("id cannot be served") and "64 characters" in report[ids["long"]]
    assert report[ids["partnan"]] == "kept: 320 non-finite pixels set to 0" and meta["masked"] == 1
    assert report[ids["missing"]] == "missing file"
    assert "unreadable" in report[ids["corrupt"]]
    assert "finite" in report[ids["nan"]]
    assert "shape" in report[ids["shape"]]
    store = Store(tmp_path / "store")
    assert store.images.shape == (6, 3, 64, 64)
    assert np.isfinite(store.images).all()
    assert ids["partnan"] in set(store.ids) and ids["iau"] in set(store.ids)
    assert not {ids["missing"], ids["corrupt"], ids["nan"], ids["shape"]} & set(store.ids)
    assert store.bands == ["band0", "band1", "band2"]  # no BANDS header in these files


def test_store_matches_source_pixels(survey_dir: Path, tmp_path: Path) -> None:
    ingest(survey_dir / "catalog.fits", tmp_path / "s", progress=False)
    store = Store(tmp_path / "s")
    row = store.catalog[7]
    assert np.array_equal(store.images[7], fits.getdata(survey_dir / row["file"], int(row["hdu"])))
    assert store.bands == ["g", "r", "z"]
    assert all(0 < s < 1 for s in store.noise)


def test_ingest_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        ingest(tmp_path / "nope.fits", tmp_path / "o")
    Table({"id": [1], "ra": [1.0]}).write(tmp_path / "c.fits")
    with pytest.raises(IngestError, match="file"):
        ingest(tmp_path / "c.fits", tmp_path / "o")
    Table({"id": [1], "file": ["missing.fits"]}).write(tmp_path / "d.fits")
    with pytest.raises(IngestError, match="no usable"):
        ingest(tmp_path / "d.fits", tmp_path / "o", progress=False)
    shutil.rmtree(tmp_path / "o")


def test_ingest_png_and_jpeg_cutouts_from_a_csv_catalog(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "raster"
    (root / "images").mkdir(parents=True)
    yy, xx = np.mgrid[0:100, 0:100]
    rows = []
    for i in range(6):
        blob = np.exp(-((xx - 50) ** 2 + (yy - 50) ** 2) / (2 * (5 + i) ** 2))
        rgb = np.stack([blob * 250, blob * 120, blob * 40], axis=2).astype(np.uint8)  # a red galaxy
        name = f"images/{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rgb).save(root / name)
        rows.append({"id": 500 + i, "file": name, "spiral": i % 2})
    (root / rows[5]["file"]).unlink()
    (root / "images/bad.png").write_bytes(b"\x89PNG not really")
    rows.append({"id": 999, "file": "images/bad.png", "spiral": 0})
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(root / "images/grey.png")
    rows.append({"id": 998, "file": "images/grey.png", "spiral": 0})
    Table(rows=rows).write(root / "catalog.csv")

    meta = ingest(root / "catalog.csv", tmp_path / "store", progress=False, crop=0.5, size=20)
    store = Store(tmp_path / "store")
    assert meta["count"] == 5 and meta["shape"] == [3, 20, 20] and store.bands == ["B", "G", "R"]
    assert min(store.noise) >= 1 / 255
    img = store.images[0]
    assert img[2, 10, 10] > img[0, 10, 10] > 0  # red channel (stored last) brightest at the centre
    assert img[:, 10, 10].max() > img[:, 0, 0].max() and img.max() <= 1.0
    with (tmp_path / "store" / "ingest_report.csv").open() as fh:
        reasons = {r["id"]: r["reason"] for r in csv.DictReader(fh)}
    assert reasons["505"] == "missing file" and "not an image" in reasons["999"]
    assert reasons["998"] == "wrong shape (1, 20, 20), expected (3, 20, 20)"


@pytest.mark.parametrize("kwargs,message", [({"crop": 0.0}, "crop"), ({"size": 2}, "size")])
def test_ingest_rejects_bad_options(survey_dir: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        ingest(survey_dir / "catalog.fits", tmp_path / "s", progress=False, **kwargs)


def test_append_keeps_mixed_id_types_and_refuses_other_shapes(survey_dir: Path, tmp_path: Path) -> None:
    from survey.store import append

    ingest(survey_dir / "catalog.fits", tmp_path / "s", progress=False)
    cat = Table.read(survey_dir / "catalog.fits")[:3]
    cat["file"] = [str((survey_dir / f).resolve()) for f in cat["file"]]
    cat["id"] = ["new-a", "new-b", "new-c"]
    cat.write(tmp_path / "b.fits")
    ingest(tmp_path / "b.fits", tmp_path / "b", progress=False)
    added, duplicates = append(tmp_path / "s", tmp_path / "b")
    store = Store(tmp_path / "s")
    assert (added, duplicates) == (3, []) and len(store) == store.images.shape[0] == len(store.catalog)
    assert list(store.ids[-3:]) == ["new-a", "new-b", "new-c"] and store.meta["appended"] == 3
    assert np.array_equal(store.images[-1], Store(tmp_path / "b").images[-1])
    ingest(tmp_path / "b.fits", tmp_path / "small", progress=False, size=32)
    with pytest.raises(IngestError, match="--crop/--size"):
        append(tmp_path / "s", tmp_path / "small")


def test_parquet_catalog_with_its_own_column_names_and_image_folder(survey_dir: Path, tmp_path: Path) -> None:
    """A user's catalog: other column names, sexagesimal coordinates, cutouts in a separate folder, a repeated id."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from survey.catalogs import CatalogColumns

    src = Table.read(survey_dir / "catalog.fits")[:6]
    sky = SkyCoord(src["ra"], src["dec"], unit="deg")
    images = tmp_path / "elsewhere"
    images.mkdir()
    for name in set(src["file"]):
        shutil.copy(survey_dir / name, images / Path(name).name)
    objid = [int(str(i).lstrip("G") or 0) + 10 for i in src["id"]]
    objid[5] = objid[4]  # the same object twice: only the first is kept
    cat = Table({"objid": objid, "path": [Path(f).name for f in src["file"]], "ext": src["hdu"],
                 "RA": sky.ra.to_string(u.hourangle, sep=":", precision=3),
                 "DEC": sky.dec.to_string(u.deg, sep=":", precision=2, alwayssign=True),
                 "id": ["theirs"] * 6, "klass": src["morphology"]})
    (tmp_path / "cat").mkdir()
    cat.write(tmp_path / "cat" / "survey.parquet")
    columns = CatalogColumns(id="objid", file="path", hdu="ext", ra="RA", dec="DEC", labels=("klass",))
    meta = ingest(tmp_path / "cat" / "survey.parquet", tmp_path / "store", progress=False, columns=columns,
                  images_dir=images)
    store = Store(tmp_path / "store")
    assert meta["count"] == 5 and meta["skipped"] == 1 and meta["label_columns"] == ["klass"]
    assert list(store.ids) == [str(i) for i in objid[:5]]
    assert np.allclose(store.catalog["ra"], src["ra"][:5], atol=1e-4)
    assert np.allclose(store.catalog["dec"], src["dec"][:5], atol=1e-4)
    assert list(store.catalog["id_catalog"]) == ["theirs"] * 5 and "klass" in store.catalog.colnames
    with open(tmp_path / "store" / "ingest_report.csv") as fh:
        assert [r["reason"] for r in csv.DictReader(fh)] == ["duplicate id"]
    with pytest.raises(IngestError, match="lacks column.*morph.*--label-col"):
        ingest(tmp_path / "cat" / "survey.parquet", tmp_path / "s2", progress=False,
               columns=CatalogColumns(id="objid", file="path", labels=("morph",)), images_dir=images)


def test_png_and_jpeg_surveys_keep_their_own_pixels_for_display_across_parts_and_appends(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from survey.store import append

    rng = np.random.default_rng(0)
    originals = {}

    def survey(name: str, ids: range) -> Path:
        root = tmp_path / name
        root.mkdir()
        rows = []
        for i in ids:
            rgb = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
            file = f"{i}.{'png' if i % 2 else 'jpg'}"
            Image.fromarray(rgb).save(root / file, quality=95)
            originals[i] = np.asarray(Image.open(root / file).convert("RGB"))
            rows.append({"id": i, "file": file})
        Table(rows=rows).write(root / "catalog.csv")
        return root / "catalog.csv"

    meta = ingest(survey("a", range(5)), tmp_path / "store", progress=False, crop=0.8, size=24, chunk_rows=2)
    ingest(survey("b", range(5, 8)), tmp_path / "batch", progress=False, crop=0.8, size=24)
    assert append(tmp_path / "store", tmp_path / "batch")[0] == 3
    store = Store(tmp_path / "store")
    assert meta["display"] and meta["raster"] and store.meta["display"] and len(store) == 8
    assert store.wcs(0) is None and not (tmp_path / "store" / "wcs.npy").exists()  # JPEGs carry no WCS
    for row, gid in enumerate(store.ids.astype(int)):
        shown = Image.open(io.BytesIO(store.display(row)))
        assert shown.format == ("PNG" if gid % 2 else "JPEG") and shown.size == (240, 240)  # 300 px, cropped
        centre = originals[gid][30:270, 30:270].astype(float)
        error = np.abs(np.asarray(shown.convert("RGB"), float) - centre).mean()
        assert error == 0 if gid % 2 else error < 12  # PNG exactly; JPEG as near as noise re-encoded allows
    big = ingest(survey("c", range(8, 9)), tmp_path / "big", progress=False)  # 300 px: shrunk to 256
    assert big["display"] and Image.open(io.BytesIO(Store(tmp_path / "big").display(0))).size == (256, 256)


def test_flux_surveys_keep_no_display_copy(survey_dir: Path, tmp_path: Path) -> None:
    meta = ingest(survey_dir / "catalog.fits", tmp_path / "s", progress=False)
    assert meta["display"] is False and meta["raster"] is False and Store(tmp_path / "s").display(0) is None
