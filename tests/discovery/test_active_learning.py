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


@pytest.mark.parametrize("method", ["classifier", "gaussian_process", "neighbour_score"])
def test_rank_without_ratings_is_the_prior_and_rated_rows_rank_by_rating(method: str) -> None:
    x, interesting, _ = _survey()
    prior = np.linspace(0, 1, 840).astype(np.float32)
    r = rank(x, prior, np.array([], int), np.array([]), method=method)
    assert r.method == "unsupervised" and np.array_equal(r.expected, prior) and r.fitted_on == 0
    rows = np.array([800, 801, 802, 803, 804, 805, 5, 6, 7])
    r = rank(x, prior, rows, np.array([5, 4, 5, 4, 5, 4, 0, 1, 0]), method=method)
    assert r.method == method and r.fitted_on == 9
    assert r.expected[800] == 5 and r.expected[5] == 0 and np.isneginf(r.acquisition[rows]).all()
    assert r.expected.max() == 5 and np.all(r.expected[np.setdiff1d(np.arange(840), rows)] < 5)
    assert sorted(r.order[:6]) == list(range(800, 806))  # rated interesting lead: known beats predicted
    assert list(r.order[:3]) == sorted(r.order[:3]) and set(r.order[:3]) == {800, 802, 804}  # by rating
    unrated = np.setdiff1d(np.arange(840), rows)
    assert r.expected[unrated][interesting[unrated]].mean() > r.expected[unrated][~interesting[unrated]].mean()
    assert np.all(r.std[rows] == 0)
    shown = r.order[6:106]
    assert np.isfinite(r.std[shown]).all() or method == "neighbour_score"  # the page's "±" for each prediction


def test_unknown_methods_fail() -> None:
    x, _, _ = _survey()
    with pytest.raises(ValueError, match="unknown anomaly method"):
        rank(x, np.zeros(840, np.float32), np.array([1]), np.zeros(1), method="astrology")


def test_classifier_waits_for_a_galaxy_rated_interesting_then_shows_its_look_alikes() -> None:
    x, interesting, _ = _survey()
    prior = np.linspace(0, 1, 840).astype(np.float32)
    boring = rank(x, prior, np.array([839, 838]), np.array([0, 1]))
    assert boring.method == "unsupervised" and boring.fitted_on == 2
    guesses = [row for row in boring.order if row not in (838, 839)]
    assert guesses[:3] == [837, 836, 835]  # the unsupervised order for all that is not rated
    assert boring.next_to_rate(3) == [837, 836, 835]
    one = rank(x, prior, np.array([839, 810]), np.array([0, 5]))
    assert one.method == "classifier"
    batch = one.next_to_rate(10)
    look_alikes = [row for row in batch if row not in set(np.argsort(-one.prior)[:3].tolist())]
    assert len(look_alikes) >= 7 and np.mean(interesting[look_alikes]) >= 0.5  # its look-alikes (chance: 0.02)


def test_a_first_batch_rated_boring_does_not_hide_the_unusual_end() -> None:
    """The collapse seen on a real survey: the first galaxies shown, the most unusual, are rated boring, and the
    interesting ones sit at the unsupervised extreme just behind them, in the same pocket of the embedding. A model
    that predicts that pocket boring from the first batch never looks there again (the Gaussian process with an
    unconstrained line did: 0 of 30 shown in 90 ratings). Later batches must still reach them."""
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=(n, 6)).astype(np.float32)
    boring, interesting = np.arange(0, 30), np.arange(30, 60)
    x[np.r_[boring, interesting], 1] += 6.0  # one unusual pocket ...
    x[interesting, 2] += 1.0  # ... the interesting ones a little apart within it
    prior = np.linalg.norm(x, axis=1)
    prior[boring] += 20.0  # the boring ones (artifacts) the most unusual of all, the interesting just behind
    prior[interesting] += 10.0
    prior = (prior.argsort().argsort() / (n - 1)).astype(np.float32)
    truth = np.where(np.isin(np.arange(n), interesting), 5, np.where(np.isin(np.arange(n), boring), 0, 1))
    rated = list(rank(x, prior, np.array([], int), np.array([])).order[:10])
    assert set(rated) <= set(boring)  # the first ten shown are rated boring
    for _ in range(8):
        r = rank(x, prior, np.array(rated), truth[rated].astype(float))
        rated += r.next_to_rate(10)
    found = np.isin(rated, interesting).sum()
    assert found >= 20, f"only {found} of 30 interesting galaxies shown in 80 ratings"
    top = rank(x, prior, np.array(rated), truth[rated].astype(float)).order[:100]
    unsupervised_top = np.argsort(-prior)[:100]
    assert np.isin(top, interesting).sum() == 30 >= np.isin(unsupervised_top, interesting).sum()


def test_next_to_rate_mixes_in_the_unsupervised_top_and_skips_what_it_is_told() -> None:
    x, _, _ = _survey()
    prior = np.linspace(0, 1, 840).astype(np.float32)
    r = rank(x, prior, np.array([0, 810]), np.array([0, 5]))
    batch = r.next_to_rate(10)
    assert len(batch) == len(set(batch)) == 10 and not {0, 810} & set(batch)
    unusual = set(np.argsort(-r.prior)[:10].tolist())
    assert len(unusual & set(batch)) >= 3  # EXPLORE_SHARE of the batch at least
    assert not set(r.next_to_rate(10, skip=set(batch))) & set(batch)
    assert r.next_to_rate(10)[:5] == batch[:5]  # deterministic, and any prefix keeps the mix
    fresh = rank(x, prior, np.array([], int), np.array([]))
    assert fresh.next_to_rate(5) == [839, 838, 837, 836, 835]  # no ratings: the unsupervised top


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
    got = active.rank(coords, prior, rows, ratings, method="gaussian_process")
    base = active._prior_line(prior, rows, ratings)
    mean, std = active.RatingModel(coords, rows, ratings - base[rows]).predict(coords)
    exact = mean + base + active.KAPPA * std
    exact[rows] = -np.inf
    assert np.array_equal(np.argsort(-got.acquisition)[:25], np.argsort(-exact)[:25])
    assert np.allclose(np.sort(got.acquisition)[-25:], np.sort(exact)[-25:], atol=1e-4)
