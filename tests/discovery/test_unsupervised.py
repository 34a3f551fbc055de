"""Unsupervised anomaly scores (discovery.unsupervised, scored through index_builder.anomaly)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import anomalous_survey as _survey

from discovery.unsupervised import percentile
from index_builder.anomaly import score as unsupervised_scores


def test_percentile_ranks() -> None:
    assert percentile(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == pytest.approx([1.0, 0.0, 0.5, 0.5])


def test_unsupervised_scores_find_the_outliers() -> None:
    x, interesting, artifact = _survey()
    s = unsupervised_scores(x, seed=0, pca_dim=4, knn=5)
    assert s["pca"].shape == (840, 4) and 0 < s["explained_variance"] <= 1
    top = np.argsort(-s["combined"])[:40]
    assert (interesting | artifact)[top].mean() > 0.8  # both kinds of unusual, as expected without ratings
    assert s["combined"].min() >= 0 and s["combined"].max() <= 1
