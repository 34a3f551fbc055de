"""Simulated researcher for the anomaly ranking (the ``anomaly`` block of ``galsearch eval``).

The researcher knows the demo catalog's truth: ``interesting`` galaxies (rings, mergers, lenses) rate 4-5,
artifacts 0-1, everything else 0-2, each drawn at random in its range. They rate, in batches of ``batch``,
the top unrated galaxies of the current ranking, which is retrained after every batch. Reported: the share of
interesting galaxies in the survey-wide top 100 after 0, 50, 100 and 200 ratings, for the active-learning
ranking and for the isolation forest alone, and how many artifacts the active ranking's top 100 holds.
"""

from __future__ import annotations

import numpy as np

from app.active import rank

CHECKPOINTS = (0, 50, 100, 200)
TOP = 100


def simulated_ratings(interesting: np.ndarray, artifact: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(interesting, rng.integers(4, 6, len(interesting)),
                    np.where(artifact, rng.integers(0, 2, len(interesting)), rng.integers(0, 3, len(interesting))))


def top(score: np.ndarray, n: int = TOP) -> np.ndarray:
    return np.argsort(-score, kind="stable")[:n]


def simulate(coords: np.ndarray, prior: np.ndarray, iforest: np.ndarray, interesting: np.ndarray,
             artifact: np.ndarray, seed: int = 0, batch: int = 10) -> dict:
    truth = simulated_ratings(interesting, artifact, seed)
    rated: list[int] = []
    active, artifacts = {}, {}
    for target in range(0, max(CHECKPOINTS) + 1, batch):
        ranking = rank(coords, prior, np.array(rated, int), truth[rated], seed=seed)
        if target in CHECKPOINTS:
            best = ranking.order[:TOP]
            active[str(target)] = round(float(interesting[best].mean()), 4)
            artifacts[str(target)] = int(artifact[best].sum())
        rated += top(ranking.acquisition, batch).tolist()
    forest = round(float(interesting[top(iforest)].mean()), 4)
    return {"active_learning": active, "isolation_forest": {str(c): forest for c in CHECKPOINTS},
            "artifacts_in_top_100": {"0": artifacts["0"], str(max(CHECKPOINTS)): artifacts[str(max(CHECKPOINTS))]},
            "ratings_per_batch": batch}
