"""Build, save and load the similarity index.

Inner product = cosine similarity, since embeddings are L2-normalised. The index type follows the survey's size:

| vectors | index | why |
|---|---|---|
| < ``EXACT_MAX`` (100,000) | ``IndexFlatIP`` | exact, and brute force is still a few ms per query |
| larger | ``IndexIVFFlat`` with ~4 sqrt(N) lists | a query scans ``nprobe`` lists only; vectors kept exact |

For IVF, ``nprobe`` is tuned at build time: recall@50 against exact search is measured on ``RECALL_QUERIES``
held-out galaxies for nprobe = 1, 2, 4, ..., and the smallest reaching ``TARGET_RECALL`` (0.95) is kept, with the
recall it measured, in ``manifest.json``. Next to the index sit the row -> galaxy id map and the manifest; loading
checks the manifest against the embeddings it was built from, so a server never answers from an index of
another model or survey.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from embedder.files import EMBEDDING_IDS, EMBEDDING_INFO, EMBEDDINGS

EXACT_MAX = 100_000
TARGET_RECALL = 0.95
RECALL_QUERIES = 1_000
RECALL_K = 50
INDEX = "index.faiss"
INDEX_IDS = "index_ids.npy"
MANIFEST = "manifest.json"


class IndexMismatchError(RuntimeError):
    """The index on disk does not belong to these embeddings / this model."""


def exact_knn(vectors: np.ndarray, k: int, metric: str = "ip") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of every row among the others (self excluded): (scores, rows)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1]) if metric == "ip" else faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    k = min(k, len(x) - 1)
    scores, rows = index.search(x, k + 1)
    return drop_self(scores, rows, np.arange(len(x)), k)


def drop_self(scores: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From a (k+1)-neighbour search of the galaxies at rows ``queries``, keep ``k`` hits that are not the query
    itself (it is usually, but with ties not always, the first hit)."""
    own = rows == queries[:, None]
    keep = np.where(own.any(1, keepdims=True), ~own, np.arange(k + 1)[None] < k)
    return scores[keep].reshape(len(queries), k), rows[keep].reshape(len(queries), k)


