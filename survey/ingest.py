"""``ingest``: read a survey (catalog + cutouts) once and pack it into a store (see ``survey.store``).

The catalog is read a chunk of rows at a time and each chunk is packed into a part (its good cutouts in a
``.npy`` memmap, its rows as a FITS table, its skipped records, its noise estimates) under ``DIR/.ingest/``;
a part is complete once its ``.json`` exists. Memory therefore stays at one chunk whatever the survey's size,
and an interrupted ingest, run again with the same catalog and options, resumes after the last complete part.
Only when every part is done are they joined into ``images.npy`` and ``catalog.fits`` and the parts removed.

A repeated id keeps its first usable row; bad records (missing file, unreadable FITS, NaN-only, wrong shape
or bands) are skipped and listed in ``ingest_report.csv`` with the reason; one bad file never stops an ingest.
``crop`` keeps the central fraction of each cutout and ``size`` resamples it (area-averaged), so large images
can be packed at the resolution the encoder uses. PNG/JPEG cutouts also leave a display copy of the same field at
up to ``DISPLAY_MAX`` px (see ``survey.store``), since the stored cutout is too small and too re-scaled to show.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
from astropy.table import Table
from PIL import Image
from tqdm import tqdm

from survey.catalogs import (
    SERVABLE_ID,
    SERVABLE_ID_RULE,
    CatalogColumns,
    IngestError,
    concat_fits,
    count_rows,
    read_chunks,
    write_fits,
)
from survey.cutout_wcs import WCS_FILE, crop_box, missing, pack, template
from survey.readers import Cutout, CutoutReader
from survey.store import CATALOG, DISPLAY, IMAGES, META, REPORT, copy_rows, write_display_offsets
from survey.workdir import atomic_path, write_text

PARTS = ".ingest"
CHUNK_ROWS = 4096
MASKED = "kept"  # how the report marks a stored cutout whose non-finite pixels were set to 0
RASTER_NOISE_FLOOR = 1 / 255  # one grey level: JPEG skies can be flat zero
NOISE_SAMPLE = 200_000  # galaxies the survey's median noise is taken over
DISPLAY_MAX = 256  # px a side of the display copy kept of PNG/JPEG cutouts (smaller ones are kept as they are)
DISPLAY_JPEG_QUALITY = 92


def ingest(catalog_path: Path, out: Path, progress: bool = True, crop: float = 1.0, size: int | None = None,
           columns: CatalogColumns = CatalogColumns(), images_dir: Path | None = None,
           bands: list[str] | None = None, dataset: str = "images", chunk_rows: int = CHUNK_ROWS) -> dict:
    """Pack the survey described by ``catalog_path`` into ``out`` and return its ``meta.json``.

    The catalog is a FITS, CSV, ECSV or Parquet table with an id and a file column (hdu, ra, dec optional; see
    ``CatalogColumns``), or an HDF5 file holding the images (``dataset``) and 1-D columns. Files are relative to
    ``images_dir``, by default the catalog's folder. ``bands`` picks and orders bands by name."""
    if not 0 < crop <= 1:
        raise IngestError(f"crop must be a fraction in (0, 1], got {crop}")
    if size is not None and size < 8:
        raise IngestError(f"size must be at least 8 px, got {size}")
    if chunk_rows < 1:
        raise IngestError(f"chunk_rows must be positive, got {chunk_rows}")
    catalog_path, out = Path(catalog_path), Path(out)
    if not catalog_path.is_file():
        raise IngestError(f"catalog not found: {catalog_path}")
    root = Path(images_dir) if images_dir is not None else catalog_path.parent
    parts = _Parts(out / PARTS, {
        "catalog": str(catalog_path.resolve()), "bytes": catalog_path.stat().st_size,
        "mtime_ns": catalog_path.stat().st_mtime_ns, "crop": crop, "size": size, "columns": asdict(columns),
        "images_dir": str(root.resolve()), "bands": bands, "dataset": dataset, "chunk_rows": chunk_rows})
    packer = _Packer(CutoutReader(root, bands, dataset), crop, size, parts)
    total = count_rows(catalog_path, dataset)
    start = 0
    with tqdm(total=total, desc="ingest", unit="gal", disable=not progress) as bar:
        try:
            for i, chunk in enumerate(read_chunks(catalog_path, chunk_rows, columns, dataset)):
                if not parts.done(i):
                    packer.pack(i, columns.apply(chunk, catalog_path), start)
                start += len(chunk)
                bar.update(len(chunk))
        finally:
            packer.reader.close()
    return _join(parts, out, catalog_path, crop, columns)


