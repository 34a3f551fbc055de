"""A simulated researcher hunting anomalies (the ``anomaly`` block of ``galsearch eval``, and ``bench.discovery``).

What the researcher finds interesting is a parameter: the catalog rows whose ``--interesting-col`` holds one of the
``--interesting`` values (default: the demo survey's ``interesting`` flag) rate 4-5, the boring anomalies (rows whose
``--boring-col`` holds a ``--boring`` value, e.g. artifacts) rate 0, everything else 0-2. The rater is noisy: about
``NOISE`` of the ratings are off by 1 or 2. They rate what the anomaly page shows under "Rate next", ``batch`` at a
time, and the ranking is refitted after every batch, as the page does.

Reported, at 0, 50, 100 and 200 ratings: the interesting share of the survey-wide top 100, as median and worst over
``seeds`` raters (each seed draws its own ratings and noise), beside two rankings a researcher could make by hand in
the same sessions: the unsupervised ranking alone, and look-alike search (rate the nearest unrated look-alikes of
the galaxies rated interesting; until one is, the most unusual by the unsupervised score). The best achievable share
is min(1, interesting galaxies / 100).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from discovery.active_learning import LIKED, TOP, rank

CHECKPOINTS = (0, 50, 100, 200)
NOISE = 0.1  # share of ratings off by 1 or 2
SEEDS = 10
BATCH = 10

# One step of a session: rated rows and their ratings -> (the top ``TOP`` now, the next batch to rate)
Strategy = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, list[int]]]


@dataclass(frozen=True)
class Interest:
    """Who is interesting and who is a boring anomaly to this researcher (boolean masks over the survey)."""

    interesting: np.ndarray
    boring: np.ndarray

    @property
    def achievable(self) -> float:
        return min(1.0, float(self.interesting.sum()) / TOP)


@dataclass(frozen=True)
class InterestSpec:
    """Which catalog values the simulated researcher finds interesting, and which boring (the eval flags)."""

    column: str = "interesting"
    values: tuple[str, ...] = ("true",)
    boring_column: str = "morphology"
    boring: tuple[str, ...] = ("artifact",)

    def of(self, catalog: Table, required: bool = False) -> Interest | None:
        """The masks over ``catalog``; None when its interesting column is absent, unless ``required``."""
        if self.column not in catalog.colnames:
            if required:
                raise ValueError(f"catalog has no column {self.column!r} for --interesting-col; choose one of "
                                 f"{', '.join(catalog.colnames)}")
            return None
        interesting = matching(catalog[self.column], list(self.values))
        if not interesting.any():
            raise ValueError(f"no galaxy has {self.column} in {list(self.values)}: nothing for the simulated "
                             "researcher to find")
        boring = (matching(catalog[self.boring_column], list(self.boring)) & ~interesting
                  if self.boring and self.boring_column in catalog.colnames else np.zeros(len(catalog), bool))
        return Interest(interesting, boring)


def matching(column: np.ndarray, values: list[str]) -> np.ndarray:
    """Rows whose ``column`` holds one of ``values``, compared as trimmed lower-case text; a boolean column
    matches ``true``/``1``/``yes`` and ``false``/``0``/``no``."""
    masked = np.asarray(getattr(column, "mask", False), bool)
    column = np.asarray(getattr(column, "data", column))
    wanted = {v.strip().lower() for v in values}
    if column.dtype == bool:
        truthy, falsy = {"true", "1", "yes"}, {"false", "0", "no"}
        hit = np.where(column, bool(wanted & truthy), bool(wanted & falsy))
    else:
        hit = np.isin(np.char.lower(np.char.strip(column.astype(str))), sorted(wanted))
    return hit & ~masked


def simulated_ratings(interest: Interest, seed: int, noise: float = NOISE) -> np.ndarray:
    """One rater's rating of every galaxy: interesting 4-5, boring 0, the rest 0-2; ``noise`` of them off by 1-2."""
    rng = np.random.default_rng(seed)
    n = len(interest.interesting)
    ratings = np.where(interest.interesting, rng.integers(4, 6, n), np.where(interest.boring, 0, rng.integers(0, 3, n)))
    off = rng.random(n) < noise
    return np.where(off, np.clip(ratings + rng.choice([-2, -1, 1, 2], n), 0, 5), ratings)


