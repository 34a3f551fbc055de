"""Survey catalogs read and written in chunks, so an ingest's memory does not grow with the survey.

Input: FITS tables (memory-mapped), CSV (pandas, chunk by chunk), Parquet (pyarrow row batches), HDF5 files whose
1-D datasets are the columns (Galaxy10 style: the images are a dataset of the same file), and anything else
astropy reads (ECSV, VOTable), which is read whole. Output: ``concat_fits`` streams FITS part files into one
binary table without holding them all, unifying their column types (wider strings, ints that became floats).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from survey.workdir import atomic_path

HDF5_SUFFIXES = (".h5", ".hdf5")


# Ids the server can address: one URL path segment (no slash or backslash, which routers and proxies read as
# separators),
# no control character, and short enough for the database's id column. Anything else, IAU names with '.', '+'
# and spaces included, is fine: pages escape it and URLs percent-encode it. Match with ``fullmatch``.
SERVABLE_ID = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,64}$")
SERVABLE_ID_RULE = "1-64 characters, none of them '/', '\\' or a control character"


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
            import astropy.units as u
            from astropy.coordinates import SkyCoord

            try:
                sky = SkyCoord(np.asarray(table["ra"]).astype(str), np.asarray(table["dec"]).astype(str),
                               unit=(u.hourangle, u.deg))
            except ValueError as exc:
                raise IngestError(f"cannot read the RA/Dec columns of {source} as sexagesimal: {exc}") from exc
            table["ra"], table["dec"] = sky.ra.deg, sky.dec.deg
        return table


def read_chunks(path: Path, rows: int, columns: CatalogColumns, dataset: str = "images") -> Iterator[Table]:
    """The catalog at ``path`` as tables of at most ``rows`` rows, in order, with the user's column names."""
    suffix = path.suffix.lower()
    try:
        if suffix in HDF5_SUFFIXES:
            yield from _hdf5_chunks(path, rows, columns, dataset)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
                yield Table.from_pandas(batch.to_pandas())
        elif suffix == ".csv" and not _starts_with(path, b"# %ECSV"):
            import pandas as pd

            text = {columns.id: str, columns.file: str}
            for frame in pd.read_csv(path, chunksize=rows, dtype=text, skipinitialspace=True):
                yield Table.from_pandas(frame)
        else:
            table = Table.read(path, memmap=True) if suffix in (".fits", ".fit", ".fits.gz") else Table.read(path)
            for start in range(0, len(table), rows):
                yield table[start : start + rows].copy()
    except IngestError:
        raise
    except Exception as exc:  # astropy, pandas and pyarrow raise many types for unreadable tables
        raise IngestError(f"cannot read catalog {path}: {exc}") from exc


def _starts_with(path: Path, prefix: bytes) -> bool:
    """Whether the file begins with ``prefix``, reading only that much of a catalog that may not fit in memory."""
    with path.open("rb") as fh:
        return fh.read(len(prefix)) == prefix


def count_rows(path: Path, dataset: str = "images") -> int | None:
    """The catalog's row count, where it can be had without reading the rows (for the progress bar)."""
    suffix = path.suffix.lower()
    try:
        if suffix in HDF5_SUFFIXES:
            import h5py

            with h5py.File(path, "r") as h5:
                return int(h5[dataset].shape[0]) if dataset in h5 else None
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if suffix in (".fits", ".fit"):
            with fits.open(path) as hdul:
                return next(int(h.header["NAXIS2"]) for h in hdul if isinstance(h, fits.BinTableHDU))
        if suffix == ".csv":
            with path.open("rb") as fh:
                return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1)
    except Exception:  # an unreadable catalog is reported by read_chunks; the bar just has no total
        return None
    return None