class _Parts:
    """The ``.ingest`` folder of an ingest in progress; kept across runs only while the inputs are unchanged."""

    def __init__(self, root: Path, inputs: dict) -> None:
        self.root = root
        inputs = json.loads(json.dumps(inputs))  # as it reads back: tuples become lists
        state = root / "inputs.json"
        if state.exists() and json.loads(state.read_text()) != inputs:
            shutil.rmtree(root)  # another catalog or other options: what was packed does not apply
        root.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(inputs, indent=2))

    def path(self, i: int, suffix: str) -> Path:
        return self.root / f"part-{i:06d}{suffix}"

    def done(self, i: int) -> bool:
        return self.path(i, ".json").exists()

    def finished(self) -> list[tuple[int, dict]]:
        found = sorted(self.root.glob("part-*.json"))
        return [(int(p.stem.split("-")[1]), json.loads(p.read_text())) for p in found]

    def commit(self, i: int, summary: dict) -> None:
        write_text(self.path(i, ".json"), json.dumps(summary))


class _Packer:
    """Packs one catalog chunk into a part, checking every cutout against the survey's first good one."""

    def __init__(self, reader: CutoutReader, crop: float, size: int | None, parts: _Parts) -> None:
        self.reader, self.crop, self.size, self.parts = reader, crop, size, parts
        self.seen: set[str] = set()
        self.shape: tuple[int, ...] | None = None
        self.bands: list[str] = []
        self.raster = False
        self.wcs: dict | None = None  # the survey's projection, from its first cutout with a WCS
        for i, summary in parts.finished():  # a resumed ingest: what the finished parts hold
            if summary["kept"]:
                self.seen.update(np.asarray(Table.read(parts.path(i, ".fits"))["id"]).astype(str))
                if self.shape is None:
                    self.shape, self.bands = tuple(summary["shape"]), summary["bands"]
                    self.raster = summary["raster"]
            self.wcs = self.wcs or summary.get("wcs")

    def pack(self, i: int, table: Table, start: int) -> None:
        """Pack ``table`` (catalog rows ``start``..) as part ``i``; rows are read grouped by file."""
        order = np.argsort(np.asarray(table["file"]).astype(str), kind="stable")
        images: np.ndarray | None = None
        kept: list[int] = []
        sigmas: list[np.ndarray] = []
        skies: list[np.ndarray] = []
        displays: list[bytes | None] = []
        report: list[tuple[str, str, str]] = []
        for row in order:
            rec = table[int(row)]
            record = (str(rec["id"]), str(rec["file"]))  # how the ingest report names this row
            if not SERVABLE_ID.fullmatch(record[0]):
                report.append((*record, f"id cannot be served: it must be {SERVABLE_ID_RULE}"))
                continue
            img, problem, display, sky = self._cutout(rec, start + int(row), "hdu" in table.colnames)
            if img is not None and record[0] in self.seen:
                img, problem = None, "duplicate id"
            if problem:
                report.append((*record, problem))
            if img is None:
                continue
            if images is None:
                images = np.lib.format.open_memmap(self.parts.path(i, ".npy"), mode="w+", dtype=np.float32,
                                                   shape=(len(table), *self.shape))
            images[len(kept)] = img
            sigmas.append(_border_sigma(img))
            skies.append(sky)
            displays.append(display)
            kept.append(int(row))
            self.seen.add(record[0])
        if images is not None:
            images.flush()
            del images
            write_fits(table[kept], self.parts.path(i, ".fits"))
            np.save(self.parts.path(i, ".sigma.npy"), np.stack(sigmas))
            np.save(self.parts.path(i, f".{WCS_FILE}"), np.stack(skies))
        has_display = bool(displays) and all(d is not None for d in displays)
        if has_display:
            self.parts.path(i, f".{DISPLAY}").write_bytes(b"".join(displays))
            np.save(self.parts.path(i, ".display_sizes.npy"), np.array([len(d) for d in displays], np.int64))
        _write_report(self.parts.path(i, ".csv"), report)
        masked = sum(r[2].startswith(MASKED) for r in report)
        self.parts.commit(i, {"kept": len(kept), "skipped": len(report) - masked, "masked": masked,
                              "shape": list(self.shape or ()), "bands": self.bands, "raster": self.raster,
                              "display": has_display, "wcs": self.wcs})

    def _cutout(self, rec, row: int, has_hdu: bool
                ) -> tuple[np.ndarray | None, str | None, bytes | None, np.ndarray]:
        """The record's cutout ready to store, or None and why not (a note starting "kept" for masked pixels),
        for a PNG/JPEG survey its display copy, and its packed WCS (NaN where it has none)."""
        nothing = missing(1)[0]
        try:
            hdu = _index(rec["hdu"]) if has_hdu else None
            cut = self.reader.read(str(rec["file"]), hdu, row)
        except FileNotFoundError:
            return None, "missing file", None, nothing
        except (OSError, IndexError, KeyError, ValueError, TypeError) as exc:
            self.reader.close()
            return None, f"unreadable: {exc}", None, nothing
        img = cut.pixels
        if img.ndim != 3:
            return None, f"wrong shape {img.shape}", None, nothing
        raw = img
        if self.crop < 1.0 or self.size is not None:
            img = _crop_resize(img, self.crop, self.size)
        if self.shape is None:
            self.shape, self.bands, self.raster = img.shape, cut.bands, cut.raster
        if img.shape != self.shape:
            return None, f"wrong shape {img.shape}, expected {self.shape}", None, nothing
        if [b.lower() for b in cut.bands] != [b.lower() for b in self.bands]:
            return None, (f"bands {','.join(cut.bands)}, expected {','.join(self.bands)}; choose them with "
                          "--bands"), None, nothing
        finite = np.isfinite(img)
        if not finite.any():
            return None, "no finite pixel", None, nothing
        display = display_copy(raw, self.crop, str(rec["file"])) if cut.raster else None
        sky = self._sky(cut, raw.shape[-2:])
        if not finite.all():
            # Masked, not dropped: one bad column should not cost a galaxy. Zero is the sky level.
            return (np.where(finite, img, 0.0).astype(np.float32),
                    f"{MASKED}: {int((~finite).sum())} non-finite pixels set to 0", display, sky)
        return img, None, display, sky

    def _sky(self, cut: Cutout, shape: tuple[int, int]) -> np.ndarray:
        """The cutout's packed WCS; NaN without one, or with another projection than the survey's first."""
        if cut.wcs is None:
            return missing(1)[0]
        shared = template(cut.wcs)
        self.wcs = self.wcs or shared
        return pack(cut.wcs, shape, self.crop, self.size) if shared == self.wcs else missing(1)[0]


