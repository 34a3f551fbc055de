"""The simulated researcher of eval's anomaly block (galsearch.eval.anomaly)."""

from __future__ import annotations

from conftest import anomalous_survey as _survey

from galsearch.eval.anomaly import simulate, simulated_ratings
from index_builder.anomaly import score as unsupervised_scores


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
