"""The packed survey store: every good cutout in one ``.npy`` memmap, plus the catalog rows aligned with it.

Training and encoding read thousands of cutouts per second; opening one FITS extension per galaxy cannot keep
up, so ``survey.ingest`` reads the survey once and writes ``images.npy`` (N, bands, H, W float32),
``catalog.fits`` (the ingested rows, in the same order), ``meta.json`` (bands, shape, per-band noise) and
``ingest_report.csv`` (every skipped record and why, and every kept one whose non-finite pixels were masked).
A PNG/JPEG survey also keeps a display copy of each cutout (``display.bin``, the encoded images end to end, and
``display_offsets.npy``, where each row's starts): the gallery shows the survey's own pixels, not a re-stretched
render of the small float cutouts the encoder reads. A survey whose files carry a celestial WCS keeps each packed
cutout's (``wcs.npy``, see ``survey.cutout_wcs``).
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from astropy.utils.metadata import MergeConflictError
from astropy.wcs import WCS

from survey.catalogs import IngestError
from survey.cutout_wcs import WCS_FILE, missing, restore
from survey.workdir import atomic_path, write_text

IMAGES = "images.npy"
CATALOG = "catalog.fits"
META = "meta.json"
REPORT = "ingest_report.csv"
DISPLAY = "display.bin"
DISPLAY_OFFSETS = "display_offsets.npy"


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
        """The catalog, memory-mapped: opening it costs nothing whatever its size, and a request reads only the
        rows (pages) it touches."""
        return Table.read(self.root / CATALOG, memmap=True)

    @cached_property
    def ids(self) -> np.ndarray:
        return np.asarray(self.catalog["id"]).astype(str)

    @cached_property
    def _display(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.meta.get("display") or not (self.root / DISPLAY).exists():
            return None
        return np.memmap(self.root / DISPLAY, dtype=np.uint8, mode="r"), np.load(self.root / DISPLAY_OFFSETS)

    @cached_property
    def _wcs(self) -> np.ndarray | None:
        if not self.meta.get("wcs") or not (self.root / WCS_FILE).exists():
            return None
        return np.load(self.root / WCS_FILE, mmap_mode="r")

    def wcs(self, row: int) -> WCS | None:
        """The packed cutout's celestial WCS (its pixel grid after crop and resample), or None without one."""
        return None if self._wcs is None else restore(self.meta["wcs"], np.asarray(self._wcs[row]))

    def display(self, row: int) -> bytes | None:
        """The row's display copy (PNG or JPEG bytes), or None where the survey keeps none (FITS)."""
        if self._display is None:
            return None
        blob, offsets = self._display
        return blob[offsets[row] : offsets[row + 1]].tobytes()

    @property
    def raster(self) -> bool:
        """True for display-stretched (PNG/JPEG) pixels, False for fluxes; stores packed before it was noted: False."""
        return bool(self.meta.get("raster", False))

    @property
    def bands(self) -> list[str]:
        return list(self.meta["bands"])

    @property
    def noise(self) -> np.ndarray:
        return np.asarray(self.meta["noise"], dtype=np.float32)

    def __len__(self) -> int:
        return int(self.meta["count"])


def copy_rows(dst: np.ndarray, at: int, src: np.ndarray, rows: np.ndarray | None = None, block: int = 1024) -> None:
    """Copy ``src`` (or its ``rows``) into ``dst`` from row ``at``, a block at a time: between memory-mapped
    files, memory stays at one block whatever their size."""
    n = len(src) if rows is None else len(rows)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        dst[at + lo : at + hi] = src[lo:hi] if rows is None else src[rows[lo:hi]]


def write_display_offsets(store_dir: Path, sizes: np.ndarray) -> None:
    with atomic_path(Path(store_dir) / DISPLAY_OFFSETS) as tmp:
        np.save(tmp, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))


def _append_display(old: Store, new: Store, keep: np.ndarray, to: Path) -> None:
    """Write the display copies of ``old`` then ``new``'s ``keep`` rows to ``to``."""
    blob, offsets = new._display
    with to.open("wb") as dst:
        with (old.root / DISPLAY).open("rb") as src:
            shutil.copyfileobj(src, dst)
        for row in keep:
            dst.write(blob[offsets[row] : offsets[row + 1]].tobytes())


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
    parts = [old.catalog, new.catalog[keep]]
    if parts[0]["id"].dtype.kind != parts[1]["id"].dtype.kind:  # e.g. integer ids, then text ones: keep them all
        parts = [t.copy() for t in parts]
        for t in parts:
            t["id"] = np.asarray(t["id"]).astype(str)
    try:
        catalog = vstack(parts, join_type="outer", metadata_conflicts="silent")
    except MergeConflictError as exc:
        raise IngestError(f"the new catalog's columns do not match the survey's: {exc}") from exc
    display = old._display is not None and new._display is not None  # kept only where both keep display copies
    shared = old.meta.get("wcs") or new.meta.get("wcs")
    same_projection = new._wcs is not None and new.meta["wcs"] == shared
    # Every file is written in full before any replaces the old one (on leaving the block).
    with ExitStack() as files:
        images = files.enter_context(atomic_path(Path(store_dir) / IMAGES))
        out = np.lib.format.open_memmap(images, mode="w+", dtype=np.float32, shape=(n, *old.meta["shape"]))
        copy_rows(out, 0, old.images)
        copy_rows(out, n_old, new.images, rows=keep)
        out.flush()
        del out
        catalog.write(files.enter_context(atomic_path(Path(store_dir) / CATALOG)), format="fits", overwrite=True)
        if display:
            _append_display(old, new, keep, files.enter_context(atomic_path(Path(store_dir) / DISPLAY)))
            write_display_offsets(store_dir, np.concatenate([np.diff(old._display[1]),
                                                             np.diff(new._display[1])[keep]]))
        if shared:
            skies = [missing(n_old) if old._wcs is None else old._wcs,
                     new._wcs[keep] if same_projection else missing(len(keep))]
            np.save(files.enter_context(atomic_path(Path(store_dir) / WCS_FILE)), np.concatenate(skies))
    meta = {**old.meta, "count": n, "appended": int(old.meta.get("appended", 0)) + len(keep), "display": display,
            "wcs": shared}
    write_text(Path(store_dir) / META, json.dumps(meta, indent=2))
    return len(keep), [str(i) for i in new.ids[duplicate]]
