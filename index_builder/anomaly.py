"""Unsupervised anomaly scores, computed once at build time (``anomaly.npz`` in the workdir).

Two views of "unusual" that fail differently, combined by averaging their percentile ranks:
- an isolation forest on a PCA of the embeddings (few random cuts isolate a galaxy unlike the rest);
- the mean cosine distance to a galaxy's k nearest neighbours (a galaxy in an empty region of the embedding).
The PCA coordinates are stored too: the active-learning model works in them (Walmsley et al. 2022).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

from embedder.files import EMBEDDING_IDS, EMBEDDING_INFO, EMBEDDINGS
from embedder.morphometry import LearnedPart
from index_builder.index import EXACT_MAX, drop_self, exact_knn, load as load_index

ANOMALY = "anomaly.npz"
Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
PCA_DIM = 16
FIT_MAX = 50_000
KNN = 10
CHUNK = 65_536


def percentile(x: np.ndarray) -> np.ndarray:
    """Rank of each value in [0, 1] (ties share their mean rank)."""
    return ((rankdata(x) - 1) / max(1, len(x) - 1)).astype(np.float32)


def _knn_similarities(vectors: np.ndarray, k: int, search: Search | None) -> np.ndarray:
    """Cosine similarities of every row to its ``k`` nearest others: exact, or through ``search`` (an index's
    batch k-NN, ``(queries, k) -> (similarities, rows)``) when given: a large survey's approximate index keeps
    this linear in the survey size."""
    if search is None:
        return exact_knn(np.asarray(vectors, np.float32), k, "ip")[0]
    out = np.empty((len(vectors), k), np.float32)
    for s in range(0, len(vectors), CHUNK):
        block = np.ascontiguousarray(vectors[s : s + CHUNK], dtype=np.float32)
        sims, rows = search(block, k + 1)
        out[s : s + len(block)] = drop_self(sims, rows, np.arange(s, s + len(block)), k)[0]
    return out


def unsupervised_scores(vectors: np.ndarray, seed: int = 0, pca_dim: int = PCA_DIM, knn: int = KNN,
                        search: Search | None = None) -> dict:
    """PCA coordinates plus isolation-forest, k-NN and combined scores (higher = more unusual) for every row."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(n, min(n, FIT_MAX), replace=False))
    dim = min(pca_dim, vectors.shape[1], len(fit))
    pca = PCA(dim, random_state=seed).fit(np.asarray(vectors[fit], np.float32))
    coords = np.concatenate([pca.transform(np.asarray(vectors[s : s + CHUNK], np.float32))
                             for s in range(0, n, CHUNK)]).astype(np.float32)
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(coords[fit])
    iforest = -np.concatenate([forest.score_samples(coords[s : s + CHUNK]) for s in range(0, n, CHUNK)])
    knn_distance = (1.0 - _knn_similarities(vectors, min(knn, n - 1), search)).mean(1)
    combined = (percentile(iforest) + percentile(knn_distance)) / 2
    return {"pca": coords, "iforest": iforest.astype(np.float32), "knn_distance": knn_distance.astype(np.float32),
            "combined": combined.astype(np.float32), "explained_variance": float(pca.explained_variance_ratio_.sum())}


def learned_part(workdir: Path, vectors: np.ndarray) -> np.ndarray | LearnedPart:
    """The learned embedding within the workdir's search vectors, without any appended morphometry.

    Measured on the demo survey, morphometry in the anomaly scores fills the unsupervised top 100 with diffuse
    galaxies and artifacts, whose sizes and light profiles are extreme but not interesting (0.34 interesting
    against 0.44 without it). On a survey large enough for an approximate index, the neighbours of the k-NN
    score still come from the index, found in the search space, and are scored in the learned one.
    """
    info = json.loads((Path(workdir) / EMBEDDING_INFO).read_text())
    columns = (info.get("morphometry") or {}).get("columns", 0)
    return LearnedPart(vectors, columns) if columns else vectors


def _rescored(search: Search, learned: LearnedPart) -> Search:
    """An index search for learned-space queries: the query padded with zeros where the morphometry goes finds
    candidates in the search space, which are then scored and ordered by their learned-space similarity."""
    def run(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, rows = search(np.pad(queries, ((0, 0), (0, learned.columns))), k)
        sims = np.einsum("nd,nkd->nk", queries, learned[np.maximum(rows, 0)])
        sims[rows < 0] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")
        return np.take_along_axis(sims, order, 1), np.take_along_axis(rows, order, 1)
    return run


def build(workdir: Path, seed: int = 0, device: str = "auto") -> dict:
    """Score the workdir's embeddings and save them next to the index; returns a summary."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    vectors = learned_part(workdir, np.load(workdir / EMBEDDINGS, mmap_mode="r"))
    search = None
    if len(vectors) >= EXACT_MAX:
        search = load_index(workdir, device=device).search
        if isinstance(vectors, LearnedPart):
            search = _rescored(search, vectors)
    scores = unsupervised_scores(vectors, seed, search=search)
    tmp = workdir / (ANOMALY + ".partial")
    with open(tmp, "wb") as f:  # renamed into place whole: a server starting meanwhile never reads half a file
        np.savez(f, ids=np.load(workdir / EMBEDDING_IDS), **{k: v for k, v in scores.items()
                                                             if isinstance(v, np.ndarray)})
    tmp.replace(workdir / ANOMALY)
    summary = {"count": len(vectors), "pca_dim": int(scores["pca"].shape[1]),
               "explained_variance": round(scores["explained_variance"], 4),
               "seconds": round(time.perf_counter() - t0, 2)}
    (workdir / "anomaly.json").write_text(json.dumps(summary, indent=2))
    return summary


def load(workdir: Path, ids: np.ndarray) -> dict[str, np.ndarray]:
    """The saved scores, computed now if the workdir predates them; checked against the store's ids."""
    path = Path(workdir) / ANOMALY
    if not path.exists():
        build(workdir)
    with np.load(path) as saved:
        scores = {k: saved[k] for k in saved.files}
    if not np.array_equal(scores["ids"].astype(str), np.asarray(ids).astype(str)):
        raise ValueError(f"{path} belongs to other embeddings; re-run `galsearch index`")
    return scores
