"""Active learning of what a researcher finds interesting (after Walmsley et al. 2022 and Lochner & Bassett 2021).

Three models of the ratings (``METHODS``), the default chosen by the worst case over simulated raters on the demo
survey and a real one (gz1-sdss mergers; figures in the README):

- ``classifier`` (default): a logistic regression of the galaxies rated ``LIKED`` or more against those rated
  lower and a background sample, its probability mapped onto the rating scale; while fewer than ``FEW_LIKED`` are
  liked, the next to rate are their nearest look-alikes; until one is, the unsupervised order.
- ``gaussian_process`` (Walmsley et al. 2022): a straight line in the unsupervised score plus a GP on the PCA
  coordinates for what it misses, shown by its upper confidence bound ``mean + KAPPA * std``. On rare, noisy
  interest its fitted length scale shrinks to the spacing of the ratings and it predicts the line everywhere; the
  line's slope is kept non-negative so a first batch rated boring cannot turn it against the unusual end.
- ``neighbour_score`` (Astronomaly): a random forest trusted near rated galaxies, the unsupervised score elsewhere.

Whatever the model, galaxies rated interesting lead the survey-wide top (``order``), and every batch to rate
(``AnomalyRanking.next_to_rate``) gives ``EXPLORE_SHARE`` of its places to the most unusual unrated galaxies by
the unsupervised score, so the unexplored unusual end stays in view. The GP's prediction is written out by hand in
float32 blocks, its variance only where it can matter, so re-ranking a million galaxies stays interactive.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import LogisticRegression

KAPPA = 0.5
EXACT_TOP = 2_000  # galaxies whose acquisition order is exact (the next to rate are always among them)
BOUND_STEP = 8_192  # galaxies whose exact variance is computed per step of the best-first search
CHUNK = 65_536
MAX_RATING = 5
TOP = 100  # the survey-wide top a researcher is shown
EXPLORE_SHARE = 0.3  # of each batch to rate, drawn from the unsupervised top (see next_to_rate)
MIN_SLOPE = 0.001  # of the unsupervised score's line, in rating points over its [0, 1] range: keeps its order
LIKED = 4  # a rating this high or higher says "interesting": what the researcher is hunting
FEW_LIKED = 5  # below this many galaxies rated interesting, the next to rate are their look-alikes
BACKGROUND = 200  # unrated galaxies sampled as presumed negatives for the classifier
CLASSIFIER_C = 10.0  # weak regularisation: the PCA coordinates are small


def _best(score: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` rows of highest ``score``, best first (a partial sort: a full one costs more at 10^6)."""
    k = min(k, len(score))
    if k == 0:
        return np.empty(0, int)
    top = np.argpartition(-score, k - 1)[:k]
    return top[np.argsort(-score[top], kind="stable")]


@dataclass(frozen=True)
class AnomalyRanking:
    expected: np.ndarray  # per galaxy: its rating if rated, else the predicted rating (or unsupervised score)
    order: np.ndarray  # the best EXACT_TOP rows by ``expected``, best first (ties, e.g. predictions capped at 5,
    # broken by the raw prediction)
    acquisition: np.ndarray  # per galaxy: what to rate next, highest first; -inf for rated galaxies
    method: str  # "unsupervised" | "gaussian_process" | "neighbour_score"
    std: np.ndarray  # per galaxy: the predicted rating's standard deviation where computed, 0 if rated, else nan
    prior: np.ndarray  # the unsupervised score, -inf for rated galaxies: the exploration share of each batch
    fitted_on: int  # ratings the ranking was fitted on

    def next_to_rate(self, n: int, skip: set[int] | frozenset[int] = frozenset()) -> list[int]:
        """The ``n`` unrated galaxies to rate next, none in ``skip``: ``EXPLORE_SHARE`` of them the most unusual
        by the unsupervised score, the rest the best by the acquisition, interleaved so that every prefix keeps the
        mix. The fixed share keeps the unexplored anomalous end in view whatever the model has come to believe:
        a model fitted on a first batch rated boring predicts "boring" far from it, and would never look again."""
        explore = round(EXPLORE_SHARE * n) if self.fitted_on else 0
        spare = n + len(skip)
        sources = {"explore": iter(_best(self.prior, spare)), "acquire": iter(_best(self.acquisition, spare))}
        picked: list[int] = []
        seen = set(skip)
        for slot in range(n):
            # slots 0, 1/share, 2/share ... explore: spread evenly through the batch; either source stands in
            # for the other once it runs out
            first = "explore" if (slot + 1) * explore // n > slot * explore // n else "acquire"
            for name in (first, "acquire" if first == "explore" else "explore"):
                row = next((int(r) for r in sources[name] if int(r) not in seen and np.isfinite(self.prior[r])), None)
                if row is not None:
                    picked.append(row)
                    seen.add(row)
                    break
        return picked


