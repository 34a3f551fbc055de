"""The simulated researcher of eval's anomaly block (galsearch.eval.anomaly)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from conftest import anomalous_survey as _survey

from galsearch.eval.anomaly import Interest, InterestSpec, look_alikes, matching, session, simulate, simulated_ratings
from index_builder.anomaly import score as unsupervised_scores


def test_the_rater_is_noisy_but_mostly_right() -> None:
    _, interesting, artifact = _survey(1)
    interest = Interest(interesting, artifact)
    a, b = simulated_ratings(interest, seed=0), simulated_ratings(interest, seed=1)
    assert not np.array_equal(a, b) and a.min() >= 0 and a.max() <= 5
    assert np.mean(a[interesting] >= 4) >= 0.7 and np.mean(a[artifact] == 0) >= 0.7
    ordinary = ~interesting & ~artifact
    off = ~np.isin(a[ordinary], [0, 1, 2])
    assert 0 < off.mean() < 0.2  # about NOISE of them off by 1 or 2


def test_simulate_reports_median_and_worst_beside_the_baselines() -> None:
    x, interesting, artifact = _survey(1)
    s = unsupervised_scores(x, seed=0, pca_dim=4, knn=5)
    out = simulate(s["pca"], s["combined"], x, Interest(interesting, artifact), seeds=4)
    assert out["raters"] == 4 and out["interesting_count"] == 20 and out["achievable"] == 0.2
    for name in ("active_learning", "look_alikes"):
        assert set(out[name]) == {"0", "50", "100", "200"}
        assert all(len(v["seeds"]) == 4 and v["worst"] <= v["median"] for v in out[name].values())
        assert out[f"{name}_boring"]["200"]["worst"] >= out[f"{name}_boring"]["200"]["median"]  # worst: the most
    assert out["active_learning"]["0"]["median"] == out["unsupervised"]
    assert out["active_learning"]["200"]["worst"] >= 0.19  # all 20 interesting galaxies in the top 100
    assert out["active_learning"]["50"]["worst"] >= out["unsupervised"]


def test_a_session_rates_what_the_strategy_shows_in_batches() -> None:
    x, interesting, artifact = _survey(0)
    interest = Interest(interesting, artifact)
    shown: list[int] = []
    base = look_alikes(x, np.linspace(0, 1, len(x)).astype(np.float32))

    def strategy(rows: np.ndarray, ratings: np.ndarray, batch: int):
        shown.append(len(rows))
        return base(rows, ratings, batch)

    out = session(strategy, simulated_ratings(interest, 0), interest, batch=10, checkpoints=(0, 30))
    assert shown == [0, 10, 20, 30] and set(out["interesting"]) == {"0", "30"}


def test_what_is_interesting_is_read_from_any_column() -> None:
    cat = Table({"merger": [1, 0, 1, 0], "gz1_class": ["merger", "dont_know", " Merger ", "spiral"],
                 "flag": [True, False, True, False]})
    cat["note"] = MaskedColumn(["ring", "ring", "x", "y"], mask=[False, True, False, False])
    assert list(matching(cat["merger"], ["1"])) == [True, False, True, False]
    assert list(matching(cat["gz1_class"], ["merger"])) == [True, False, True, False]
    assert list(matching(cat["flag"], ["true"])) == [True, False, True, False]
    assert list(matching(cat["note"], ["ring"])) == [True, False, False, False]  # masked cells never match
    spec = InterestSpec("merger", ("1",), "gz1_class", ("dont_know",))
    got = spec.of(cat)
    assert list(got.interesting) == [True, False, True, False] and list(got.boring) == [False, True, False, False]
    assert InterestSpec().of(cat) is None  # no `interesting` column: the block is skipped
    with pytest.raises(ValueError, match="no column 'interesting'"):
        InterestSpec().of(cat, required=True)
    with pytest.raises(ValueError, match="nothing for the simulated researcher"):
        InterestSpec("merger", ("7",)).of(cat)
