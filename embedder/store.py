"""The packed survey store: every good cutout in one ``.npy`` memmap, plus the catalog rows aligned with it.

Training and encoding read thousands of cutouts per second; opening one FITS extension per galaxy cannot keep
up, so ``ingest`` reads the survey once and writes ``images.npy`` (N, bands, H, W float32), ``catalog.fits``
(the ingested rows, in the same order), ``meta.json`` (bands, shape, per-band noise) and ``ingest_report.csv``
(every skipped record and why). Bad records are reported and skipped; one bad file never stops an ingest.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from tqdm import tqdm

IMAGES = "images.npy"
CATALOG = "catalog.fits"
META = "meta.json"
REPORT = "ingest_report.csv"


class IngestError(RuntimeError):
    """The survey as a whole cannot be ingested (no catalog, no usable record, missing columns)."""


def _border_sigma(img: np.ndarray) -> np.ndarray:
    """Robust per-band noise from the stamp's outer frame, where the target galaxy contributes little."""
    frame = np.concatenate([img[:, :6].reshape(img.shape[0], -1), img[:, -6:].reshape(img.shape[0], -1)], axis=1)
    med = np.median(frame, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(frame - med), axis=1)


def _read_cutout(path: Path, hdu: int, cache: dict) -> tuple[np.ndarray, fits.Header]:
    if path not in cache:
        cache.clear()  # catalogs are grouped by file: keep one file open at a time
        cache[path] = fits.open(path, memmap=False)
    h = cache[path][hdu]
    if h.data is None:
        raise ValueError(f"HDU {hdu} holds no image")
    return np.asarray(h.data, dtype=np.float32), h.header


def _bands_from(header: fits.Header, n: int) -> list[str]:
    if "BANDS" in header:
        return [b.strip() for b in str(header["BANDS"]).split(",")]
    return [str(header.get(f"BAND{i + 1}", f"band{i}")) for i in range(n)]


def ingest(catalog_path: Path, out: Path, progress: bool = True) -> dict:
    """Pack the survey described by ``catalog_path`` (columns id, file, hdu; ra, dec optional) into ``out``."""
    catalog_path = Path(catalog_path)
    if not catalog_path.exists():
        raise IngestError(f"catalog not found: {catalog_path}")
    try:
        table = Table.read(catalog_path)
    except Exception as exc:  # astropy raises many types for unreadable tables
        raise IngestError(f"cannot read catalog {catalog_path}: {exc}") from exc
    missing = {"id", "file"} - set(table.colnames)
    if missing:
        raise IngestError(f"catalog {catalog_path} lacks column(s): {', '.join(sorted(missing))}")
    root = catalog_path.parent
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(np.asarray(table["file"]).astype(str), kind="stable")
    images = None
    kept: list[int] = []
    sigmas: list[np.ndarray] = []
    bad: list[tuple[str, str, str]] = []
    shape: tuple[int, ...] | None = None
    bands: list[str] = []
    cache: dict = {}
    tmp = out / (IMAGES + ".partial")
    for row in tqdm(order, desc="ingest", unit="gal", disable=not progress):
        rec = table[int(row)]
        record = (str(rec["id"]), str(rec["file"]))  # how the ingest report names this row
        hdu = int(rec["hdu"]) if "hdu" in table.colnames else 0
        path = root / str(rec["file"])
        try:
            img, header = _read_cutout(path, hdu, cache)
        except FileNotFoundError:
            bad.append((*record, "missing file"))
            continue
        except (OSError, IndexError, ValueError, TypeError) as exc:
            cache.clear()
            bad.append((*record, f"unreadable: {exc}"))
            continue
        if img.ndim == 2:
            img = img[None]
        if shape is None:
            if img.ndim != 3:
                bad.append((*record, f"wrong shape {img.shape}"))
                continue
            shape = img.shape
            bands = _bands_from(header, shape[0])
            images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(table), *shape))
        if img.shape != shape:
            bad.append((*record, f"wrong shape {img.shape}, expected {shape}"))
            continue
        finite = np.isfinite(img)
        if not finite.any():
            bad.append((*record, "no finite pixel"))
            continue
        if not finite.all():
            img = np.where(finite, img, 0.0).astype(np.float32)
        images[len(kept)] = img
        sigmas.append(_border_sigma(img))
        kept.append(int(row))
    cache.clear()
    _write_report(out / REPORT, bad)
    if not kept:
        tmp.unlink(missing_ok=True)
        raise IngestError(f"no usable cutout in {catalog_path}; see {out / REPORT}")
    _finalise_images(images, len(kept), tmp, out / IMAGES)
    table[kept].write(out / CATALOG, overwrite=True)
    meta = {
        "count": len(kept),
        "shape": list(shape),
        "bands": bands,
        "noise": np.median(np.stack(sigmas), axis=0).astype(float).tolist(),
        "source_catalog": str(catalog_path.resolve()),
        "skipped": len(bad),
    }
    (out / META).write_text(json.dumps(meta, indent=2))
    return meta


def _finalise_images(images: np.memmap, n: int, tmp: Path, final: Path) -> None:
    """Trim the memmap to the ``n`` good rows (copying in blocks, memory bounded) and move it into place."""
    if n == images.shape[0]:
        images.flush()
        del images
        tmp.replace(final)
        return
    trimmed = np.lib.format.open_memmap(final, mode="w+", dtype=np.float32, shape=(n, *images.shape[1:]))
    for start in range(0, n, 1024):
        trimmed[start : start + 1024] = images[start : min(n, start + 1024)]
    trimmed.flush()
    del images
    tmp.unlink()


def _write_report(path: Path, bad: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "file", "reason"])
        w.writerows(bad)


@dataclass
class Store:
    """Read access to a packed store; images are memory-mapped, never loaded whole."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not (self.root / META).exists():
            raise FileNotFoundError(f"no packed survey at {self.root} (run `galsearch ingest` first)")
        self.meta = json.loads((self.root / META).read_text())

    @cached_property
    def images(self) -> np.ndarray:
        return np.load(self.root / IMAGES, mmap_mode="r")

    @cached_property
    def catalog(self) -> Table:
        return Table.read(self.root / CATALOG)

    @cached_property
    def ids(self) -> np.ndarray:
        return np.asarray(self.catalog["id"]).astype(str)

    @property
    def bands(self) -> list[str]:
        return list(self.meta["bands"])

    @property
    def noise(self) -> np.ndarray:
        return np.asarray(self.meta["noise"], dtype=np.float32)

    def __len__(self) -> int:
        return int(self.meta["count"])