def _join(parts: _Parts, out: Path, catalog_path: Path, crop: float, columns: CatalogColumns) -> dict:
    """Join the finished parts into the store, block by block, then remove them."""
    finished = parts.finished()
    report = out / REPORT
    with report.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "file", "reason"])
        for i, _ in finished:
            with parts.path(i, ".csv").open(newline="") as part:
                next(part)  # its header
                w.writerows(csv.reader(part))
    with_rows = [(i, s) for i, s in finished if s["kept"]]
    if not with_rows:
        shutil.rmtree(parts.root)
        raise IngestError(f"no usable cutout in {catalog_path}; see {report}")
    count = sum(s["kept"] for _, s in with_rows)
    shape, bands, raster = tuple(with_rows[0][1]["shape"]), with_rows[0][1]["bands"], with_rows[0][1]["raster"]
    with atomic_path(out / IMAGES) as tmp:  # the images land last: a store with them is complete
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(count, *shape))
        at, sigmas, skies = 0, [], []
        step = max(1, count // NOISE_SAMPLE)
        for i, s in with_rows:
            part = np.load(parts.path(i, ".npy"), mmap_mode="r")
            copy_rows(images, at, part[: s["kept"]])  # the part's memmap was sized for every row of its chunk
            sigmas.append(np.load(parts.path(i, ".sigma.npy"))[::step])
            skies.append(np.load(parts.path(i, f".{WCS_FILE}")))
            at += s["kept"]
        images.flush()
        del images
        concat_fits([parts.path(i, ".fits") for i, _ in with_rows], out / CATALOG)
        shared = next((s["wcs"] for _, s in finished if s.get("wcs")), None)
        if shared is not None:
            with atomic_path(out / WCS_FILE) as sky:
                np.save(sky, np.concatenate(skies))
        display = all(s.get("display") for _, s in with_rows)
        if display:
            _join_display([parts.path(i, f".{DISPLAY}") for i, _ in with_rows],
                          [np.load(parts.path(i, ".display_sizes.npy")) for i, _ in with_rows], out)
    meta = {
        "count": count,
        "shape": list(shape),
        "bands": bands,
        "noise": _survey_noise(np.concatenate(sigmas), raster=raster),
        "crop": crop,
        "source_catalog": str(catalog_path.resolve()),
        "skipped": sum(s["skipped"] for _, s in finished),
        "masked": sum(s["masked"] for _, s in finished),
        "label_columns": list(columns.labels),
        "raster": raster,
        "display": display,
        "wcs": shared,
    }
    write_text(out / META, json.dumps(meta, indent=2))
    shutil.rmtree(parts.root)
    return meta


def display_copy(pixels: np.ndarray, crop: float, file: str) -> bytes | None:
    """The survey's own pixels of a PNG/JPEG cutout (``pixels``: bluest first, 0-1, as read), cropped like the
    stored cutout and shrunk to at most ``DISPLAY_MAX`` px: what the gallery shows, with no re-stretch. JPEG
    sources stay JPEG, others become PNG; None for plane counts that are not grey or colour."""
    if pixels.shape[0] not in (1, 3):
        return None
    grey = np.clip(np.rint(_crop_resize(pixels, crop, None) * 255), 0, 255).astype(np.uint8)
    im = Image.fromarray(grey[0] if len(grey) == 1 else np.ascontiguousarray(grey[::-1].transpose(1, 2, 0)))
    if max(im.size) > DISPLAY_MAX:
        im.thumbnail((DISPLAY_MAX, DISPLAY_MAX), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if Path(file).suffix.lower() in (".jpg", ".jpeg"):
        im.save(out, format="JPEG", quality=DISPLAY_JPEG_QUALITY)
    else:
        im.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _join_display(blobs: list[Path], sizes: list[np.ndarray], out: Path) -> None:
    """The parts' display copies end to end in the store's display file, with each row's offset."""
    with atomic_path(out / DISPLAY) as tmp, tmp.open("wb") as dst:
        for blob in blobs:
            with blob.open("rb") as src:
                shutil.copyfileobj(src, dst)
        write_display_offsets(out, np.concatenate(sizes))


def _index(value) -> int | None:
    """An HDU or stack index from the catalog; blank (masked, NaN) means none."""
    if np.ma.is_masked(value) or not np.isfinite(number := float(value)):
        return None
    return int(number)


def _border_sigma(img: np.ndarray) -> np.ndarray:
    """Robust per-band noise from the stamp's outer frame, where the target galaxy contributes little."""
    frame = np.concatenate([img[:, :6].reshape(img.shape[0], -1), img[:, -6:].reshape(img.shape[0], -1)], axis=1)
    med = np.median(frame, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(frame - med), axis=1)


def _crop_resize(img: np.ndarray, crop: float, size: int | None) -> np.ndarray:
    """Keep the central ``crop`` fraction, then resample to ``size`` px with area averaging (flux per pixel kept)."""
    h, w = img.shape[-2:]
    if crop < 1.0:
        y0, x0, ch, cw = crop_box(h, w, crop)
        img = img[..., y0 : y0 + ch, x0 : x0 + cw]
    if size is None or img.shape[-2:] == (size, size):
        return np.ascontiguousarray(img, dtype=np.float32)
    return np.stack([np.asarray(Image.fromarray(band).resize((size, size), Image.Resampling.BOX), np.float32)
                     for band in img])


def _survey_noise(sigmas: np.ndarray, raster: bool) -> list[float]:
    """Median per-band sky noise; never zero, since the model input is scaled by it."""
    noise = np.median(sigmas, axis=0)
    floor = RASTER_NOISE_FLOOR if raster else max(1e-6, 1e-3 * float(np.max(np.abs(noise))))
    return np.maximum(noise, floor).astype(float).tolist()


def _write_report(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "file", "reason"])
        w.writerows(rows)
