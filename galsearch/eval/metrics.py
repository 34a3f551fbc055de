"""Label-based quality measures of an embedding: neighbour precision, rare-class recall, linear probes.

All take plain arrays (vectors, string labels) so the same code scores the learned embedding and every
baseline.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from index_builder.index import exact_knn

RARE_CLASSES = ("ring", "merger", "lens", "artifact")
TAG_CLASSES = ("diffuse", "edge_on", "ring", "merger", "lens", "artifact")  # the demo survey's tags
RARE_FRACTION = 0.02  # with another label column, classes at most this common count as rare
LABEL_FRACTIONS = (0.01, 0.1, 1.0)
TEST_FRACTION = 0.3


def precision_at_k(neighbours: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-galaxy fraction of its first ``k`` neighbours sharing its label."""
    return (labels[neighbours[:, :k]] == labels[:, None]).mean(1)


def rare_classes(labels: np.ndarray) -> list[str]:
    """The survey's rare classes: the demo's named ones when present, else every class of at most 2 %."""
    values, counts = np.unique(labels, return_counts=True)
    present = {str(v): int(c) for v, c in zip(values, counts) if c >= 2}
    named = [c for c in RARE_CLASSES if c in present]
    return named or sorted(c for c, n in present.items() if n <= RARE_FRACTION * len(labels))


def tag_classes(labels: np.ndarray) -> list[str]:
    """Classes to simulate tagging: the demo's tagged classes when present, else every class with 2+ members."""
    values, counts = np.unique(labels, return_counts=True)
    present = [str(v) for v, c in zip(values, counts) if c >= 2]
    return [c for c in TAG_CLASSES if c in present] or present


def rare_recall_at_k(neighbours: np.ndarray, labels: np.ndarray, k: int) -> dict[str, float]:
    """For each rare class, the share of its other members among the ``k`` neighbours of one member, averaged.

    The denominator is min(k, members - 1) so that a class larger than k can still reach 1.
    """
    out = {}
    for c in rare_classes(labels):
        members = np.flatnonzero(labels == c)
        found = (labels[neighbours[members, :k]] == c).sum(1)
        out[c] = round(float((found / min(k, len(members) - 1)).mean()), 4)
    return out


def neighbour_scores(vectors: np.ndarray, labels: np.ndarray, metric: str, ks: tuple[int, ...] = (10, 50)) -> dict:
    """precision@k for each k (overall and per class) and rare-class recall@max(k), from one exact k-NN search."""
    kmax = min(max(ks), len(labels) - 1)
    _, nbrs = exact_knn(vectors, kmax, metric)
    out: dict = {}
    per_class: dict = {str(c): {"count": int((labels == c).sum())} for c in np.unique(labels)}
    for k in ks:
        p = precision_at_k(nbrs, labels, min(k, kmax))
        out[f"precision_at_{k}"] = round(float(p.mean()), 4)
        for c, entry in per_class.items():
            entry[f"precision_at_{k}"] = round(float(p[labels == c].mean()), 4)
    out["per_class"] = per_class
    out[f"rare_recall_at_{max(ks)}"] = rare_recall_at_k(nbrs, labels, kmax)
    return out


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified train/test split of row indices; every class with 2+ members has one in each part."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, round(TEST_FRACTION * len(rows))) if len(rows) > 1 else 0
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def label_subset(train: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``fraction`` of the training rows, stratified, keeping at least one example of every class."""
    if fraction >= 1.0:
        return train
    rng = np.random.default_rng(seed)
    picked = [rng.choice(rows, max(1, round(fraction * len(rows))), replace=False)
              for c in np.unique(labels[train]) if len(rows := train[labels[train] == c])]
    return np.sort(np.concatenate(picked))


def linear_probe(vectors: np.ndarray, labels: np.ndarray, seed: int,
                 fractions: tuple[float, ...] = LABEL_FRACTIONS) -> dict[str, float]:
    """Test accuracy of a logistic regression on frozen ``vectors`` trained with each fraction of the labels."""
    train, test = split(labels, seed)
    out = {}
    for f in fractions:
        rows = label_subset(train, labels, f, seed)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        clf.fit(vectors[rows], labels[rows])
        out[str(f)] = round(float((clf.predict(vectors[test]) == labels[test]).mean()), 4)
    return out
