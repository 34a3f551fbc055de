"""The packed survey store: every good cutout in one ``.npy`` memmap, plus the catalog rows aligned with it.

Training and encoding read thousands of cutouts per second; opening one FITS extension per galaxy cannot keep
up, so ``ingest`` reads the survey once and writes ``images.npy`` (N, bands, H, W float32), ``catalog.fits``
(the ingested rows, in the same order), ``meta.json`` (bands, shape, per-band noise) and ``ingest_report.csv``
(every skipped record and why, and every kept one whose non-finite pixels were masked). Bad records are reported
and skipped; one bad file never stops an ingest.

Cutouts may be FITS (one image HDU per galaxy, ``(bands, y, x)`` or 2-D) or PNG/JPEG colour images. Raster
images are already display-stretched; their channels are stored bluest first (B, G, R), the order of the
bands of a FITS survey, and scaled to 0-1. ``crop`` keeps the central fraction of each cutout and ``size``
resamples it (area-averaged), so large images can be packed at the resolution the encoder uses.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from astropy.utils.metadata import MergeConflictError
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

IMAGES = "images.npy"
CATALOG = "catalog.fits"
META = "meta.json"
REPORT = "ingest_report.csv"
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
RASTER_BANDS = ["B", "G", "R"]
RASTER_NOISE_FLOOR = 1 / 255  # one grey level: JPEG skies can be flat zero


class IngestError(RuntimeError):
    """The survey as a whole cannot be ingested (no catalog, no usable record, missing columns)."""


@dataclass(frozen=True)
class CatalogColumns:
    """Which of the user's catalog columns hold what the store needs; they are renamed to these canonical names
    (``id``, ``file``, ``hdu``, ``ra``, ``dec``) in the packed catalog, so every later step reads one schema.

    ``ra``/``dec`` may be missing (a survey without coordinates) or sexagesimal text (``"10:21:33.2"``, hours for
    RA, degrees for Dec), which is converted to degrees. ``labels`` are only checked to exist: they stay as they are.
    """

    id: str = "id"
    file: str = "file"
    hdu: str = "hdu"
    ra: str = "ra"
    dec: str = "dec"
    labels: tuple[str, ...] = ()

    def apply(self, table: Table, source: Path) -> Table:
        missing = [c for c in (self.id, self.file, *self.labels) if c not in table.colnames]
        if missing:
            raise IngestError(f"catalog {source} lacks column(s): {', '.join(missing)} "
                              f"(it has {', '.join(table.colnames)}); name yours with --id-col, --file-col, "
                              "--label-col")
        table = table.copy(copy_data=False)
        for canonical in ("id", "file", "hdu", "ra", "dec"):
            theirs = getattr(self, canonical)
            if theirs == canonical or theirs not in table.colnames:
                continue
            if canonical in table.colnames:  # e.g. --id-col objid in a catalog that also has "id"
                table.rename_column(canonical, f"{canonical}_catalog")
            table.rename_column(theirs, canonical)
        table["id"] = np.char.strip(np.asarray(table["id"]).astype(str))
        if "ra" in table.colnames and "dec" in table.colnames and table["ra"].dtype.kind in "US":
            from astropy.coordinates import SkyCoord
            import astropy.units as u

            try:
                sky = SkyCoord(np.asarray(table["ra"]).astype(str), np.asarray(table["dec"]).astype(str),
                               unit=(u.hourangle, u.deg))
            except ValueError as exc:
                raise IngestError(f"cannot read the RA/Dec columns of {source} as sexagesimal: {exc}") from exc
            table["ra"], table["dec"] = sky.ra.deg, sky.dec.deg
        return table


def _border_sigma(img: np.ndarray) -> np.ndarray:
    """Robust per-band noise from the stamp's outer frame, where the target galaxy contributes little."""
    frame = np.concatenate([img[:, :6].reshape(img.shape[0], -1), img[:, -6:].reshape(img.shape[0], -1)], axis=1)
    med = np.median(frame, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(frame - med), axis=1)


