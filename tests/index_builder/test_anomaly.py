"""The anomaly scores' build stage: neighbours through the index, the learned part of the vectors."""

from __future__ import annotations

import numpy as np
from conftest import anomalous_survey as _survey

from index_builder.anomaly import score as unsupervised_scores


def test_knn_distance_through_an_index_matches_exact_search() -> None:
    from index_builder.index import make_index

    x, _, _ = _survey(3)
    index, _ = make_index(x, "flat")
    exact = unsupervised_scores(x, seed=0, pca_dim=4, knn=5)
    via_index = unsupervised_scores(x, seed=0, pca_dim=4, knn=5, search=index.search)
    assert np.allclose(exact["knn_distance"], via_index["knn_distance"], atol=1e-5)


def test_anomaly_scores_use_the_learned_part_of_the_search_vectors(workdir) -> None:
    from embedder.morphometry import NAMES, LearnedPart
    from index_builder.anomaly import _knn_similarities, _rescored, learned_part
    from index_builder.index import make_index

    search_vectors = np.load(workdir / "embeddings.npy")
    learned = learned_part(workdir, search_vectors)
    assert isinstance(learned, LearnedPart)
    assert learned.shape == (len(search_vectors), search_vectors.shape[1] - len(NAMES))
    saved = np.load(workdir / "anomaly.npz")
    scores = unsupervised_scores(learned, seed=1)
    assert np.allclose(saved["combined"], scores["combined"], atol=1e-5)  # built with --seed 1
    # ... while the rating model works in a PCA of the search vectors, morphometry and all
    from discovery.unsupervised import pca_coordinates
    assert np.allclose(saved["coords"], pca_coordinates(search_vectors, 1, scores["pca"].shape[1])[0], atol=1e-4)
    assert not np.allclose(saved["coords"], saved["pca"], atol=1e-2)

    # A survey large enough for an index: candidates come from the search space, scores from the learned one.
    index, _ = make_index(search_vectors, "flat")
    queries = learned[:50]
    sims, rows = _rescored(index.search, learned)(queries, 6)
    assert np.allclose(sims, np.einsum("nd,nkd->nk", queries, learned[rows]), atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first
    assert _knn_similarities(learned, 5, _rescored(index.search, learned)).shape == (len(learned), 5)