def _hdf5_chunks(path: Path, rows: int, columns: CatalogColumns, dataset: str) -> Iterator[Table]:
    """An HDF5 survey: its 1-D datasets as long as the image stack are the catalog; each row points at its image.

    Without an id dataset, the row number is the id."""
    import h5py

    with h5py.File(path, "r") as h5:
        if dataset not in h5:
            raise IngestError(f"{path} has no image dataset {dataset!r} (it has {', '.join(h5.keys())}); "
                              "name it with --images-dataset")
        n = h5[dataset].shape[0]
        names = [k for k, v in h5.items() if isinstance(v, h5py.Dataset) and v.ndim == 1 and v.shape[0] == n]
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            table = Table({k: _decoded(h5[k][start:stop]) for k in names})
            index = np.arange(start, stop)
            table[columns.file] = path.name
            table[columns.hdu] = index
            if columns.id not in table.colnames:
                table[columns.id] = index.astype(str)
            yield table


def _decoded(values: np.ndarray) -> np.ndarray:
    return values.astype(str) if values.dtype.kind in "OS" else values


def write_fits(table: Table, path: Path) -> None:
    """One part of a packed catalog; text columns are stored as text whatever pandas made of them."""
    table = table.copy(copy_data=False)
    for name in table.colnames:
        if table[name].dtype.kind == "O":  # pandas text; None and NaN are blanks
            table[name] = np.array(["" if v is None or v != v else str(v) for v in table[name]], dtype=str)
    table.write(path, format="fits", overwrite=True)


def concat_fits(parts: list[Path], out: Path) -> int:
    """Stream the binary tables in ``parts`` into one table at ``out``, a part at a time; returns the row count.

    A column's type is the widest its parts hold (``np.result_type``; text wins over numbers), so a CSV column
    that pandas read as integers in one chunk and floats in the next is kept whole."""
    if not parts:
        raise IngestError("no catalog part to write")
    first = Table.read(parts[0])
    kinds = {n: first[n].dtype for n in first.colnames}
    rows = 0
    for p in parts:  # each part is one chunk: reading it whole is bounded
        part = Table.read(p)
        rows += len(part)
        for name in first.colnames:
            kinds[name] = _wider(kinds[name], part[name].dtype if name in part.colnames else kinds[name])
    template = Table({n: np.zeros(0, dtype=kinds[n]) for n in first.colnames}, meta=first.meta)
    for n in first.colnames:
        template[n].unit = first[n].unit
    header = fits.table_to_hdu(template).header
    header["NAXIS2"] = rows
    with atomic_path(out) as tmp:
        tmp.unlink(missing_ok=True)  # a new file: the stream writes an empty primary HDU first
        stream = fits.StreamingHDU(tmp, header)
        try:
            for p in parts:
                part = Table.read(p)
                cast = Table({n: _cast(part, n, kinds[n]) for n in first.colnames})
                raw = fits.table_to_hdu(cast).data.view(np.ndarray)  # FITS layout, native byte order in memory
                if raw.dtype.itemsize != header["NAXIS1"]:
                    raise IngestError(f"catalog part {p.name} does not match the packed catalog's columns")
                stream.write(np.frombuffer(raw.astype(raw.dtype.newbyteorder(">")).tobytes(), dtype=np.uint8))
        finally:
            stream.close()
    return rows


def _wider(a: np.dtype, b: np.dtype) -> np.dtype:
    a, b = np.dtype(a).newbyteorder("="), np.dtype(b).newbyteorder("=")
    if a.kind in "SU" or b.kind in "SU":
        width = max(_text_width(a), _text_width(b))
        return np.dtype(f"U{max(width, 1)}")
    return np.result_type(a, b)


def _text_width(dt: np.dtype) -> int:
    if dt.kind == "S":
        return dt.itemsize
    if dt.kind == "U":
        return dt.itemsize // 4
    return 24  # room for any number written as text


def _cast(part: Table, name: str, dtype: np.dtype) -> np.ndarray:
    if name not in part.colnames:
        return np.zeros(len(part), dtype=dtype) if dtype.kind not in "f" else np.full(len(part), np.nan, dtype)
    values = np.asarray(part[name].filled() if hasattr(part[name], "filled") else part[name])
    return values.astype(str).astype(dtype) if dtype.kind == "U" else values.astype(dtype)
