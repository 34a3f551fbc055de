"""Tag propagation (Walmsley et al. 2022): from a few galaxies carrying a tag, rank the survey for more of them.

Until a tag has enough accepted and rejected examples, candidates are ranked by their best cosine similarity to any
galaxy carrying the tag (one example is enough to start), less half their best similarity to a rejected one
(measured on the demo survey: +0.03 precision@50 for rings and mergers in the second expansion). With at least
``MIN_PER_CLASS`` of each, a logistic regression on the frozen embeddings, refitted on every expansion, learns what
the researcher accepts and rejects; its probability is the candidate's confidence. Rejections only come from the
neighbourhood of the tag, so on their own they teach the classifier "not like those neighbours", which a far-away
majority satisfies too; a random sample of undecided galaxies joins them as presumed negatives (a tag marks a
minority, so the sample is mostly right), which keeps the classifier anchored on what the tag is.

While a tag has fewer than ``MIN_PER_CLASS`` members, the similarity ranking is also spread out (maximal marginal
relevance, Carbonell & Goldstein 1998): each proposal is the most similar galaxy not too like one already proposed.
The galaxies most like one example are its near-copies, so the researcher's first accepts would all come from the
starting galaxy's own pocket of the class and the classifier would learn that pocket alone; spreading the first
proposals lets a few decisions cover the tag's variety (measured on the demo survey, second expansion, 25 starting
members, seeds 0 and 1 of the generator: #merger 0.43 -> 0.48 and 0.44 -> 0.48, #ring 0.56 -> 0.64 and 0.57 ->
0.63, at a cost to the first expansion's precision: rings 0.76 -> 0.69 and 0.81 -> 0.71, diffuse galaxies 0.94 ->
0.90 and 0.97 -> 0.94). Scores stay the plain similarity; only the order changes.

A linear classifier fitted on a handful of members draws one boundary through the whole survey, and a rare class
that sits in several separate pockets of the embedding (mergers seen at every angle and mass ratio) falls partly
outside it; similarity to the nearest member keeps each pocket. So the classifier's candidates are ordered by its
confidence blended with the similarity ranking, each as a percentile over the survey (``CLASSIFIER_SHARE``;
measured on the demo survey, second expansion, 25 starting members: #merger 0.36 -> 0.41 precision@50, #ring
and #edge-on unchanged at 0.57 and 0.97).

That blend still finds fewer members than the similarity ranking alone in some rounds (a classifier fitted on
five or ten decisions can be confidently wrong), so the classifier's round takes its candidates alternately from
the blend and from the similarity ranking: half the round is what the similarity ranking would have proposed
first. The figures are in the README (``galsearch eval``'s ``classifier_worse_rounds``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

TAG_PATTERN = re.compile(r"^#[a-z0-9][a-z0-9_\-]{0,62}$")
MIN_PER_CLASS = 5
BACKGROUND = 200  # undecided galaxies sampled as presumed negatives
REJECTION_WEIGHT = 0.5  # similarity ranking: minus this times the best similarity to a rejected galaxy
CLASSIFIER_SHARE = 0.7  # classifier ordering: this share of its percentile, the rest the similarity's
DIVERSITY = 0.8  # spread-out ranking: similarity less this times the best similarity to a galaxy already proposed
DIVERSITY_POOL = 4  # ... chosen among this many times k of the most similar
PERCENTILE_SAMPLE = 65_536  # scores sampled to place every galaxy's on a percentile scale
CHUNK = 65_536
PRESELECT_ABOVE = 2_000_000  # with a search index, larger surveys are ranked within a preselected pool
POOL_PER_QUERY = 32  # ... of each member's (and the classifier's) POOL_PER_QUERY * k nearest galaxies
POOL_QUERIES = 128  # ... from at most this many members (a sample of a larger tag)
LISTED_BACKGROUND = 100_000  # up to this many galaxies, the background sample is drawn from a list of the undecided

# k nearest rows of each query vector (n, dim): (similarities, rows), rows -1 where fewer were found.
Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def normalise_tag(text: str) -> str:
    """``" Diffuse"`` -> ``"#diffuse"``; raises ValueError for an empty, over-long or ill-formed tag."""
    tag = text.strip().lower()
    tag = tag if tag.startswith("#") else "#" + tag
    if not TAG_PATTERN.match(tag):
        raise ValueError(f"tag {text!r} must be 1-63 letters, digits, '_' or '-' after an optional '#'")
    return tag


@dataclass(frozen=True)
class CandidateRanking:
    rows: np.ndarray  # candidate rows in the store, in the order proposed
    scores: np.ndarray  # similarity (cosine) or classifier probability
    method: str  # "diverse" (few members) | "similarity" | "classifier"


class Pool:
    """The rows a ranking scores: every galaxy of the survey (``rows`` None), or a preselected few (sorted)."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.vectors, self.rows = vectors, rows

    def __len__(self) -> int:
        return len(self.vectors) if self.rows is None else len(self.rows)

    def apply(self, fn) -> np.ndarray:
        """``fn`` of the pool's vectors, block by block, so a large survey never loads whole."""
        n = len(self)
        blocks = (self.vectors[s : s + CHUNK] if self.rows is None else self.vectors[self.rows[s : s + CHUNK]]
                  for s in range(0, n, CHUNK))
        return np.concatenate([fn(np.asarray(v, np.float32)) for v in blocks]) if n else np.empty(0, np.float32)

    def top(self, scores: np.ndarray, exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The survey rows of the ``k`` best ``scores`` (one per pool row), ``exclude``d rows left out."""
        scores = scores.copy()
        scores[self.positions(exclude)] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.empty(0, int)
        top = top[np.argsort(-scores[top], kind="stable")]
        return (top if self.rows is None else self.rows[top]), scores[top]

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Where the pool holds these survey rows (rows outside it are left out)."""
        if self.rows is None:
            return np.asarray(rows, int)
        at = np.searchsorted(self.rows, rows)
        inside = at < len(self.rows)
        inside[inside] = self.rows[at[inside]] == np.asarray(rows)[inside]
        return at[inside]


def _similarity_to(vectors: np.ndarray, positives: np.ndarray, negatives: np.ndarray):
    """The similarity score of a block of vectors: best cosine similarity to a member, less
    ``REJECTION_WEIGHT`` times the best to a rejected galaxy."""
    p = np.asarray(vectors[positives], np.float32)
    if not len(negatives):
        return lambda v: (v @ p.T).max(1)
    q = np.asarray(vectors[negatives], np.float32)
    return lambda v: (v @ p.T).max(1) - REJECTION_WEIGHT * (v @ q.T).max(1)


def _similarity(pool: Pool, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    return pool.apply(_similarity_to(pool.vectors, positives, negatives))


def _nearest(search: Search, queries: np.ndarray, k: int) -> np.ndarray:
    """The rows the index finds nearest any of ``queries``."""
    _, rows = search(np.ascontiguousarray(queries, np.float32), k)
    return np.unique(rows[rows >= 0])


def _preselected(vectors: np.ndarray, positives: np.ndarray, k: int, search: Search | None,
                 preselect_above: int, rng: np.random.Generator) -> Pool:
    """The whole survey, or above ``preselect_above`` galaxies (with an index) the nearest few of each member.
    A galaxy among the k most like any member is among the k most like one of them, so with an exact index and
    no rejections the similarity top is unchanged; a rejection's penalty can lift a galaxy from further out, so
    the pool holds ``POOL_PER_QUERY`` times k of each (``bench/tags.py`` measures the top against a full pass)."""
    if search is None or len(vectors) <= preselect_above:
        return Pool(vectors)
    queries = positives if len(positives) <= POOL_QUERIES else np.sort(rng.choice(positives, POOL_QUERIES, False))
    return Pool(vectors, _nearest(search, np.asarray(vectors[queries], np.float32), POOL_PER_QUERY * k))


def _spread(vectors: np.ndarray, rows: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Greedy maximal marginal relevance: positions in ``rows`` (best first) of ``k`` proposals, each the best
    score less ``DIVERSITY`` times its highest similarity to one already picked."""
    v = np.asarray(vectors[rows], np.float32)
    gram = v @ v.T
    redundancy = np.zeros(len(rows), np.float32)
    picked = np.zeros(len(rows), bool)
    order = []
    for _ in range(min(k, len(rows))):
        i = int(np.argmax(np.where(picked, -np.inf, scores - DIVERSITY * redundancy)))
        order.append(i)
        picked[i] = True
        redundancy = np.maximum(redundancy, gram[:, i])
    return np.array(order, int)


def _percentile(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each score's place in [0, 1] among the ``reference`` scores (the survey's, or a sample of them): a scale
    two rankings share, linear in the survey size."""
    return np.searchsorted(np.sort(reference), scores, side="right") / len(reference)


def rank_candidates(vectors: np.ndarray, positives: np.ndarray, negatives: np.ndarray, k: int,
                    seed: int = 0, classifier: bool = True, search: Search | None = None,
                    preselect_above: int = PRESELECT_ABOVE) -> CandidateRanking:
    """The ``k`` best undecided rows for a tag whose members are ``positives`` and rejections ``negatives``;
    ``classifier=False`` keeps the similarity ranking even when there are enough decisions for the classifier.

    With ``search`` (the survey's index) a survey of more than ``preselect_above`` galaxies is ranked within a
    pool (``_preselected``), the classifier's best by the index too (its confidence grows with v . w, an
    inner-product search for w), instead of a pass over every galaxy."""
    positives, negatives = np.unique(positives), np.unique(negatives)
    if len(positives) == 0:
        raise ValueError("a tag needs at least one galaxy before it can be expanded")
    rng = np.random.default_rng(seed)
    decided = np.concatenate([positives, negatives])
    pool = _preselected(vectors, positives, k, search, preselect_above, rng)
    if len(positives) < MIN_PER_CLASS:
        rows, top = pool.top(_similarity(pool, positives, negatives), decided, DIVERSITY_POOL * k)
        pick = _spread(vectors, rows, top, k)
        return CandidateRanking(rows[pick], top[pick], "diverse")
    if len(negatives) < MIN_PER_CLASS or not classifier:
        return _like_these(pool, positives, negatives, k)
    w, b = _fit(vectors, positives, negatives, _background(len(vectors), decided, rng))
    if pool.rows is not None:  # the classifier's most confident join the members' neighbours
        best = _nearest(search, (w / max(float(np.linalg.norm(w)), 1e-12))[None], POOL_PER_QUERY * k)
        pool = Pool(vectors, np.union1d(pool.rows, best))
    similar = _similarity_to(vectors, positives, negatives)

    def confident(v: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(v @ w + b)))

    similarity, confidence = pool.apply(similar), pool.apply(confident)
    # The survey's scale, from the scores of the same sample of its galaxies whether the pool is the whole survey
    # or a preselected few (so the two rank alike): every galaxy, up to PERCENTILE_SAMPLE of them.
    n = len(vectors)
    if pool.rows is None and n <= PERCENTILE_SAMPLE:
        references = confidence, similarity  # the sample is every galaxy: the pool's own scores
    else:
        sampled = Pool(vectors, np.sort(rng.choice(n, min(n, PERCENTILE_SAMPLE), replace=False)))
        references = sampled.apply(confident), sampled.apply(similar)
    order = (CLASSIFIER_SHARE * _percentile(confidence, references[0])
             + (1 - CLASSIFIER_SHARE) * _percentile(similarity, references[1]))
    by_classifier, _ = pool.top(order, decided, k)
    by_similarity, _ = pool.top(similarity, decided, k)
    rows = _interleave(by_similarity, by_classifier, k)
    return CandidateRanking(rows, confidence[pool.positions(rows)], "classifier")


def _background(n: int, decided: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``BACKGROUND`` undecided rows at random (sorted); above ``LISTED_BACKGROUND`` galaxies drawn at random and
    the decided ones dropped, rather than by listing every undecided row (a second at 10^7)."""
    if n <= LISTED_BACKGROUND:
        undecided = np.setdiff1d(np.arange(n), decided)
        return np.sort(rng.choice(undecided, min(BACKGROUND, len(undecided)), replace=False))
    drawn = np.unique(rng.integers(0, n, 2 * BACKGROUND + len(decided)))
    return np.sort(rng.permutation(np.setdiff1d(drawn, decided))[:BACKGROUND])


def like_these(vectors: np.ndarray, positives: np.ndarray, negatives: np.ndarray, k: int,
               search: Search | None = None, preselect_above: int = PRESELECT_ABOVE) -> CandidateRanking:
    """The ``k`` rows most like any of ``positives`` and least like ``negatives`` (the similarity ranking, in
    plain order): "more like these, not like those" for a handful of galaxies picked in the gallery."""
    positives, negatives = np.unique(positives), np.unique(negatives)
    pool = _preselected(vectors, positives, k, search, preselect_above, np.random.default_rng(0))
    return _like_these(pool, positives, negatives, k)


def _like_these(pool: Pool, positives: np.ndarray, negatives: np.ndarray, k: int) -> CandidateRanking:
    rows, top = pool.top(_similarity(pool, positives, negatives), np.concatenate([positives, negatives]), k)
    return CandidateRanking(rows, top, "similarity")


def _interleave(first: np.ndarray, second: np.ndarray, k: int) -> np.ndarray:
    """``k`` rows taken alternately from two rankings, each row once."""
    rows: list[int] = []
    for row in (int(r) for pair in zip(first, second) for r in pair):
        if row not in rows:
            rows.append(row)
    return np.array(rows[:k], int)


def _fit(vectors: np.ndarray, positives: np.ndarray, negatives: np.ndarray,
         background: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and bias of the logistic regression of members against rejections and the background sample."""
    x = np.asarray(vectors[np.r_[positives, negatives, background]], np.float32)
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives) + len(background))]
    # Weak regularisation: unit-length embeddings have small coordinates (measured: C=10 finds 25 % more
    # rings than C=1 in the second expansion on the demo survey).
    clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000).fit(x, y)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])