def _read_cutout(path: Path, hdu: int, cache: dict) -> tuple[np.ndarray, fits.Header | None]:
    if path.suffix.lower() in RASTER_SUFFIXES:
        return _read_raster(path), None
    if path not in cache:
        cache.clear()  # catalogs are grouped by file: keep one file open at a time
        cache[path] = fits.open(path, memmap=False)
    h = cache[path][hdu]
    if h.data is None:
        raise ValueError(f"HDU {hdu} holds no image")
    return np.asarray(h.data, dtype=np.float32), h.header


def _read_raster(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im, dtype=np.float32) / 255.0
    except UnidentifiedImageError as exc:
        raise ValueError(f"not an image: {exc}") from exc
    return rgb[None] if rgb.ndim == 2 else rgb[:, :, ::-1].transpose(2, 0, 1)  # (B, G, R), bluest first


def _crop_resize(img: np.ndarray, crop: float, size: int | None) -> np.ndarray:
    """Keep the central ``crop`` fraction, then resample to ``size`` px with area averaging (flux per pixel kept)."""
    h, w = img.shape[-2:]
    if crop < 1.0:
        ch, cw = max(1, round(h * crop)), max(1, round(w * crop))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        img = img[..., y0 : y0 + ch, x0 : x0 + cw]
    if size is None or img.shape[-2:] == (size, size):
        return np.ascontiguousarray(img, dtype=np.float32)
    return np.stack([np.asarray(Image.fromarray(band).resize((size, size), Image.Resampling.BOX), np.float32)
                     for band in img])


def _bands_from(header: fits.Header | None, n: int) -> list[str]:
    if header is None:
        return RASTER_BANDS if n == 3 else ["L"]
    if "BANDS" in header:
        return [b.strip() for b in str(header["BANDS"]).split(",")]
    return [str(header.get(f"BAND{i + 1}", f"band{i}")) for i in range(n)]


def ingest(catalog_path: Path, out: Path, progress: bool = True, crop: float = 1.0, size: int | None = None,
           columns: CatalogColumns = CatalogColumns(), images_dir: Path | None = None) -> dict:
    """Pack the survey described by ``catalog_path`` (a FITS, CSV, ECSV or Parquet table with an id and a file
    column; hdu, ra, dec optional; see ``CatalogColumns``) into ``out``. Files are relative to ``images_dir``,
    by default the catalog's folder. A repeated id keeps its first usable row; the others are reported."""
    if not 0 < crop <= 1:
        raise IngestError(f"crop must be a fraction in (0, 1], got {crop}")
    if size is not None and size < 8:
        raise IngestError(f"size must be at least 8 px, got {size}")
    catalog_path = Path(catalog_path)
    if not catalog_path.exists():
        raise IngestError(f"catalog not found: {catalog_path}")
    try:
        table = Table.read(catalog_path)
    except Exception as exc:  # astropy raises many types for unreadable tables
        raise IngestError(f"cannot read catalog {catalog_path}: {exc}") from exc
    table = columns.apply(table, catalog_path)
    root = Path(images_dir) if images_dir is not None else catalog_path.parent
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(np.asarray(table["file"]).astype(str), kind="stable")
    images = None
    kept: list[int] = []
    sigmas: list[np.ndarray] = []
    bad: list[tuple[str, str, str]] = []
    masked: list[tuple[str, str, str]] = []
    shape: tuple[int, ...] | None = None
    raster = False
    bands: list[str] = []
    cache: dict = {}
    seen: set[str] = set()
    tmp = out / (IMAGES + ".partial")
    for row in tqdm(order, desc="ingest", unit="gal", disable=not progress):
        rec = table[int(row)]
        record = (str(rec["id"]), str(rec["file"]))  # how the ingest report names this row
        if record[0] in seen:
            bad.append((*record, "duplicate id"))
            continue
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
        if img.ndim == 3 and (crop < 1.0 or size is not None):
            img = _crop_resize(img, crop, size)
        if shape is None:
            if img.ndim != 3:
                bad.append((*record, f"wrong shape {img.shape}"))
                continue
            shape = img.shape
            bands = _bands_from(header, shape[0])
            raster = header is None
            images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(table), *shape))
        if img.shape != shape:
            bad.append((*record, f"wrong shape {img.shape}, expected {shape}"))
            continue
        finite = np.isfinite(img)
        if not finite.any():
            bad.append((*record, "no finite pixel"))
            continue
        if not finite.all():
            # Masked, not dropped: one bad column should not cost a galaxy. Zero is the sky level.
            img = np.where(finite, img, 0.0).astype(np.float32)
            masked.append((*record, f"kept: {int((~finite).sum())} non-finite pixels set to 0"))
        images[len(kept)] = img
        sigmas.append(_border_sigma(img))
        kept.append(int(row))
        seen.add(record[0])
    cache.clear()
    _write_report(out / REPORT, bad + masked)
    if not kept:
        tmp.unlink(missing_ok=True)
        raise IngestError(f"no usable cutout in {catalog_path}; see {out / REPORT}")
    _finalise_images(images, len(kept), tmp, out / IMAGES)
    table[kept].write(out / CATALOG, overwrite=True)
    meta = {
        "count": len(kept),
        "shape": list(shape),
        "bands": bands,
        "noise": _survey_noise(np.stack(sigmas), raster=raster),
        "crop": crop,
        "source_catalog": str(catalog_path.resolve()),
        "skipped": len(bad),
        "masked": len(masked),
        "label_columns": list(columns.labels),
    }
    (out / META).write_text(json.dumps(meta, indent=2))
    return meta


