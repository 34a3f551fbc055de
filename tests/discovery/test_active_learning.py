"""The active-learning model of what a researcher finds interesting (discovery.active_learning)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import anomalous_survey as _survey

from discovery.active_learning import RatingModel, rank


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
