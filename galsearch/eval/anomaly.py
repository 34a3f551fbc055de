"""Simulated researcher for the anomaly ranking (the ``anomaly`` block of ``galsearch eval``).

The researcher knows the demo catalog's truth: ``interesting`` galaxies (rings, mergers, lenses) rate 4-5,
artifacts 0-1, everything else 0-2, each drawn at random in its range. They rate, in batches of ``batch``,
the top unrated galaxies of the current ranking, which is retrained after every batch. Reported: the share of
interesting galaxies in the survey-wide top 100 after 0, 50, 100 and 200 ratings, for the active-learning
ranking and for the isolation forest alone, and how many artifacts the active ranking's top 100 holds.
"""

from __future__ import annotations

import numpy as np

from discovery.active_learning import rank

CHECKPOINTS = (0, 50, 100, 200)
TOP = 100


def simulated_ratings(interesting: np.ndarray, artifact: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(interesting, rng.integers(4, 6, len(interesting)),
                    np.where(artifact, rng.integers(0, 2, len(interesting)), rng.integers(0, 3, len(interesting))))


def top(score: np.ndarray, n: int = TOP) -> np.ndarray:
    return np.argsort(-score, kind="stable")[:n]


def _session(coords: np.ndarray, prior: np.ndarray, truth: np.ndarray, interesting: np.ndarray,
             artifact: np.ndarray, method: str, seed: int, batch: int) -> tuple[dict, dict]:
    """One simulated rating session: interesting share and artifacts in the top 100 at each checkpoint."""
    rated: list[int] = []
    active, artifacts = {}, {}
    for target in range(0, max(CHECKPOINTS) + 1, batch):
        ranking = rank(coords, prior, np.array(rated, int), truth[rated], seed=seed, method=method)
        if target in CHECKPOINTS:
            best = ranking.order[:TOP]
            active[str(target)] = round(float(interesting[best].mean()), 4)
            artifacts[str(target)] = int(artifact[best].sum())
        rated += top(ranking.acquisition, batch).tolist()
    return active, artifacts


def simulate(coords: np.ndarray, prior: np.ndarray, iforest: np.ndarray, interesting: np.ndarray,
             artifact: np.ndarray, seed: int = 0, batch: int = 10) -> dict:
    """``active_learning`` is the app's default (Gaussian process); ``neighbour_score`` the alternative."""
    truth = simulated_ratings(interesting, artifact, seed)
    active, artifacts = _session(coords, prior, truth, interesting, artifact, "gaussian_process", seed, batch)
    neighbour, _ = _session(coords, prior, truth, interesting, artifact, "neighbour_score", seed, batch)
    forest = round(float(interesting[top(iforest)].mean()), 4)
    last = str(max(CHECKPOINTS))
    return {"active_learning": active, "isolation_forest": {str(c): forest for c in CHECKPOINTS},
            "artifacts_in_top_100": {"0": artifacts["0"], last: artifacts[last]},
            "neighbour_score": neighbour, "ratings_per_batch": batch}
