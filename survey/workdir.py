"""A workdir: the one folder every job of a survey reads from and writes to, named in one place.

Each stage leaves its files here for the next (ingest -> train -> embed -> index -> serve, and eval beside them),
so the names, the check that two stages' outputs describe the same galaxies, and the way a file is written are
shared here rather than repeated in each stage. The packed store (``store/``) is a folder of its own format
(``survey.store``): it may be a packed survey elsewhere, linked in.

Every file is written whole or not at all (``atomic_path``): a server starting while a job runs, or a job killed
half-way, never leaves a half-written file where a reader looks.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Embedder
ENCODER_INFO = "encoder.json"  # a foreign encoder's identity: kind, source, file, sha256, input contract
EMBEDDINGS = "embeddings.npy"  # (N, dim) float32, L2-normalised: what the index searches
EMBEDDING_IDS = "embedding_ids.npy"  # (N,) ids aligned with the rows of EMBEDDINGS
EMBEDDING_INFO = "embeddings.json"  # model checksum, dim, count, TTA, PCA
EMBEDDINGS_FULL = "embeddings_full.npy"  # the encoder's full-dimension vectors, kept when PCA reduces EMBEDDINGS
PCA_FILE = "pca.npz"  # mean, components and explained variance of that reduction
EMBED_PROGRESS = "embeddings.progress.json"  # rows already encoded, for a resumed job
MORPHOMETRY = "morphometry.npy"  # (N, 9) float32: embedder/morphometry.NAMES (NaN: unmeasured)
MORPHOMETRY_FILE = "morphometry.npz"  # their names, units, survey quantiles and the weight they have in EMBEDDINGS
# Index builder
INDEX = "index.faiss"
INDEX_IDS = "index_ids.npy"
SORTED_IDS = "index_ids_sorted.npy"  # INDEX_IDS sorted, for id -> row by binary search (no per-galaxy dict)
SORTED_ROWS = "index_rows_sorted.npy"  # (N,) int64: the row of each SORTED_IDS entry
SKY_ROWS = "sky_rows.npy"  # (M,) int64: the rows with a position, in HEALPix cell order (index_builder/sky_cells.py)
SKY_CELLS = "sky_cells.npy"  # (M,) int64: the nested HEALPix cell of each SKY_ROWS entry, ascending
SKY_INFO = "sky.json"  # the cells' nside and counts
MANIFEST = "manifest.json"
ANOMALY = "anomaly.npz"  # unsupervised anomaly scores and the PCA coordinates the rating model works in
ANOMALY_INFO = "anomaly.json"
SURVEY_MAP = "map.npy"  # (N, 2) float32: the search vectors' 2-D UMAP, row-aligned with EMBEDDINGS
SURVEY_MAP_INFO = "map.json"  # how it was made, and its bounds
SURVEY_MAP_MODEL = "map_model.joblib"  # the fitted UMAP, to place galaxies added later


class WorkdirMismatchError(RuntimeError):
    """Two stages' files in a workdir describe different galaxies (one was rebuilt without the other)."""


@dataclass(frozen=True)
class Workdir:
    """Where each stage's files live in one workdir; ``Workdir.of`` takes a plain path too (notebooks, the CLI)."""

    root: Path

    @classmethod
    def of(cls, where: Workdir | Path | str) -> Workdir:
        return where if isinstance(where, Workdir) else cls(Path(where))

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __str__(self) -> str:
        return str(self.root)

    @property
    def store(self) -> Path:
        """The packed cutouts and catalogue (``survey.store``)."""
        return self.root / "store"

    @property
    def model(self) -> Path:
        """The encoder checkpoint."""
        return self.root / "model.pt"

    @property
    def encoder(self) -> Path:
        """The file the workdir is embedded with: the file ``encoder.json`` names, else the own checkpoint."""
        info = self.root / ENCODER_INFO
        return self.root / json.loads(info.read_text())["file"] if info.exists() else self.model

    @property
    def thumbs(self) -> Path:
        """The server's cache of rendered thumbnails."""
        return self.root / "thumbs"

    @property
    def database(self) -> Path:
        """The SQLite database (tags, ratings) when no server database is configured."""
        return self.root / "galsearch.db"

    @property
    def eval_result(self) -> Path:
        return self.root / "eval.json"

    def embedding_ids(self) -> np.ndarray:
        return np.load(self.root / EMBEDDING_IDS).astype(str)

    def check_aligned(self, ids: np.ndarray, what: str = "store", sampled: bool = False) -> None:
        """Raise unless the embeddings are the rows of ``ids`` (the store's, usually) in the same order; with
        ``sampled``, compare the count and ``IDS_SAMPLE`` rows spread over the survey (``ids_digest``), so a server
        opening 10^7 galaxies reads a few pages of each id file rather than both whole."""
        if sampled:
            same = ids_digest(np.load(self.root / EMBEDDING_IDS, mmap_mode="r")) == ids_digest(ids)
        else:
            same = np.array_equal(self.embedding_ids(), np.asarray(ids).astype(str))
        if not same:
            raise WorkdirMismatchError(f"embeddings in {self.root} are not aligned with its {what}; re-run "
                                       "`galsearch embed`")


IDS_SAMPLE = 4096  # ids compared when two files' rows are checked without reading them whole


def ids_digest(ids: np.ndarray) -> str:
    """A fingerprint of an id column (array, memory map or catalog column): its length and ``IDS_SAMPLE`` ids
    spread evenly over it, first and last among them. Two files of the same galaxies in another order, or with
    rows added or dropped, differ in it (a shift moves every sampled row)."""
    n = len(ids)
    rows = np.unique(np.linspace(0, n - 1, min(n, IDS_SAMPLE)).astype(np.int64)) if n else np.empty(0, np.int64)
    sample = [str(v.decode() if isinstance(v, bytes) else v) for v in np.asarray(ids[rows])]
    return hashlib.sha256("\n".join([str(n), *sample]).encode()).hexdigest()


def npz_member(path: Path, key: str) -> np.ndarray:
    """One array of an ``.npz`` file, memory-mapped where numpy stored it uncompressed (``np.savez`` does): a
    server opening per-galaxy arrays of 10^7 rows pages in what it touches instead of reading them whole.
    Compressed members are read whole."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(info) as fh:
                return np.lib.format.read_array(fh)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # the member's local header: its name and extra field lengths are at bytes 26-29
        name, extra = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        fh.seek(info.header_offset + 30 + name + extra)
        version = np.lib.format.read_magic(fh)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:  # a newer format: read it whole
            with zipfile.ZipFile(path) as archive, archive.open(info) as member:
                return np.lib.format.read_array(member)
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: {key} holds Python objects and cannot be memory-mapped")
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                                order="F" if fortran else "C"))


@contextmanager
def atomic_path(path: Path, shared: bool = False) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write, renamed over ``path`` once the block ends without error.

    The temporary name keeps ``path``'s extension (numpy and astropy pick a format by it) and is removed if the
    block fails. A job's is always the same, so the next run overwrites what a killed one left; ``shared`` files
    (written by any of a server's workers at once) carry the process id, so two writers never share one.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.stem}{f'.{os.getpid()}' if shared else ''}.partial{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """``path`` holds ``text``, written whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