class RatingModel:
    """GP on ``coords`` (N, d) fitted to the ratings of some rows."""

    def __init__(self, coords: np.ndarray, rows: np.ndarray, ratings: np.ndarray, seed: int = 0) -> None:
        x = np.asarray(coords[rows], np.float64)
        y = np.asarray(ratings, np.float64)
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(np.full(1, x.std() or 1.0), (1e-3, 1e3)) \
            + WhiteKernel(0.1, (1e-4, 1e1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp = GaussianProcessRegressor(kernel, normalize_y=False, random_state=seed)
            gp.fit(x, (y - self.y_mean) / self.y_std)
        params = gp.kernel_.get_params()
        self.amplitude = float(params["k1__k1__constant_value"])
        self.length = float(np.ravel(params["k1__k2__length_scale"])[0])
        noise = float(params["k2__noise_level"])
        self.x = x.astype(np.float32)
        k = self.amplitude * self._k(self.x, self.x).astype(np.float64) + noise * np.eye(len(x))
        k_inv = np.linalg.inv(k)
        self._lambda_max = float(np.linalg.eigvalsh(k)[-1])
        # The amplitude is folded in here so prediction multiplies by the bare kernel.
        self.alpha = (self.amplitude * (k_inv @ ((y - self.y_mean) / self.y_std))).astype(np.float32)
        self.k_inv = (self.amplitude**2 * k_inv).astype(np.float32)
        self._prepare_factored()

    def _k(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """RBF kernel without its amplitude, built in place in one (len(a), len(b)) float32 array."""
        scale = np.float32(1 / (np.sqrt(2) * self.length))
        a, b = a * scale, b * scale
        g = a @ b.T
        g *= 2
        g -= (a * a).sum(1)[:, None]
        g -= (b * b).sum(1)[None, :]
        np.minimum(g, 0, out=g)
        return np.exp(g, out=g)

    def _prepare_factored(self) -> None:
        """exp(-|a-b|^2) = exp(-|a|^2) exp(-|b|^2) exp(2 a.b): the rated side's factor goes into alpha and the
        inverse kernel once, so each (galaxy, rating) pair costs one exp of a matrix-product entry."""
        scale = np.float32(1 / (np.sqrt(2) * self.length))
        self._xs = self.x * scale
        rb = np.exp(-(self._xs * self._xs).sum(1))
        self._alpha_f = (self.alpha * rb).astype(np.float32)
        self._k_inv_f = (rb[:, None] * self.k_inv * rb[None, :]).astype(np.float32)
        self._rb2 = (rb * rb).astype(np.float32)
        self._scale = scale
        self._max_b = float(np.sqrt((self._xs * self._xs).sum(1).max()))

    def _predict_block(self, block: np.ndarray, std: str) -> tuple[np.ndarray, np.ndarray | None]:
        a = np.asarray(block, np.float32) * self._scale
        na = (a * a).sum(1)
        # exp(2 a.b), and its square for the bound, stay finite in float32 (overflow at e^88)
        if 2 * float(np.sqrt(na.max(initial=0))) * self._max_b < 40:
            e = a @ self._xs.T
            e *= 2
            np.exp(e, out=e)
            ra = np.exp(-na)
            mean = ra * (e @ self._alpha_f)
            if std == "exact":
                var = self.amplitude - ra**2 * ((e @ self._k_inv_f) * e).sum(1)
            elif std == "bound":  # k'K^-1 k >= |k|^2 / lambda_max(K): an upper bound on the variance
                np.square(e, out=e)
                var = self.amplitude - self.amplitude**2 * ra**2 * (e @ self._rb2) / self._lambda_max
        else:
            ks = self._k(np.asarray(block, np.float32), self.x)
            mean = ks @ self.alpha
            if std == "exact":
                var = self.amplitude - ((ks @ self.k_inv) * ks).sum(1)
            elif std == "bound":
                var = self.amplitude - self.amplitude**2 * (ks * ks).sum(1) / self._lambda_max
        return mean, (np.sqrt(np.maximum(var, 0)) if std != "none" else None)

    def predict(self, coords: np.ndarray, std: str = "exact") -> tuple[np.ndarray, np.ndarray | None]:
        """Mean and standard deviation (``std``: "exact", a cheap upper "bound", or "none") of the predicted
        rating for every row of ``coords``.

        Blocks run on all cores: numpy's element-wise kernels are single-threaded but release the GIL.
        """
        blocks = [coords[s : s + CHUNK] for s in range(0, len(coords), CHUNK)]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            parts = list(pool.map(lambda b: self._predict_block(b, std), blocks))
        mean = np.concatenate([m for m, _ in parts]) * self.y_std + self.y_mean
        return mean, (np.concatenate([sd for _, sd in parts]) * self.y_std if std != "none" else None)


def _prior_line(prior: np.ndarray, rows: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """The unsupervised score mapped onto the rating scale by a straight line fitted to the ratings, its slope
    at least ``MIN_SLOPE``: a first batch of the most unusual galaxies rated boring would otherwise turn the line
    against the unusual end, and every galaxy never looked at there would be predicted boring."""
    x = prior[rows]
    if len(rows) < 2 or np.ptp(x) == 0:
        return np.full(len(prior), float(np.mean(ratings)), np.float32)
    slope = max(float(np.polyfit(x, ratings, 1)[0]), MIN_SLOPE)
    intercept = float(np.mean(ratings) - slope * np.mean(x))
    return (intercept + slope * prior).astype(np.float32)


class _Fit(NamedTuple):
    mean: np.ndarray  # predicted rating per galaxy (-inf for rated ones)
    acquisition: np.ndarray  # what to rate next, highest first (-inf for rated ones)
    std: np.ndarray  # the prediction's standard deviation where computed, else nan
    model: RatingModel | None  # a Gaussian process, for the deviations still missing in the top
    method: str


def _gaussian_process(coords: np.ndarray, base: np.ndarray, rows: np.ndarray, ratings: np.ndarray,
                      seed: int) -> _Fit:
    """Walmsley et al. 2022: a GP on the PCA coordinates for what the line in the unsupervised score misses,
    shown by its upper confidence bound ``mean + KAPPA * std``."""
    model = RatingModel(coords, rows, ratings - base[rows], seed)
    mean, std_bound = model.predict(coords, std="bound")
    mean += base
    mean[rows] = -np.inf
    # The exact variance costs a (N x ratings x ratings) product, so it is computed best-first (by an upper
    # bound of the acquisition) until no galaxy left can reach the EXACT_TOP-th best acquisition found so far:
    # the order is then exact there. Elsewhere the mean stands in (a lower bound, so those galaxies stay below).
    top_k = min(EXACT_TOP, len(mean))
    upper = mean + KAPPA * std_bound
    candidates = np.flatnonzero(upper >= np.partition(mean, -top_k)[-top_k])
    candidates = candidates[np.argsort(-upper[candidates], kind="stable")]
    acquisition = mean.copy()
    deviation = np.full(len(mean), np.nan, np.float32)
    for start in range(0, len(candidates), BOUND_STEP):
        block = candidates[start : start + BOUND_STEP]
        _, std = model.predict(coords[block])
        acquisition[block] += KAPPA * std
        deviation[block] = std
        rest = start + BOUND_STEP
        if rest < len(candidates) and upper[candidates[rest]] < np.partition(acquisition, -top_k)[-top_k]:
            break
    return _Fit(mean, acquisition, deviation, model, "gaussian_process")


def _neighbour_score(coords: np.ndarray, base: np.ndarray, rows: np.ndarray, ratings: np.ndarray,
                     seed: int) -> _Fit:
    """Astronomaly's idea (Lochner & Bassett 2021): a random forest's predicted rating, trusted near rated
    galaxies and fading into the unsupervised score with the distance to the nearest rated one."""
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=-1)
    forest.fit(coords[rows], ratings)
    pred = np.concatenate([forest.predict(block) for block in _blocks(coords)])
    d = np.sqrt(_nearest_sq_distance(coords, coords[rows]))
    trust = np.exp(-d / (np.median(d) or 1.0))
    mean = (trust * pred + (1 - trust) * base).astype(np.float32)
    mean[rows] = -np.inf
    return _Fit(mean, mean.copy(), np.full(len(mean), np.nan, np.float32), None, "neighbour_score")


def _classifier(coords: np.ndarray, base: np.ndarray, rows: np.ndarray, ratings: np.ndarray, seed: int) -> _Fit:
    """The probability that the researcher finds a galaxy interesting (rates it ``LIKED`` or more): a logistic
    regression of the galaxies rated interesting against those rated lower and a random sample of unrated ones
    (presumed negatives: what a researcher hunts is rare), its probability ``p`` turned into an expected rating
    ``low + (high - low) * p`` (the mean ratings below and at ``LIKED``) with the two-point spread
    ``(high - low) * sqrt(p (1 - p))`` as its uncertainty.

    Until ``FEW_LIKED`` galaxies are rated interesting, what to rate next is their nearest unrated look-alikes (a
    line drawn through one or two examples points anywhere; their neighbours are the better bet); until one is,
    the unsupervised score, without the galaxies already rated."""
    liked = ratings >= LIKED
    if not liked.any():
        mean = base.copy()
        mean[rows] = -np.inf
        return _Fit(mean, mean.copy(), np.full(len(mean), np.nan, np.float32), None, "unsupervised")
    rng = np.random.default_rng(seed)
    # a sample of the survey without the rated galaxies (not a set difference over every row: that sorts 10^6)
    sample = rng.choice(len(coords), min(len(coords), BACKGROUND + len(rows)), replace=False)
    background = sample[~np.isin(sample, rows)][:BACKGROUND]
    x = np.asarray(coords[np.r_[rows, background]], np.float32)
    y = np.r_[liked, np.zeros(len(background), bool)]
    clf = LogisticRegression(C=CLASSIFIER_C, class_weight="balanced", max_iter=2000).fit(x, y)
    w, b = clf.coef_[0].astype(np.float32), np.float32(clf.intercept_[0])
    p = 1 / (1 + np.exp(-np.concatenate([block @ w + b for block in _blocks(coords)])))
    high = float(ratings[liked].mean())
    low = float(ratings[~liked].mean()) if (~liked).any() else 0.0
    mean = (low + (high - low) * p).astype(np.float32)
    std = ((high - low) * np.sqrt(p * (1 - p))).astype(np.float32)
    acquisition = -_nearest_sq_distance(coords, coords[rows[liked]]) if liked.sum() < FEW_LIKED else p.copy()
    mean[rows] = -np.inf
    acquisition[rows] = -np.inf
    return _Fit(mean, acquisition.astype(np.float32), std, None, "classifier")


def _blocks(coords: np.ndarray):
    """The coordinates in float32 blocks of ``CHUNK`` rows, so a large survey never makes a full-size temporary."""
    for s in range(0, len(coords), CHUNK):
        yield np.asarray(coords[s : s + CHUNK], np.float32)


def _nearest_sq_distance(coords: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of every row of ``coords`` to its nearest row of ``to``."""
    to = np.asarray(to, np.float32)
    norms = (to * to).sum(1)
    return np.concatenate([np.maximum(((block * block).sum(1)[:, None] + norms[None] - 2 * block @ to.T).min(1), 0)
                           for block in _blocks(coords)])


FITS = {"classifier": _classifier, "gaussian_process": _gaussian_process, "neighbour_score": _neighbour_score}
METHODS = tuple(FITS)


def rank(coords: np.ndarray, prior: np.ndarray, rows: np.ndarray, ratings: np.ndarray, seed: int = 0,
         method: str = "classifier") -> AnomalyRanking:
    """Rank the whole survey from the ratings given so far (``rows`` rated ``ratings``) with ``method``."""
    if method not in METHODS:
        raise ValueError(f"unknown anomaly method {method!r}; choose one of {', '.join(METHODS)}")
    rows, ratings = np.asarray(rows, int), np.asarray(ratings, np.float64)
    prior = np.asarray(prior, np.float32)
    unrated_prior = prior.copy()
    unrated_prior[rows] = -np.inf
    if len(rows) == 0:
        return AnomalyRanking(expected=prior.copy(), order=_best(prior, EXACT_TOP), acquisition=prior.copy(),
                              method="unsupervised", std=np.full(len(prior), np.nan, np.float32),
                              prior=unrated_prior, fitted_on=0)
    fit = FITS[method](coords, _prior_line(prior, rows, ratings), rows, ratings, seed)
    # Predictions live on the rating scale, below a rated 5.
    expected = np.clip(fit.mean, 0.0, MAX_RATING - 1e-3)
    expected[rows] = ratings
    raw = fit.mean.copy()
    raw[rows] = ratings
    std = fit.std
    std[rows] = 0
    # Galaxies rated interesting lead, by rating: known beats predicted. The rest follow by their expected rating.
    liked = rows[ratings >= LIKED]
    liked = liked[np.argsort(-ratings[ratings >= LIKED], kind="stable")]
    rest = expected.copy()
    rest[liked] = -np.inf
    top = np.argpartition(-rest, min(EXACT_TOP, len(rest)) - 1)[:EXACT_TOP]  # sorting all costs more
    order = np.r_[liked, top[np.lexsort((-raw[top], -rest[top]))]][:EXACT_TOP]
    if fit.model is not None:  # the uncertainty the page shows beside each predicted galaxy of the top
        missing = order[:TOP][np.isnan(std[order[:TOP]])]
        if len(missing):
            std[missing] = fit.model.predict(coords[missing])[1]
    return AnomalyRanking(expected=expected.astype(np.float32), order=order,
                          acquisition=fit.acquisition.astype(np.float32), method=fit.method, std=std,
                          prior=unrated_prior, fitted_on=len(rows))


@dataclass
class ResearcherFit:
    ranking: AnomalyRanking
    ratings_at_fit: int
    top: list[int]


@dataclass
class AnomalyRanker:
    """The unsupervised scores plus each researcher's latest fitted ranking."""

    coords: np.ndarray  # PCA coordinates of the embeddings, row-aligned with the store
    prior: np.ndarray  # unsupervised anomaly score per row
    retrain_every: int
    method: str = "gaussian_process"  # or "neighbour_score"
    fits: dict[str, ResearcherFit] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self, who: str, rows: np.ndarray, ratings: np.ndarray,
                force: bool = False) -> tuple[ResearcherFit, dict]:
        """The researcher's ranking, refitted if forced, never fitted, or ``retrain_every`` ratings old."""
        with self.lock:
            fit = self.fits.get(who)
            stale = fit is None or force or abs(len(rows) - fit.ratings_at_fit) >= self.retrain_every
            if not stale:
                return fit, {}
            ranking = rank(self.coords, self.prior, rows, ratings, method=self.method)
            top = ranking.order[:TOP].tolist()
            before = set(fit.top) if fit else set(top)
            self.fits[who] = new = ResearcherFit(ranking, len(rows), top)
        change = {"entered_top_100": len(set(top) - before), "left_top_100": len(before - set(top))}
        return new, change
