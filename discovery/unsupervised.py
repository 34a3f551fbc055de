"""Unsupervised anomaly scores: what is unusual in a survey before anyone has rated a galaxy.

Two views of "unusual" that fail differently, combined by averaging their percentile ranks:
- an isolation forest on a PCA of the embeddings (few random cuts isolate a galaxy unlike the rest);
- the mean cosine distance to a galaxy's k nearest neighbours (a galaxy in an empty region of the embedding).
The PCA coordinates are kept too (``pca_coordinates``; Walmsley et al. 2022 fit their rating model in such a
space); the active-learning model works in those of the search vectors (``index_builder.anomaly``). The neighbours
come from the caller (``index_builder.anomaly`` finds them exactly, or through a large survey's index).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

PCA_DIM = 16
FIT_MAX = 50_000
KNN = 10  # neighbours of the k-NN distance score
CHUNK = 65_536


def percentile(x: np.ndarray) -> np.ndarray:
    """Rank of each value in [0, 1] (ties share their mean rank)."""
    return ((rankdata(x) - 1) / max(1, len(x) - 1)).astype(np.float32)


def pca_coordinates(vectors: np.ndarray, seed: int = 0, pca_dim: int = PCA_DIM) -> tuple[np.ndarray, float, np.ndarray]:
    """Every row of ``vectors`` in a PCA fitted on at most ``FIT_MAX`` of them (read block by block), the variance
    it explains, and the rows it was fitted on."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(n, min(n, FIT_MAX), replace=False))
    dim = min(pca_dim, vectors.shape[1], len(fit))
    pca = PCA(dim, random_state=seed).fit(np.asarray(vectors[fit], np.float32))
    coords = np.concatenate([pca.transform(np.asarray(vectors[s : s + CHUNK], np.float32))
                             for s in range(0, n, CHUNK)]).astype(np.float32)
    return coords, float(pca.explained_variance_ratio_.sum()), fit


def unsupervised_scores(vectors: np.ndarray, knn_similarities: np.ndarray, seed: int = 0,
                        pca_dim: int = PCA_DIM) -> dict:
    """PCA coordinates plus isolation-forest, k-NN and combined scores (higher = more unusual) for every row of
    ``vectors``, given each row's cosine similarities to its nearest others (``knn_similarities``, (N, k))."""
    n = len(vectors)
    coords, explained, fit = pca_coordinates(vectors, seed, pca_dim)
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(coords[fit])
    iforest = -np.concatenate([forest.score_samples(coords[s : s + CHUNK]) for s in range(0, n, CHUNK)])
    knn_distance = (1.0 - knn_similarities).mean(1)
    combined = (percentile(iforest) + percentile(knn_distance)) / 2
    return {"pca": coords, "iforest": iforest.astype(np.float32), "knn_distance": knn_distance.astype(np.float32),
            "combined": combined.astype(np.float32), "explained_variance": explained}