def active_learning(coords: np.ndarray, prior: np.ndarray, method: str = "classifier") -> Strategy:
    """The anomaly page: its top 100, and its "Rate next" list."""
    def step(rows: np.ndarray, ratings: np.ndarray, batch: int) -> tuple[np.ndarray, list[int]]:
        ranking = rank(coords, prior, rows, ratings, method=method)
        top = ranking.order[:TOP]
        return top, ranking.next_to_rate(batch)
    return step


def look_alikes(vectors: np.ndarray, prior: np.ndarray) -> Strategy:
    """By hand: the galaxies rated interesting by their rating, then the unrated by their best cosine similarity to
    one of them (by the unsupervised score until there is one); the next to rate are the best unrated."""
    vectors = np.asarray(vectors, np.float32)

    def step(rows: np.ndarray, ratings: np.ndarray, batch: int) -> tuple[np.ndarray, list[int]]:
        by_rating = np.argsort(-ratings, kind="stable")
        liked = rows[by_rating][ratings[by_rating] >= LIKED]
        score = (vectors @ vectors[liked].T).max(1) if len(liked) else prior.astype(np.float32).copy()
        score[rows] = -np.inf
        unrated = np.argsort(-score, kind="stable")
        top = np.r_[liked, unrated][:TOP]
        return top, unrated[:batch].tolist()
    return step


def session(strategy: Strategy, truth: np.ndarray, interest: Interest, batch: int = BATCH,
            checkpoints: tuple[int, ...] = CHECKPOINTS) -> dict[str, dict[str, float]]:
    """One simulated researcher: the interesting and boring shares of the top 100 at each checkpoint."""
    rated: list[int] = []
    out: dict[str, dict[str, float]] = {"interesting": {}, "boring": {}}
    while True:
        rows = np.array(rated, int)
        top, shown = strategy(rows, truth[rows].astype(float), batch)
        if len(rated) in checkpoints:
            out["interesting"][str(len(rated))] = float(interest.interesting[top].mean())
            out["boring"][str(len(rated))] = float(interest.boring[top].mean())
        if len(rated) >= max(checkpoints) or not shown:
            return out
        rated += shown[: max(checkpoints) - len(rated)]


def summary(values: list[float], worst: Callable = min) -> dict:
    """Median and worst (by default the lowest) of one figure over seeds, and every seed's value."""
    return {"median": round(float(np.median(values)), 4), "worst": round(float(worst(values)), 4),
            "seeds": [round(float(v), 4) for v in values]}


def simulate(coords: np.ndarray, prior: np.ndarray, vectors: np.ndarray, interest: Interest, seeds: int = SEEDS,
             batch: int = BATCH, method: str = "classifier") -> dict:
    """Sessions of ``seeds`` simulated raters with the app's active learning (``method``) and with the look-alike
    baseline; the unsupervised ranking alone for reference. Each figure: median and worst over the raters."""
    strategies = {"active_learning": active_learning(coords, prior, method), "look_alikes": look_alikes(vectors, prior)}
    runs: dict[str, list[dict]] = {name: [] for name in strategies}
    for seed in range(seeds):
        truth = simulated_ratings(interest, seed)
        for name, strategy in strategies.items():
            runs[name].append(session(strategy, truth, interest, batch))
    unsupervised_top = np.argsort(-prior, kind="stable")[:TOP]
    out = {"method": method, "interesting_count": int(interest.interesting.sum()),
           "boring_count": int(interest.boring.sum()), "achievable": round(interest.achievable, 4), "raters": seeds,
           "ratings_per_batch": batch, "rater_noise": NOISE,
           "unsupervised": round(float(interest.interesting[unsupervised_top].mean()), 4),
           "unsupervised_boring": round(float(interest.boring[unsupervised_top].mean()), 4)}
    for name, sessions in runs.items():
        out[name] = {c: summary([s["interesting"][c] for s in sessions]) for c in map(str, CHECKPOINTS)}
        out[f"{name}_boring"] = {c: summary([s["boring"][c] for s in sessions], worst=max)
                                 for c in map(str, CHECKPOINTS)}
    return out
