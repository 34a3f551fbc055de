"""Build, save and load the similarity index.

Inner product = cosine similarity, since embeddings are L2-normalised. The index type follows the survey's size:

| vectors | index | why |
|---|---|---|
| < ``EXACT_MAX`` (100,000) | ``IndexFlatIP`` | exact, and brute force is still a few ms per query |
| larger, raw vectors < ``max_memory_mb`` | ``IndexIVFFlat``, ~4 sqrt(N) lists | a query scans ``nprobe`` lists only |
| larger still | ``IndexIVFPQ``, dim/2 bytes a vector | 8x smaller; the best ``refine`` x k hits are re-ranked |
|  |  | exactly from the memory-mapped embeddings on disk |

For IVF, ``nprobe`` (and for IVF-PQ the over-fetch factor ``refine``) is tuned at build time: recall@50 against
exact search is measured on ``RECALL_QUERIES`` held-out galaxies for nprobe = 1, 2, 4, ..., and the smallest
reaching ``TARGET_RECALL`` (0.95) is kept (IVF-PQ: the fastest of the settings reaching it, see ``tune``), with
the recall it measured, in ``manifest.json``. Next to the index sit
the row -> galaxy id map and the manifest; loading checks the manifest against the embeddings it was built from,
so a server never answers from an index of another model or survey.

With the FAISS GPU package (``pip install 'galsearch[gpu]'``) and a CUDA device, training, adding and the recall
tuning run on the GPU (``device="auto"`` or ``"cuda"``); the index is copied back to the CPU before it is saved,
so the same files load on any machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from pydantic import BaseModel, Field

from index_builder import id_lookup
from index_builder.id_lookup import IdLookup
from index_builder.survey_map import SAMPLE as MAP_SAMPLE
from survey.workdir import (
    EMBEDDING_IDS,
    EMBEDDING_INFO,
    EMBEDDINGS,
    INDEX,
    INDEX_IDS,
    MANIFEST,
    atomic_path,
    write_text,
)

EXACT_MAX = 100_000
TARGET_RECALL = 0.95
RECALL_QUERIES = 1_000
RECALL_K = 50
REFINE_FACTORS = (2, 4, 8, 16, 32, 64)  # IVF-PQ over-fetch factors tried, smallest first
MAX_MEMORY_MB = 8192  # auto: raw vectors above this go to IVF-PQ
POOL_NPROBE = 8  # SearchIndex.candidates probes this many times the tuned nprobe



class IndexConfig(BaseModel):
    """How the index is built and how much memory it may take when loaded (the CLI's and the server's settings
    extend this type)."""

    index_type: Literal["auto", "flat", "ivf", "ivfpq"] = "auto"  # auto: see this module's table
    index_device: Literal["auto", "cpu", "cuda"] = "auto"  # where FAISS builds (GPU with the faiss GPU package)
    index_max_memory_mb: int = MAX_MEMORY_MB  # auto: raw vectors larger than this are compressed (IVF-PQ)
    map_sample: int = Field(default=MAP_SAMPLE, ge=3)  # the survey map's UMAP is fitted on this many galaxies

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


def gpu_count() -> int:
    """CUDA devices FAISS can use (always 0 with the faiss-cpu package)."""
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when FAISS sees a GPU, else ``cpu``; ``cuda`` without one is a clear error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown index device {device!r}; choose auto, cpu or cuda")
    if device == "auto":
        return "cuda" if gpu_count() else "cpu"
    if device == "cuda" and not gpu_count():
        raise ValueError("FAISS sees no GPU: install the GPU package (pip install 'galsearch[gpu]') on a machine "
                         "with CUDA, or build the index with --index-device cpu")
    return device


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """Set ``nprobe`` on a CPU or GPU IVF index (GPU copies are reached through FAISS's parameter space)."""
    space = faiss.GpuParameterSpace() if type(index).__name__.startswith("Gpu") else faiss.ParameterSpace()
    space.set_index_parameter(index, "nprobe", int(nprobe))


def search(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int, refine: int = 1,
           params: faiss.SearchParameters | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k-NN of ``queries`` (n, dim): (similarities, rows), rows -1 where fewer than k were found.

    With ``refine`` > 1 (compressed IVF-PQ codes), ``refine * k`` candidates are fetched and re-ranked by their
    exact inner product with ``vectors`` (the memory-mapped embeddings), so the scores returned are exact.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if refine <= 1:
        return index.search(queries, k, params=params)
    _, candidates = index.search(queries, k * refine, params=params)
    scores = np.full((len(queries), k), -np.inf, np.float32)
    rows = np.full((len(queries), k), -1, np.int64)
    for i, cand in enumerate(candidates):
        cand = np.sort(cand[cand >= 0])  # sorted: the memory map is read front to back
        sims = np.asarray(vectors[cand], np.float32) @ queries[i]
        best = np.argsort(-sims, kind="stable")[:k]
        scores[i, : len(best)], rows[i, : len(best)] = sims[best], cand[best]
    return scores, rows


def filter_params(allowed: np.ndarray, manifest: dict) -> faiss.SearchParameters:
    """Search parameters that keep only the rows where ``allowed`` is true, checked inside FAISS (an id selector).

    With IVF, the probed lists hold about ``fraction`` as many allowed galaxies as usual, so ``nprobe`` grows by
    1 / fraction (up to every list) to scan as many allowed candidates as an unfiltered query does: measured in
    ``bench/search.py``, a 1 % cut otherwise keeps recall@50 near 0.1.
    """
    allowed = np.asarray(allowed, bool)
    bits = np.packbits(allowed, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
    if not manifest.get("nprobe"):  # a flat index (a shards.json records it as null)
        params = faiss.SearchParameters(sel=selector)
    else:
        fraction = max(float(allowed.mean()), 1.0 / len(allowed))
        nprobe = min(int(manifest["nlist"]), int(np.ceil(int(manifest["nprobe"]) / fraction)))
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
    params.keep_alive = (selector, bits)  # FAISS holds raw pointers to both: they must live as long as params
    return params


def add_in_blocks(index: faiss.Index, vectors: np.ndarray, start: int = 0, block: int = 65536,
                  stop: int | None = None) -> None:
    """Add ``vectors[start:stop]`` to ``index`` a block at a time, so a memory-mapped file is never read whole."""
    stop = len(vectors) if stop is None else stop
    for lo in range(start, stop, block):
        index.add(np.ascontiguousarray(vectors[lo : min(stop, lo + block)], dtype=np.float32))


def _exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int, device: str,
                      block: int = 1_000_000) -> np.ndarray:
    """Rows of the ``k`` exact nearest neighbours of the galaxies at rows ``queries`` (the recall ground truth),
    by brute force over one block of the memory-mapped vectors at a time, so the check never holds a copy of them
    all (at 10^7 x 128 that copy was 5 GB)."""
    q = np.ascontiguousarray(vectors[queries], dtype=np.float32)
    heap = faiss.ResultHeap(len(q), k, keep_max=True)  # inner product: keep the largest
    exact = faiss.IndexFlatIP(vectors.shape[1])
    if device == "cuda":
        exact = faiss.index_cpu_to_all_gpus(exact)
    for lo in range(0, len(vectors), block):
        exact.reset()
        exact.add(np.ascontiguousarray(vectors[lo : lo + block], dtype=np.float32))
        scores, rows = exact.search(q, min(k, exact.ntotal))
        heap.add_result(scores, rows + lo)
    heap.finalize()
    return heap.I


def _recall(found: np.ndarray, truth: np.ndarray, queries: np.ndarray) -> float:
    """Mean share of each query's exact neighbours (itself excluded) that the index found."""
    hits = [len((set(t) - {r}) & (set(f) - {r})) / max(1, len(set(t) - {r}))
            for r, t, f in zip(queries, truth, found)]
    return float(np.mean(hits))


def choose_kind(n: int, dim: int, kind: str = "auto", max_memory_mb: float = MAX_MEMORY_MB) -> str:
    """The index type for ``n`` vectors of ``dim`` (see the module's table)."""
    if kind == "auto":
        if n < EXACT_MAX:
            return "flat"
        return "ivf" if n * dim * 4 / 2**20 <= max_memory_mb else "ivfpq"
    if kind not in ("flat", "ivf", "ivfpq"):
        raise ValueError(f"unknown index type {kind!r}; choose auto, flat, ivf or ivfpq")
    return kind


def _pq_bytes(dim: int) -> int:
    """Bytes per vector for IVF-PQ: about dim/2 (8-bit codes of 2-dimensional sub-vectors), dividing dim.

    With dim/4 bytes (4-d sub-vectors), recall@50 at 10^7 stayed below the target with up to 16 x k candidates
    re-ranked: the codes could not order neighbours that close together (the README's 10^7 figures)."""
    return max(m for m in range(1, max(1, dim // 2) + 1) if dim % m == 0)


def make_index(vectors: np.ndarray, kind: str = "auto", seed: int = 0, device: str = "cpu",
               max_memory_mb: float = MAX_MEMORY_MB) -> tuple[faiss.Index, dict]:
    """Build the index for ``vectors`` (N, dim), L2-normalised; returns it (on the CPU) and what the manifest
    records."""
    n, dim = vectors.shape
    kind = choose_kind(n, dim, kind, max_memory_mb)
    device = resolve_device(device)
    t0 = time.perf_counter()
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(dim)
    else:
        # ~4 sqrt(N) lists, each with at least 39 training points as FAISS asks.
        nlist = int(max(1, min(4 * np.sqrt(n), n // 39)))
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:  # 8-bit codes need 256 training points per sub-quantizer; a tiny survey gets fewer bits
            bits = int(min(8, np.log2(n)))
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, _pq_bytes(dim), bits, faiss.METRIC_INNER_PRODUCT)
    details: dict = {"index_type": type(index).__name__, "built_on": device}  # named before any GPU copy
    if device == "cuda":
        index = faiss.index_cpu_to_all_gpus(index)
    if kind != "flat":
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(n, min(n, 64 * nlist), replace=False))
        index.train(np.ascontiguousarray(vectors[train], dtype=np.float32))
    add_in_blocks(index, vectors)
    if kind == "flat":
        index = faiss.index_gpu_to_cpu(index) if device == "cuda" else index
        return index, {**details, "recall_at_50": 1.0, "build_s": round(time.perf_counter() - t0, 3)}
    tuning = tune(index, vectors, kind, nlist, seed, device)
    index = faiss.index_gpu_to_cpu(index) if device == "cuda" else index
    return index, {**details, "nlist": int(nlist), **tuning, "build_s": round(time.perf_counter() - t0, 3)}


def tune(index: faiss.Index, vectors: np.ndarray, kind: str, nlist: int, seed: int = 0, device: str = "cpu") -> dict:
    """Set ``index``'s ``nprobe`` (and choose the IVF-PQ over-fetch ``refine``) from recall@50 against exact search
    on ``RECALL_QUERIES`` held-out galaxies; returns what the manifest records.

    IVF: the smallest ``nprobe`` (doubling) that reaches ``TARGET_RECALL``. IVF-PQ: for each over-fetch factor,
    smallest first, the smallest ``nprobe`` that reaches it; of those, the setting whose queries took the least
    time, since scanning more lists and re-ranking more candidates trade against each other (a larger factor is
    only tried with fewer lists than the last one needed). With no setting reaching it, the best recall.
    """
    n = len(vectors)
    queries = np.random.default_rng(seed + 1).choice(n, min(n, RECALL_QUERIES), replace=False)
    truth = _exact_neighbours(vectors, queries, RECALL_K + 1, device)
    q = np.ascontiguousarray(vectors[queries], dtype=np.float32)
    tried: dict[str, float] = {}
    best = (1, 1, -1.0)  # the best recall, for a survey where nothing reaches the target
    reached: list[tuple[float, int, int, float]] = []  # (seconds, nprobe, refine, recall)
    most = nlist
    for refine in ((1,) if kind == "ivf" else REFINE_FACTORS):
        previous = -1.0
        for nprobe in sorted({min(2**i, most) for i in range(0, 16)}):
            set_nprobe(index, nprobe)
            t = time.perf_counter()
            recall = _recall(search(index, vectors, q, RECALL_K + 1, refine)[1], truth, queries)
            seconds = time.perf_counter() - t
            tried[_setting(kind, nprobe, refine)] = round(recall, 4)
            best = max(best, (nprobe, refine, recall), key=lambda b: b[2])
            if recall >= TARGET_RECALL:
                reached.append((seconds, nprobe, refine, recall))
                break
            # Flat: the compressed codes, not the lists, limit recall at this over-fetch.
            if refine > 1 and recall - previous < 0.005:
                break
            previous = recall
        if reached and reached[-1][2] == refine:
            if reached[-1][1] == 1:
                break  # a larger factor cannot save lists any more
            most = reached[-1][1] // 2  # a larger factor pays off only with fewer lists than this one
    nprobe, refine, recall = min(reached)[1:] if reached else best
    set_nprobe(index, nprobe)
    return {"nprobe": int(nprobe), "refine": int(refine), "recall_at_50": round(recall, 4),
            "recall_by_nprobe": tried, "recall_queries": int(len(queries)),
            "query_ms_reaching_target": {_setting(kind, p, r): round(1000 * t / len(queries), 3)
                                         for t, p, r, _ in reached}}


def _setting(kind: str, nprobe: int, refine: int) -> str:
    """How the manifest names a search setting: ``nprobe``, or for IVF-PQ ``nprobe``x``refine``."""
    return str(nprobe) if kind == "ivf" else f"{nprobe}x{refine}"


def build(workdir: Path, kind: str = "auto", seed: int = 0, device: str = "auto",
          max_memory_mb: float = MAX_MEMORY_MB) -> dict:
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
    index, details = make_index(emb, kind, seed, device, max_memory_mb)
    manifest = {
        "model_sha256": info["model_sha256"],
        "encoder": info.get("encoder"),
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
    with atomic_path(workdir / INDEX) as tmp:
        faiss.write_index(index, str(tmp))
    with atomic_path(workdir / INDEX_IDS) as tmp:
        np.save(tmp, ids)
    id_lookup.write(workdir, ids)
    write_text(workdir / MANIFEST, json.dumps(manifest, indent=2))


@dataclass
class SearchIndex:
    """A loaded index: galaxy id <-> row lookups and k-NN queries by galaxy.

    ``gpu`` is an optional GPU copy for batch searches (the anomaly pass over every galaxy); filtered searches
    stay on the CPU index, whose id selectors FAISS's GPU indexes do not take.
    """

    index: faiss.Index
    ids: np.ndarray
    vectors: np.ndarray
    manifest: dict
    lookup: IdLookup
    gpu: faiss.Index | None = None
    # index_builder.shards.ShardedSearch: (queries, k, allowed) -> (similarities, rows)
    remote: Callable[[np.ndarray, int, np.ndarray | None], tuple[np.ndarray, np.ndarray]] | None = None

    def __post_init__(self) -> None:
        # Plain views of the memory maps: every slice of an np.memmap builds a memmap object, which costs more
        # than a k-NN query's own Python work.
        self.ids, self.vectors = np.asarray(self.ids), np.asarray(self.vectors)
        self.refine = int(self.manifest.get("refine", 1))

    def search(self, queries: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """k-NN of raw query vectors: (similarities, rows), only among the rows where ``allowed`` (a boolean mask
        over rows) is true when given (see ``filter_params``); see ``search``. With shards, the shards answer."""
        if self.remote is not None:
            return self.remote(queries, k, allowed)
        if allowed is not None:
            return search(self.index, self.vectors, queries, k, self.refine, filter_params(allowed, self.manifest))
        return search(self.gpu if self.gpu is not None else self.index, self.vectors, queries, k, self.refine)

    def candidates(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """A wide search for the pool a ranking then scores exactly (tag expansion's preselection): ``nprobe``
        times ``POOL_NPROBE`` and no re-rank, since a query's deep neighbours (thousands) lie in more lists than
        its nearest 50, for which ``nprobe`` was tuned."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.remote is not None:
            return self.remote(queries, k)
        if "nprobe" not in self.manifest:
            return self.index.search(queries, k)
        wide = min(int(self.manifest["nlist"]), POOL_NPROBE * int(self.manifest["nprobe"]))
        return self.index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=wide))

    def similar(self, galaxy_id: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The ``k`` galaxies most similar to ``galaxy_id`` (itself excluded), best first, with cosine similarity.

        ``allowed`` (a boolean mask over rows) restricts the search inside FAISS (see ``filter_params``).
        """
        row = self.lookup.row(galaxy_id)
        if row is None:
            raise KeyError(galaxy_id)
        return [(str(self.ids[r]), s) for r, s in self.similar_rows(row, k, allowed)]

    def similar_rows(self, row: int, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``similar`` for the galaxy at ``row``, as (row, similarity): for a caller that goes on to work with
        rows, which would otherwise look every hit's id up again."""
        scores, rows = self.search(self.vectors[row : row + 1], min(k + 1, len(self.ids)), allowed)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0 and r != row][:k]


def load(workdir: Path, expected_model_sha256: str | None = None, device: str = "cpu",
         max_memory_mb: float = MAX_MEMORY_MB, remote=None) -> SearchIndex:
    """Load and validate ``workdir``'s index; raise ``IndexMismatchError`` with the reason when it does not fit.

    ``device="cuda"`` (or ``"auto"`` with a GPU) also places a copy on the GPU for batch searches. ``remote``
    (``index_builder.shards.ShardedSearch``) answers the searches; the index is then only memory-mapped.
    """
    workdir = Path(workdir)
    for name in (MANIFEST, INDEX, INDEX_IDS, EMBEDDINGS, EMBEDDING_INFO):
        if not (workdir / name).exists():
            raise FileNotFoundError(f"{workdir / name} is missing (run `galsearch build` first)")
    try:
        manifest = json.loads((workdir / MANIFEST).read_text())
        info = json.loads((workdir / EMBEDDING_INFO).read_text())
    except json.JSONDecodeError as exc:
        raise IndexMismatchError(f"{workdir}: a manifest is unreadable ({exc}); re-run `galsearch index`") from exc
    # Read whole when it fits the memory budget; memory-mapped above it, where it opens at once and pages in as
    # queries touch it (measured at 1M x 128 IVF: 0.47 ms a query read whole, 1.97 ms memory-mapped).
    mmap = remote is not None or (workdir / INDEX).stat().st_size > max_memory_mb * 2**20
    try:
        index = faiss.read_index(str(workdir / INDEX), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0)
    except RuntimeError as exc:  # truncated or corrupt: never serve it
        raise IndexMismatchError(f"{workdir / INDEX} is unreadable; re-run `galsearch index` "
                                 f"({str(exc).strip().splitlines()[-1]})") from exc
    if "nprobe" in manifest:
        set_nprobe(index, manifest["nprobe"])
    ids = np.load(workdir / INDEX_IDS, mmap_mode="r", allow_pickle=False)
    ids = ids if ids.dtype.kind == "U" else ids.astype(str)  # saved as text, memory-mapped; others converted
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
    gpu = None
    if resolve_device(device) == "cuda":
        gpu = faiss.index_cpu_to_all_gpus(index)
        if "nprobe" in manifest:
            set_nprobe(gpu, manifest["nprobe"])
    return SearchIndex(index, ids, vectors, manifest, IdLookup.open(workdir, ids), gpu, remote)


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
    add_in_blocks(index, vectors, start)
    manifest = {**manifest, "count": int(index.ntotal),
                "added_since_build": int(manifest.get("added_since_build", 0)) + int(index.ntotal - start)}
    _save(workdir, index, np.load(workdir / EMBEDDING_IDS), manifest)
    return manifest
