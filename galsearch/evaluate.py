"""``galsearch eval``: how well the embedding groups galaxies that share a label, against two baselines.

precision@k = fraction of a galaxy's k nearest neighbours (itself excluded) with its label, averaged over all
galaxies. Baselines, computed in the same run on the same galaxies: ``pca_pixels`` (PCA of the asinh-stretched
pixels to the embedding's dimension, Euclidean) and ``random_init`` (the same encoder architecture, untrained,
encoded the same way) — a learned embedding has to beat both to be worth its training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from embedder.encode import encode_array
from embedder.model import Encoder, load_encoder
from embedder.preprocess import to_model_input
from embedder.store import Store
from index_builder.index import EMBEDDING_IDS, EMBEDDINGS, exact_knn

PCA_FIT_MAX = 20_000


def precision_at_k(neighbours: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-galaxy fraction of its first ``k`` neighbours sharing its label."""
    return (labels[neighbours[:, :k]] == labels[:, None]).mean(1)


def summarise(vectors: np.ndarray, labels: np.ndarray, metric: str, k: int = 10) -> dict:
    _, nbrs = exact_knn(vectors, k, metric)
    p = precision_at_k(nbrs, labels, k)
    per_class = {str(c): {f"precision_at_{k}": round(float(p[labels == c].mean()), 4), "count": int((labels == c).sum())}
                 for c in np.unique(labels)}
    return {f"precision_at_{k}": round(float(p.mean()), 4), "per_class": per_class}


def pixel_pca(store: Store, dim: int, seed: int, batch: int = 2048) -> np.ndarray:
    """PCA of asinh-stretched pixels (the classic baseline); fitted on at most PCA_FIT_MAX galaxies."""
    noise = torch.from_numpy(store.noise)
    size = store.meta["shape"][-1]

    def flat(rows: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(store.images[rows]))
        return to_model_input(x, noise, size).reshape(len(rows), -1).numpy()

    n = len(store)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=min(n, PCA_FIT_MAX), replace=False))
    pca = PCA(n_components=min(dim, len(fit_rows)), svd_solver="randomized", random_state=seed).fit(flat(fit_rows))
    return np.concatenate([pca.transform(flat(np.arange(s, min(n, s + batch)))) for s in range(0, n, batch)])


def evaluate(workdir: Path, label_col: str = "morphology", k: int = 10, seed: int = 0) -> dict:
    workdir = Path(workdir)
    store = Store(workdir / "store")
    if label_col not in store.catalog.colnames:
        raise ValueError(f"catalog has no column {label_col!r}; choose one of {', '.join(store.catalog.colnames)}")
    emb = np.load(workdir / EMBEDDINGS, mmap_mode="r")
    if not np.array_equal(np.load(workdir / EMBEDDING_IDS), store.ids):
        raise ValueError("embeddings are not aligned with the store; re-run `galsearch embed`")
    labels = np.asarray(store.catalog[label_col]).astype(str)
    learned = summarise(np.asarray(emb), labels, "ip", k)

    _, cfg = load_encoder(workdir / "model.pt")
    torch.manual_seed(seed)
    untrained = Encoder(cfg["in_channels"], cfg["width"])
    random_vecs = encode_array(untrained, store.images, np.asarray(cfg["noise"]), cfg["input_size"],
                               torch.device("cpu"))
    baselines = {
        "pca_pixels": summarise(pixel_pca(store, emb.shape[1], seed), labels, "l2", k),
        "random_init": summarise(random_vecs, labels, "ip", k),
    }
    return {
        "n": len(store),
        "label": label_col,
        "dim": int(emb.shape[1]),
        f"precision_at_{k}": learned[f"precision_at_{k}"],
        "per_class": learned["per_class"],
        "baselines": baselines,
    }


def write(result: dict, workdir: Path) -> Path:
    path = Path(workdir) / "eval.json"
    path.write_text(json.dumps(result, indent=2))
    return path
