"""Survey-sized inputs for the benchmarks, made without training anything.

``mixture`` gives survey-like embeddings: a Gaussian mixture of ``clusters`` centres of different widths and
weights (like morphological classes and their subtypes), L2-normalised. ``workdir`` lays out a complete built
workdir around them (a store of tiny 1-band cutouts, a catalog with ra/dec/mag_r, embeddings, and the index and
anomaly scores built by the real ``index_builder``), so the real server can be benchmarked at 10^6 galaxies.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from index_builder import anomaly, index, sky_cells
from index_builder.index import MAX_MEMORY_MB
from survey.store import CATALOG, IMAGES, META
from survey.workdir import (
    ANOMALY,
    ANOMALY_INFO,
    EMBEDDING_IDS,
    EMBEDDING_INFO,
    EMBEDDINGS,
    MANIFEST,
    Workdir,
    ids_digest,
)

CHUNK = 100_000
CUTOUT = (1, 8, 8)  # the server only reads cutouts to draw thumbnails: their size does not change its work


def mixture(n: int, dim: int, clusters: int, seed: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """``n`` vectors, into ``out`` when given (a memory-mapped file: 10^7 of them need not fit in memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    width = rng.uniform(0.3, 1.0, clusters).astype(np.float32)
    weights = rng.dirichlet(np.full(clusters, 0.5))
    out = np.empty((n, dim), np.float32) if out is None else out
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        c = rng.choice(clusters, m, p=weights)
        x = centres[c] + width[c, None] * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def workdir(n: int, folder: Path, dim: int = 128, clusters: int = 200, seed: int = 0,
            max_memory_mb: float = MAX_MEMORY_MB, random_anomaly: bool = False) -> dict:
    """Build (or reuse, when it already holds ``n`` galaxies) a synthetic workdir; returns build timings.

    ``max_memory_mb`` is the index's memory budget (above it: IVF-PQ). ``random_anomaly`` saves random anomaly
    scores instead of running the unsupervised scorer, whose k-NN pass over every galaxy takes hours at 10^7 on
    two cores: the server's costs do not depend on the scores' values, only on their number."""
    folder = Path(folder)
    store = Workdir(folder).store
    if (store / META).exists() and json.loads((store / META).read_text())["count"] == n \
            and (folder / MANIFEST).exists() and (folder / ANOMALY).exists():
        return {"reused": str(folder)}
    store.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.char.add("S", np.char.zfill(np.arange(n).astype(str), 8))
    images = np.lib.format.open_memmap(store / IMAGES, mode="w+", dtype=np.float32, shape=(n, *CUTOUT))
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        images[start : start + m] = rng.normal(size=(m, *CUTOUT)).astype(np.float32)
    images.flush()
    Table({"id": ids, "ra": rng.uniform(0, 360, n), "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
           "mag_r": rng.uniform(14, 22, n).astype(np.float32)}).write(store / CATALOG, overwrite=True)
    (store / META).write_text(json.dumps({"count": n, "shape": list(CUTOUT), "bands": ["r"], "noise": [1.0]}))
    vectors = np.lib.format.open_memmap(folder / EMBEDDINGS, mode="w+", dtype=np.float32, shape=(n, dim))
    mixture(n, dim, clusters, seed, vectors)
    vectors.flush()
    del vectors
    np.save(folder / EMBEDDING_IDS, ids)
    (folder / EMBEDDING_INFO).write_text(json.dumps({"model_sha256": "synthetic", "dim": dim, "count": n,
                                                      "normalised": True}))
    t0 = time.perf_counter()
    manifest = index.build(folder, max_memory_mb=max_memory_mb)
    t1 = time.perf_counter()
    sky_cells.build_for_store(folder)
    t2 = time.perf_counter()
    if random_anomaly:
        _random_anomaly_scores(folder, ids, rng)
    else:
        anomaly.build(folder)
    return {"index_type": manifest["index_type"], "index_build_s": round(t1 - t0, 1),
            "index_recall_at_50": manifest["recall_at_50"], "sky_cells_s": round(t2 - t1, 1),
            "anomaly_scores": "random" if random_anomaly else "built",
            "anomaly_build_s": round(time.perf_counter() - t2, 1)}


def _random_anomaly_scores(folder: Path, ids: np.ndarray, rng: np.random.Generator) -> None:
    """Anomaly scores of the shape ``anomaly.build`` saves, drawn at random (see ``workdir``)."""
    n = len(ids)
    coords = rng.normal(size=(n, anomaly.PCA_DIM)).astype(np.float32)
    np.savez(folder / ANOMALY, ids=ids, combined=rng.random(n).astype(np.float32), pca=coords, coords=coords)
    (folder / ANOMALY_INFO).write_text(json.dumps({"count": n, "ids_digest": ids_digest(ids), "random": True}))
