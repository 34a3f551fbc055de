"""Survey layouts a researcher brings: bands chosen by name from cubes, multi-extension files and one file per
band; HDF5 and NPY stacks; and catalogs ingested in chunks, resumed after a crash without duplicates."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galsearch.cli import main as cli
from survey import ingest as ingest_module
from survey.catalogs import CatalogColumns, IngestError
from survey.ingest import ingest
from survey.store import Store

BANDS = ("g", "r", "z")


def _demo_cubes(survey_dir: Path, n: int) -> tuple[Table, list[np.ndarray]]:
    cat = Table.read(survey_dir / "catalog.fits")[:n]
    return cat, [fits.getdata(survey_dir / r["file"], int(r["hdu"])) for r in cat]


def _report(store: Path) -> dict[str, str]:
    with open(store / "ingest_report.csv") as fh:
        return {r["id"]: r["reason"] for r in csv.DictReader(fh)}


def test_bands_by_name_from_cubes(survey_dir: Path, tmp_path: Path) -> None:
    cat, cubes = _demo_cubes(survey_dir, 240)
    meta = ingest(survey_dir / "catalog.fits", tmp_path / "zg", progress=False, bands=["Z", "g"])
    store = Store(tmp_path / "zg")
    assert meta["bands"] == ["z", "g"] and store.images.shape[1:] == (2, 64, 64)
    row = list(store.ids).index(str(cat["id"][5]))
    assert np.array_equal(store.images[row], cubes[5][[2, 0]])
    with pytest.raises(IngestError, match="no usable cutout") as err:
        ingest(survey_dir / "catalog.fits", tmp_path / "u", progress=False, bands=["u"])
    assert "band(s) u not in" in next(iter(_report(tmp_path / "u").values()))
    assert "see" in str(err.value)


def test_multi_extension_file_per_galaxy(survey_dir: Path, tmp_path: Path) -> None:
    """One file per galaxy, one extension per band, found by EXTNAME or FILTER whatever their order."""
    cat, cubes = _demo_cubes(survey_dir, 6)
    (tmp_path / "mef").mkdir()
    for r, cube in zip(cat, cubes):
        hdus = [fits.PrimaryHDU()]
        for b in (2, 0, 1):  # z, g, r: not the order wanted
            h = fits.ImageHDU(cube[b], name=BANDS[b].upper()) if b != 1 else fits.ImageHDU(cube[b])
            if b == 1:
                h.header["FILTER"] = "r"
            hdus.append(h)
        fits.HDUList(hdus).writeto(tmp_path / "mef" / f"{r['id']}.fits")
    Table({"id": cat["id"], "file": [f"{i}.fits" for i in cat["id"]]}).write(tmp_path / "mef" / "cat.csv")
    meta = ingest(tmp_path / "mef" / "cat.csv", tmp_path / "s", progress=False, bands=["g", "r", "z"])
    store = Store(tmp_path / "s")
    assert meta["count"] == 6 and meta["bands"] == ["g", "r", "z"]
    for i, cube in zip(cat["id"], cubes):
        assert np.array_equal(store.images[list(store.ids).index(str(i))], cube)
    meta = ingest(tmp_path / "mef" / "cat.csv", tmp_path / "all", progress=False)  # no --bands: every extension
    assert meta["bands"] == ["Z", "G", "r"] and meta["shape"] == [3, 64, 64]
    with pytest.raises(IngestError):
        ingest(tmp_path / "mef" / "cat.csv", tmp_path / "i", progress=False, bands=["i"])
    assert "not among the extensions" in next(iter(_report(tmp_path / "i").values()))


def test_one_file_per_band_through_the_cli(survey_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    """The catalog's path holds a {band} placeholder; a galaxy missing one band's file is reported, not packed."""
    cat, cubes = _demo_cubes(survey_dir, 8)
    root = tmp_path / "bands"
    root.mkdir()
    for r, cube in zip(cat, cubes):
        for b, band in enumerate(BANDS):
            fits.writeto(root / f"{r['id']}_{band}.fits", cube[b])
    (root / f"{cat['id'][3]}_z.fits").unlink()
    Table({"objid": cat["id"], "path": [f"{i}_{{band}}.fits" for i in cat["id"]]}).write(root / "cat.fits")
    cli(["ingest", "--catalog", str(root / "cat.fits"), "--out", str(tmp_path / "s"), "--id-col", "objid",
         "--file-col", "path", "--bands", "r,z"])
    store = Store(tmp_path / "s")
    assert len(store) == 7 and store.bands == ["r", "z"]
    assert np.array_equal(store.images[0], cubes[0][1:])
    assert _report(tmp_path / "s") == {str(cat["id"][3]): "missing file"}
    assert "skipped 1" in capsys.readouterr().err
    with pytest.raises(IngestError):
        ingest(root / "cat.fits", tmp_path / "nob", progress=False, columns=CatalogColumns(id="objid", file="path"))
    assert "--bands" in next(iter(_report(tmp_path / "nob").values()))


def test_legacy_survey_cube_with_band0_keywords(tmp_path: Path) -> None:
    cube = np.random.default_rng(0).normal(size=(3, 32, 32)).astype(np.float32)
    hdr = fits.Header({"BAND0": "g", "BAND1": "r", "BAND2": "z"})
    fits.writeto(tmp_path / "ls.fits", cube, hdr)
    Table({"id": ["a"], "file": ["ls.fits"]}).write(tmp_path / "cat.csv")
    meta = ingest(tmp_path / "cat.csv", tmp_path / "s", progress=False, bands=["r"])
    assert meta["bands"] == ["r"] and np.array_equal(Store(tmp_path / "s").images[0, 0], cube[1])


def test_galaxy10_style_hdf5_is_catalog_and_images(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(30, 40, 40, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "g10.h5", "w") as h5:
        h5["images"] = images
        h5["ans"] = rng.integers(0, 10, size=30).astype(np.uint8)
        h5["ra"], h5["dec"] = rng.uniform(0, 360, 30), rng.uniform(-30, 30, 30)
        h5["pxscale"] = np.full(30, 0.262)
    meta = ingest(tmp_path / "g10.h5", tmp_path / "s", progress=False, size=20, chunk_rows=7,
                  columns=CatalogColumns(labels=("ans",)))
    store = Store(tmp_path / "s")
    assert meta["count"] == 30 and meta["bands"] == ["B", "G", "R"] and meta["shape"] == [3, 20, 20]
    assert list(store.ids) == [str(i) for i in range(30)]
    assert {"ans", "ra", "dec", "pxscale"} <= set(store.catalog.colnames)
    blue = images[4, :, :, 2].astype(np.float32).reshape(20, 2, 20, 2).mean(axis=(1, 3)) / 255
    assert np.allclose(store.images[4, 0], blue, atol=1e-5)
    with pytest.raises(IngestError, match="--images-dataset"):
        ingest(tmp_path / "g10.h5", tmp_path / "x", progress=False, dataset="imgs")


def test_npy_stack_with_a_csv_catalog(tmp_path: Path) -> None:
    """A float (N, bands, y, x) stack: rows point at it by index; an index past its end is reported."""
    stack = np.random.default_rng(2).normal(size=(10, 2, 24, 24)).astype(np.float32)
    np.save(tmp_path / "stack.npy", stack)
    Table({"id": [f"s{i}" for i in range(11)], "file": ["stack.npy"] * 11,
           "hdu": [9 - i for i in range(10)] + [10]}).write(tmp_path / "cat.csv")
    meta = ingest(tmp_path / "cat.csv", tmp_path / "s", progress=False, bands=["band1"])
    store = Store(tmp_path / "s")
    assert meta["count"] == 10 and store.bands == ["band1"]
    assert np.array_equal(store.images[list(store.ids).index("s0"), 0], stack[9, 1])
    assert "outside the stack" in _report(tmp_path / "s")["s10"]


def _big_survey(tmp_path: Path, n: int) -> Path:
    """A survey of ``n`` 3x32x32 cutouts in an NPY stack, with a CSV catalog whose columns change type, one
    all-NaN cutout and one id repeated at the end."""
    rng = np.random.default_rng(3)
    stack = np.lib.format.open_memmap(tmp_path / "stack.npy", mode="w+", dtype=np.float32, shape=(n, 3, 32, 32))
    for lo in range(0, n, 500):
        stack[lo : lo + 500] = rng.normal(size=(min(500, n - lo), 3, 32, 32))
    stack[7] = np.nan
    stack.flush()
    with open(tmp_path / "cat.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "file", "flux", "note", "hdu"])
        for i in range(n):  # flux reads as integers in the first chunks, floats later; notes grow longer
            w.writerow([f"{i:06d}", "stack.npy", i if i < n // 2 else i + 0.5, "x" * (1 + i * 20 // n), ""])
        w.writerow(["000003", "stack.npy", 0, "repeat", 3])  # blank hdu: the row number; this one says 3
    return tmp_path / "cat.csv"


def test_chunked_ingest_resumes_after_a_crash_without_duplicates(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _big_survey(tmp_path, 1000)
    whole = ingest(catalog, tmp_path / "whole", progress=False, chunk_rows=100_000)
    packed: list[int] = []
    real_pack = ingest_module._Packer.pack

    def crash_at_part_4(self, i, table, start):
        if i == 4:
            raise KeyboardInterrupt  # the job is killed part-way
        packed.append(i)
        real_pack(self, i, table, start)

    monkeypatch.setattr(ingest_module._Packer, "pack", crash_at_part_4)
    with pytest.raises(KeyboardInterrupt):
        ingest(catalog, tmp_path / "s", progress=False, chunk_rows=150)
    assert packed == [0, 1, 2, 3] and not (tmp_path / "s" / "images.npy").exists()
    packed.clear()
    monkeypatch.setattr(ingest_module._Packer, "pack", lambda self, i, t, s: (packed.append(i),
                                                                             real_pack(self, i, t, s)))
    meta = ingest(catalog, tmp_path / "s", progress=False, chunk_rows=150)
    assert packed == [4, 5, 6]  # the four finished parts were not read again
    a, b = Store(tmp_path / "whole"), Store(tmp_path / "s")
    assert meta["count"] == whole["count"] == 999 and meta["skipped"] == whole["skipped"] == 2
    assert list(a.ids) == list(b.ids) and len(set(b.ids)) == 999
    assert np.array_equal(a.images, b.images)
    assert b.catalog["flux"].dtype.kind == "f" and b.catalog["flux"][0] == 0 and b.catalog["flux"][-1] == 999.5
    assert str(b.catalog["note"][-1]) == "x" * 20 and b.ids[0] == "000000"  # leading zeros kept
    assert _report(tmp_path / "s") == {"000007": "no finite pixel", "000003": "duplicate id"}
    assert not (tmp_path / "s" / ".ingest").exists()


def test_changed_options_restart_a_half_done_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _big_survey(tmp_path, 300)
    real_pack = ingest_module._Packer.pack

    def crash(self, i, table, start):
        if i == 1:
            raise KeyboardInterrupt
        real_pack(self, i, table, start)

    monkeypatch.setattr(ingest_module._Packer, "pack", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(catalog, tmp_path / "s", progress=False, chunk_rows=100)
    monkeypatch.setattr(ingest_module._Packer, "pack", real_pack)
    meta = ingest(catalog, tmp_path / "s", progress=False, chunk_rows=100, size=16)  # another size: start over
    assert meta["shape"] == [3, 16, 16] and Store(tmp_path / "s").images.shape == (299, 3, 16, 16)


def test_ingest_memory_stays_at_one_chunk(tmp_path: Path) -> None:
    """12 MB of cutouts packed 100 at a time: no cutout is held in memory beyond the one being read, so the
    peak allocation stays far below the survey's size."""
    catalog = _big_survey(tmp_path, 1000)
    ingest(catalog, tmp_path / "warm", progress=False, chunk_rows=100)  # imports allocate once: not measured
    tracemalloc.start()
    ingest(catalog, tmp_path / "s", progress=False, chunk_rows=100)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (tmp_path / "s" / "images.npy").stat().st_size > 12_000_000
    assert peak < 4_000_000, f"peak {peak / 1e6:.1f} MB"
