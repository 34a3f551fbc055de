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
from survey.store import CATALOG, IMAGES, META
from survey.workdir import ANOMALY, EMBEDDING_IDS, EMBEDDING_INFO, EMBEDDINGS, MANIFEST, Workdir

CHUNK = 100_000
CUTOUT = (1, 8, 8)  # the server only reads cutouts to draw thumbnails: their size does not change its work


def mixture(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    width = rng.uniform(0.3, 1.0, clusters).astype(np.float32)
    weights = rng.dirichlet(np.full(clusters, 0.5))
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        c = rng.choice(clusters, m, p=weights)
        x = centres[c] + width[c, None] * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def workdir(n: int, folder: Path, dim: int = 128, clusters: int = 200, seed: int = 0) -> dict:
    """Build (or reuse, when it already holds ``n`` galaxies) a synthetic workdir; returns build timings."""
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
    np.save(folder / EMBEDDINGS, mixture(n, dim, clusters, seed))
    np.save(folder / EMBEDDING_IDS, ids)
    (folder / EMBEDDING_INFO).write_text(json.dumps({"model_sha256": "synthetic", "dim": dim, "count": n,
                                                      "normalised": True}))
    t0 = time.perf_counter()
    manifest = index.build(folder)
    sky_cells.build_for_store(folder)
    t1 = time.perf_counter()
    anomaly.build(folder)
    return {"index_type": manifest["index_type"], "index_build_s": round(t1 - t0, 1),
            "anomaly_build_s": round(time.perf_counter() - t1, 1)}
