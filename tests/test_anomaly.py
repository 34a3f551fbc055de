from __future__ import annotations

import numpy as np
import pytest

from discovery.active_learning import RatingModel, rank
from discovery.unsupervised import percentile
from galsearch.eval.anomaly import simulate, simulated_ratings
from index_builder.anomaly import score as unsupervised_scores


def _survey(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """800 ordinary galaxies in one blob; 20 interesting ones scattered off to one side, 20 artifacts to another."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.5, size=(840, 8))
    x[:800, 2] += 3.0
    x[800:] += rng.normal(scale=1.5, size=(40, 8))
    x[800:820, 0] += 3.0  # interesting
    x[820:, 1] += 3.0  # artifacts: unusual too, but boring
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    interesting, artifact = np.zeros(840, bool), np.zeros(840, bool)
    interesting[800:820], artifact[820:] = True, True
    return x.astype(np.float32), interesting, artifact


def test_percentile_ranks() -> None:
    assert percentile(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == pytest.approx([1.0, 0.0, 0.5, 0.5])


def test_unsupervised_scores_find_the_outliers() -> None:
    x, interesting, artifact = _survey()
    s = unsupervised_scores(x, seed=0, pca_dim=4, knn=5)
    assert s["pca"].shape == (840, 4) and 0 < s["explained_variance"] <= 1
    top = np.argsort(-s["combined"])[:40]
    assert (interesting | artifact)[top].mean() > 0.8  # both kinds of unusual, as expected without ratings
    assert s["combined"].min() >= 0 and s["combined"].max() <= 1


def test_gp_interpolates_ratings_and_is_unsure_far_away() -> None:
    coords = np.array([[0.0], [1.0], [2.0], [10.0]], np.float32)
    model = RatingModel(coords, np.array([0, 1, 2]), np.array([0.0, 2.5, 5.0]))
    mean, std = model.predict(coords)
    assert mean[:3] == pytest.approx([0.0, 2.5, 5.0], abs=0.5)
    assert std[3] > 3 * std[1]


def test_rank_without_ratings_is_the_prior_and_rated_rows_rank_by_rating() -> None:
    x, interesting, _ = _survey()
    prior = np.linspace(0, 1, 840).astype(np.float32)
    r = rank(x, prior, np.array([], int), np.array([]))
    assert r.method == "unsupervised" and np.array_equal(r.expected, prior)
    rows = np.array([800, 801, 5, 6, 7])
    r = rank(x, prior, rows, np.array([5, 4, 0, 1, 0]))
    assert r.method == "gaussian_process"
    assert r.expected[800] == 5 and r.expected[5] == 0 and np.isneginf(r.acquisition[rows]).all()
    assert r.expected.max() == 5 and np.all(r.expected[np.setdiff1d(np.arange(840), rows)] < 5)
    unrated = np.setdiff1d(np.arange(840), rows)
    assert r.expected[unrated][interesting[unrated]].mean() > r.expected[unrated][~interesting[unrated]].mean() + 1


def test_simulated_researcher_and_active_learning_beat_the_forest() -> None:
    x, interesting, artifact = _survey(1)
    truth = simulated_ratings(interesting, artifact, seed=0)
    assert set(truth[interesting]) <= {4, 5} and set(truth[artifact]) <= {0, 1} and truth.max() <= 5
    s = unsupervised_scores(x, seed=0, pca_dim=4, knn=5)
    out = simulate(s["pca"], s["combined"], s["iforest"], interesting, artifact, seed=0)
    assert set(out["active_learning"]) == {"0", "50", "100", "200"}
    assert set(out["artifacts_in_top_100"]) == {"0", "200"}
    assert out["active_learning"]["200"] >= 0.19  # all 20 interesting galaxies in the top 100
    assert out["active_learning"]["200"] > out["isolation_forest"]["200"] or out["isolation_forest"]["200"] == 0.2
    assert out["artifacts_in_top_100"]["200"] <= out["artifacts_in_top_100"]["0"]


def test_neighbour_score_alternative_ranks_and_unknown_methods_fail() -> None:
    x, interesting, _ = _survey()
    prior = np.linspace(0, 1, 840).astype(np.float32)
    rows = np.array([800, 801, 802, 5, 6, 7])
    r = rank(x, prior, rows, np.array([5, 5, 4, 0, 1, 0]), method="neighbour_score")
    assert r.method == "neighbour_score" and sorted(r.order[:2]) == [800, 801]  # the two rated 5
    unrated = np.setdiff1d(np.arange(840), rows)
    assert r.expected[unrated][interesting[unrated]].mean() > r.expected[unrated][~interesting[unrated]].mean()
    with pytest.raises(ValueError, match="unknown anomaly method"):
        rank(x, prior, rows, np.zeros(6), method="astrology")


def test_fast_kernel_path_matches_the_direct_one_and_the_bound_holds() -> None:
    rng = np.random.default_rng(2)
    coords = rng.normal(size=(500, 6)).astype(np.float32)
    rows = rng.choice(500, 40, replace=False)
    model = RatingModel(coords, rows, rng.integers(0, 6, 40).astype(float))
    fast_mean, fast_std = model.predict(coords)
    _, bound = model.predict(coords, std="bound")
    model._max_b = np.inf  # forces the direct kernel
    mean, std = model.predict(coords)
    assert np.allclose(fast_mean, mean, atol=1e-3) and np.allclose(fast_std, std, atol=1e-3)
    assert np.all(bound >= std - 1e-3)
    assert model.predict(coords, std="none")[1] is None


def test_best_first_variance_keeps_the_top_of_the_acquisition_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    import discovery.active_learning as active

    monkeypatch.setattr(active, "EXACT_TOP", 25)
    monkeypatch.setattr(active, "BOUND_STEP", 16)
    rng = np.random.default_rng(5)
    coords = rng.normal(size=(3000, 4)).astype(np.float32)
    prior = rng.random(3000).astype(np.float32)
    rows = rng.choice(3000, 30, replace=False)
    ratings = rng.integers(0, 6, 30).astype(float)
    got = active.rank(coords, prior, rows, ratings)
    base = active._prior_line(prior, rows, ratings)
    mean, std = active.RatingModel(coords, rows, ratings - base[rows]).predict(coords)
    exact = mean + base + active.KAPPA * std
    exact[rows] = -np.inf
    assert np.array_equal(np.argsort(-got.acquisition)[:25], np.argsort(-exact)[:25])
    assert np.allclose(np.sort(got.acquisition)[-25:], np.sort(exact)[-25:], atol=1e-4)


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
    saved = np.load(workdir / "anomaly.npz")["combined"]
    assert np.allclose(saved, unsupervised_scores(learned, seed=1)["combined"], atol=1e-5)  # built with --seed 1

    # A survey large enough for an index: candidates come from the search space, scores from the learned one.
    index, _ = make_index(search_vectors, "flat")
    queries = learned[:50]
    sims, rows = _rescored(index.search, learned)(queries, 6)
    assert np.allclose(sims, np.einsum("nd,nkd->nk", queries, learned[rows]), atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first
    assert _knn_similarities(learned, 5, _rescored(index.search, learned)).shape == (len(learned), 5)
