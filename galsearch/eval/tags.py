"""A simulated researcher spreading a tag (the ``tag_expansion`` block of ``galsearch eval``, and ``bench.discovery``).

For each class and each of ``starts`` starting members: tag that ONE galaxy, then expand the tag ``ROUNDS`` times,
as the app's tag page does (``discovery.tag_expansion``); each round the researcher, who knows the truth, accepts or
rejects the first ``DECISIONS`` candidates. Reported per tag, median and worst over the starts:

- ``found``: the class's other members accepted after 1, 2 and 3 rounds, as a share of them (recall), beside
  ``plain_search``, the members among the starting galaxy's 20, 40 and 60 nearest neighbours (what the same number of
  decisions find with look-alike search alone);
- ``round1/round2_precision_at_50``: the share of members among the first and second rounds' 50 candidates (round 2
  can only propose members still undecided, so a small class has a ceiling below 1: ``round2_ceiling_at_50``);
- ``classifier_rounds`` and ``classifier_worse_rounds``: rounds the classifier ranked, and of those the ones whose
  20 decisions found fewer members than the similarity ranking would have in the same round (same decisions so far).
"""

from __future__ import annotations

import numpy as np

from discovery.tag_expansion import normalise_tag, rank_candidates
from galsearch.eval.anomaly import summary

ROUNDS = 3
DECISIONS = 20
K = 50
STARTS = 10


def expansion(vectors: np.ndarray, labels: np.ndarray, start: int) -> dict:
    """One start: members found after each round, each round's precision@K and ranking method."""
    c = labels[start]
    positives, negatives = np.array([start]), np.empty(0, int)
    found, precision, methods, hits, instead = [], [], [], [], []
    for _ in range(ROUNDS):
        ranking = rank_candidates(vectors, positives, negatives, K)
        good = labels[ranking.rows] == c
        precision.append(float(good.mean()) if len(good) else 0.0)
        shown, accepted = ranking.rows[:DECISIONS], good[:DECISIONS]
        if ranking.method == "classifier":  # what the similarity ranking would have found instead
            alone = rank_candidates(vectors, positives, negatives, DECISIONS, classifier=False)
            instead.append((int(accepted.sum()), int((labels[alone.rows] == c).sum())))
        positives, negatives = np.r_[positives, shown[accepted]], np.r_[negatives, shown[~accepted]]
        hits.append(int(accepted.sum()))
        found.append(len(positives) - 1)
        methods.append(ranking.method)
    return {"found": found, "precision": precision, "methods": methods, "hits": hits, "instead": instead}


def tag_expansion(vectors: np.ndarray, labels: np.ndarray, classes: list[str], seed: int,
                  starts: int = STARTS) -> dict[str, dict]:
    """Simulate spreading a tag from one galaxy of each class, ``starts`` times per class."""
    rng = np.random.default_rng(seed)
    vectors = np.asarray(vectors, np.float32)
    out = {}
    for c in classes:
        members = np.flatnonzero(labels == c)
        others = len(members) - 1
        chosen = rng.choice(members, min(starts, len(members)), replace=False)
        neighbours = np.argsort(-(vectors[chosen] @ vectors.T), axis=1, kind="stable")[:, : DECISIONS * ROUNDS + 1]
        runs, plain, ceilings = [], [], []
        for start, nbrs in zip(chosen, neighbours):
            runs.append(expansion(vectors, labels, int(start)))
            nbrs = nbrs[nbrs != start][: DECISIONS * ROUNDS]
            plain.append([int((labels[nbrs[: DECISIONS * r]] == c).sum()) for r in range(1, ROUNDS + 1)])
            ceilings.append(min(K, others - runs[-1]["hits"][0]) / K)
        classifier = [pair for run in runs for pair in run["instead"]]
        out[normalise_tag(c.replace("_", "-"))] = {
            "members": int(len(members)),
            "found": {str(r + 1): summary([run["found"][r] / others for run in runs]) for r in range(ROUNDS)},
            "plain_search": {str(r + 1): summary([p[r] / others for p in plain]) for r in range(ROUNDS)},
            f"round1_precision_at_{K}": round(float(np.mean([run["precision"][0] for run in runs])), 4),
            f"round2_precision_at_{K}": round(float(np.mean([run["precision"][1] for run in runs])), 4),
            f"round2_ceiling_at_{K}": round(float(np.mean(ceilings)), 4),
            "classifier_rounds": len(classifier),
            "classifier_worse_rounds": sum(got < alone for got, alone in classifier),
        }
    return out