def _recall(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    """recall@k of ``index`` against exact search, for the galaxies at rows ``queries`` (self excluded)."""
    q = np.ascontiguousarray(vectors[queries], dtype=np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    for start in range(0, len(vectors), 65536):
        exact.add(np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32))
    _, truth = exact.search(q, k + 1)
    _, found = index.search(q, k + 1)
    hits = [len((set(t) - {r}) & (set(f) - {r})) / max(1, len(set(t) - {r}))
            for r, t, f in zip(queries, truth, found)]
    return float(np.mean(hits))


def make_index(vectors: np.ndarray, kind: str = "auto", seed: int = 0) -> tuple[faiss.Index, dict]:
    """Build the index for ``vectors`` (N, dim), L2-normalised; returns it and what the manifest records."""
    n, dim = vectors.shape
    kind = ("flat" if n < EXACT_MAX else "ivf") if kind == "auto" else kind
    if kind not in ("flat", "ivf"):
        raise ValueError(f"unknown index type {kind!r}; choose auto, flat or ivf")
    t0 = time.perf_counter()
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(dim)
    else:
        # ~4 sqrt(N) lists, each with at least 39 training points as FAISS asks.
        nlist = int(max(1, min(4 * np.sqrt(n), n // 39)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(n, min(n, 64 * nlist), replace=False))
        index.train(np.ascontiguousarray(vectors[train], dtype=np.float32))
    for start in range(0, n, 65536):
        index.add(np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32))
    details = {"index_type": type(index).__name__}
    if kind == "flat":
        return index, {**details, "recall_at_50": 1.0, "build_s": round(time.perf_counter() - t0, 3)}
    queries = np.random.default_rng(seed + 1).choice(n, min(n, RECALL_QUERIES), replace=False)
    tried = {}
    for nprobe in (2**i for i in range(0, 16)):
        index.nprobe = min(nprobe, index.nlist)
        tried[index.nprobe] = round(_recall(index, vectors, queries, RECALL_K), 4)
        if tried[index.nprobe] >= TARGET_RECALL or index.nprobe == index.nlist:
            break
    return index, {**details, "nlist": int(index.nlist), "nprobe": int(index.nprobe),
                   "recall_at_50": tried[index.nprobe], "recall_by_nprobe": tried,
                   "recall_queries": int(len(queries)), "build_s": round(time.perf_counter() - t0, 3)}


def build(workdir: Path, kind: str = "auto", seed: int = 0) -> dict:
    """Index ``workdir``'s embeddings; write the index, its id map and manifest; return the manifest."""
    workdir = Path(workdir)
    info_path = workdir / EMBEDDING_INFO
    if not info_path.exists():
        raise FileNotFoundError(f"no embeddings in {workdir} (run `galsearch embed` first)")
    info = json.loads(info_path.read_text())
    emb = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    ids = np.load(workdir / EMBEDDING_IDS)
    if emb.shape[0] != len(ids) or emb.shape[0] != info["count"]:
        raise IndexMismatchError(f"embeddings ({emb.shape[0]}), ids ({len(ids)}) and embeddings.json "
                                 f"({info['count']}) disagree; re-run `galsearch embed`")
    index, details = make_index(emb, kind, seed)
    manifest = {
        "model_sha256": info["model_sha256"],
        "dim": int(emb.shape[1]),
        "metric": "inner_product",
        "count": int(emb.shape[0]),
        **details,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _save(workdir, index, ids, manifest)
    return manifest


def _save(workdir: Path, index: faiss.Index, ids: np.ndarray, manifest: dict) -> None:
    """Index and id map first, manifest last: a reader that finds a manifest finds the files it describes."""
    faiss.write_index(index, str(workdir / (INDEX + ".tmp")))
    np.save(workdir / (INDEX_IDS + ".tmp.npy"), ids)
    (workdir / (INDEX + ".tmp")).replace(workdir / INDEX)
    (workdir / (INDEX_IDS + ".tmp.npy")).replace(workdir / INDEX_IDS)
    (workdir / (MANIFEST + ".tmp")).write_text(json.dumps(manifest, indent=2))
    (workdir / (MANIFEST + ".tmp")).replace(workdir / MANIFEST)


@dataclass
class SearchIndex:
    """A loaded index: galaxy id <-> row lookups and k-NN queries by galaxy."""

    index: faiss.Index
    ids: np.ndarray
    vectors: np.ndarray
    manifest: dict

    def __post_init__(self) -> None:
        self.row_of = {str(g): i for i, g in enumerate(self.ids)}

    def similar(self, galaxy_id: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The ``k`` galaxies most similar to ``galaxy_id`` (itself excluded), best first, with cosine similarity.

        ``allowed`` (a boolean mask over rows) restricts the search inside FAISS through an id selector. With an
        IVF index a very selective mask can leave fewer than ``k`` hits in the probed lists.
        """
        row = self.row_of[galaxy_id]
        q = np.ascontiguousarray(self.vectors[row : row + 1], dtype=np.float32)
        params = None
        if allowed is not None:
            bits = np.packbits(np.asarray(allowed, bool), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(self.ids), faiss.swig_ptr(bits))
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=int(self.manifest["nprobe"]))
                      if "nprobe" in self.manifest else faiss.SearchParameters(sel=selector))
        scores, rows = self.index.search(q, min(k + 1, len(self.ids)), params=params)
        hits = [(str(self.ids[r]), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0 and r != row]
        return hits[:k]


def load(workdir: Path, expected_model_sha256: str | None = None) -> SearchIndex:
    """Load and validate ``workdir``'s index; raise ``IndexMismatchError`` with the reason when it does not fit."""
    workdir = Path(workdir)
    for name in (MANIFEST, INDEX, INDEX_IDS, EMBEDDINGS, EMBEDDING_INFO):
        if not (workdir / name).exists():
            raise FileNotFoundError(f"{workdir / name} is missing (run `galsearch build` first)")
    manifest = json.loads((workdir / MANIFEST).read_text())
    info = json.loads((workdir / EMBEDDING_INFO).read_text())
    # Memory-mapped: a large index opens at once and pages in as queries touch it.
    index = faiss.read_index(str(workdir / INDEX), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    if "nprobe" in manifest:
        faiss.extract_index_ivf(index).nprobe = int(manifest["nprobe"])
    ids = np.load(workdir / INDEX_IDS)
    vectors = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    problems = []
    if manifest["model_sha256"] != info["model_sha256"]:
        problems.append("index was built from another model's embeddings")
    if expected_model_sha256 and manifest["model_sha256"] != expected_model_sha256:
        problems.append("index was not built with the current model checkpoint")
    if not (manifest["count"] == index.ntotal == len(ids) == vectors.shape[0] == info["count"]):
        problems.append(f"counts differ: manifest {manifest['count']}, index {index.ntotal}, ids {len(ids)}, "
                        f"embeddings {vectors.shape[0]}")
    if not (manifest["dim"] == index.d == vectors.shape[1]):
        problems.append(f"dimensions differ: manifest {manifest['dim']}, index {index.d}, "
                        f"embeddings {vectors.shape[1]}")
    if problems:
        raise IndexMismatchError(f"index in {workdir} does not match: " + "; ".join(problems) +
                                 " — rebuild it with `galsearch index`")
    return SearchIndex(index, ids.astype(str), vectors, manifest)


def add(workdir: Path, start: int) -> dict:
    """Add the embeddings from row ``start`` on to the saved index without rebuilding it; returns the manifest.

    An IVF index keeps its trained lists: fine while the new galaxies resemble the old ones; rebuild with
    ``galsearch index`` after large additions to re-tune nprobe.
    """
    workdir = Path(workdir)
    manifest = json.loads((workdir / MANIFEST).read_text())
    if manifest["count"] != start:
        raise IndexMismatchError(f"the index holds {manifest['count']} galaxies, expected {start}; rebuild it")
    index = faiss.read_index(str(workdir / INDEX))
    vectors = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    for s in range(start, len(vectors), 65536):
        index.add(np.ascontiguousarray(vectors[s : min(len(vectors), s + 65536)], dtype=np.float32))
    manifest = {**manifest, "count": int(index.ntotal),
                "added_since_build": int(manifest.get("added_since_build", 0)) + int(index.ntotal - start)}
    _save(workdir, index, np.load(workdir / EMBEDDING_IDS), manifest)
    return manifest