def _survey_noise(sigmas: np.ndarray, raster: bool) -> list[float]:
    """Median per-band sky noise; never zero, since the model input is scaled by it."""
    noise = np.median(sigmas, axis=0)
    floor = RASTER_NOISE_FLOOR if raster else max(1e-6, 1e-3 * float(np.max(np.abs(noise))))
    return np.maximum(noise, floor).astype(float).tolist()


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


def append(store_dir: Path, batch_dir: Path) -> tuple[int, list[str]]:
    """Append the packed store ``batch_dir`` to ``store_dir`` (incremental ingest, no rebuild).

    Rows whose id the store already holds are skipped and returned. Images are copied block by block into a
    new memmap that replaces the old one only when complete, so an interrupted append loses nothing.
    """
    old, new = Store(store_dir), Store(batch_dir)
    if list(new.meta["shape"]) != list(old.meta["shape"]):
        raise IngestError(f"new cutouts are {tuple(new.meta['shape'])}, the survey's are {tuple(old.meta['shape'])}; "
                          "use --crop/--size to match")
    duplicate = np.isin(new.ids, old.ids)
    keep = np.flatnonzero(~duplicate)
    n_old, n = len(old), len(old) + len(keep)
    tmp = Path(store_dir) / (IMAGES + ".partial")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *old.meta["shape"]))
    for start in range(0, n_old, 1024):
        out[start : min(n_old, start + 1024)] = old.images[start : start + 1024]
    for start in range(0, len(keep), 1024):
        out[n_old + start : n_old + start + 1024] = new.images[keep[start : start + 1024]]
    out.flush()
    del out
    parts = [old.catalog, new.catalog[keep]]
    if parts[0]["id"].dtype.kind != parts[1]["id"].dtype.kind:  # e.g. integer ids, then text ones: keep them all
        parts = [t.copy() for t in parts]
        for t in parts:
            t["id"] = np.asarray(t["id"]).astype(str)
    try:
        catalog = vstack(parts, join_type="outer", metadata_conflicts="silent")
    except MergeConflictError as exc:
        raise IngestError(f"the new catalog's columns do not match the survey's: {exc}") from exc
    catalog.write(Path(store_dir) / (CATALOG + ".partial"), format="fits", overwrite=True)
    tmp.replace(Path(store_dir) / IMAGES)
    (Path(store_dir) / (CATALOG + ".partial")).replace(Path(store_dir) / CATALOG)
    meta = {**old.meta, "count": n, "appended": int(old.meta.get("appended", 0)) + len(keep)}
    (Path(store_dir) / META).write_text(json.dumps(meta, indent=2))
    return len(keep), [str(i) for i in new.ids[duplicate]]
