from __future__ import annotations

import numpy as np
import pytest

from discovery.tag_expansion import like_these, normalise_tag, rank_candidates


@pytest.mark.parametrize("raw,tag", [("#diffuse", "#diffuse"), (" Diffuse ", "#diffuse"), ("edge-on", "#edge-on"),
                                     ("#tidal_tail2", "#tidal_tail2")])
def test_tags_are_normalised(raw: str, tag: str) -> None:
    assert normalise_tag(raw) == tag


@pytest.mark.parametrize("raw", ["", "#", "  ", "#has space", "#semi;colon", "#" + "x" * 64, "#-leading"])
def test_bad_tags_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        normalise_tag(raw)


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], [30, 300, 100])
    x = np.eye(3)[labels] * 3 + rng.normal(scale=0.7, size=(len(labels), 3))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_similarity_ranking_never_proposes_decided_galaxies() -> None:
    x, labels = _clusters()
    pos = np.arange(5)
    r = rank_candidates(x, pos, np.array([], int), k=20)
    assert r.method == "similarity" and len(r.rows) == 20 and not set(pos) & set(r.rows.tolist())
    assert np.all(np.diff(r.scores) <= 0) and (labels[r.rows] == 0).mean() > 0.8
    assert np.allclose(r.scores, (x[r.rows] @ x[pos].T).max(1), atol=1e-5)
    rejected = np.array([5, 6, 40])  # rejections push their look-alikes down
    r = rank_candidates(x, pos, rejected, k=20)
    assert not {0, 1, 2, 3, 4, 5, 6, 40} & set(r.rows.tolist())
    expected = (x[r.rows] @ x[pos].T).max(1) - 0.5 * (x[r.rows] @ x[rejected].T).max(1)
    assert np.allclose(r.scores, expected, atol=1e-5)


def test_few_members_get_spread_out_proposals_covering_the_tags_variety() -> None:
    # One tagged galaxy (e0) with 8 near-copies leaning one way, and 8 members leaning another way, a little less
    # similar to it: plain similarity fills the first 8 with the copies.
    rng = np.random.default_rng(1)
    e = np.eye(8)
    copies = e[0] + 0.3 * e[3] + rng.normal(scale=0.01, size=(8, 8))
    other_pocket = e[0] + 0.45 * e[4] + rng.normal(scale=0.01, size=(8, 8))
    background = e[2] + rng.normal(scale=0.3, size=(40, 8))
    x = np.vstack([e[0], copies, other_pocket, background])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    plain = np.argsort(-(x[1:] @ x[0]))[:8] + 1
    assert set(plain.tolist()) == set(range(1, 9))
    r = rank_candidates(x, np.array([0]), np.array([], int), k=8)
    assert r.method == "diverse" and len(r.rows) == 8 and 0 not in r.rows
    assert np.allclose(r.scores, x[r.rows] @ x[0], atol=1e-5)  # the score is the similarity; only the order moves
    assert r.rows[0] in range(1, 9)  # the first proposal is still the most similar galaxy
    assert set(r.rows.tolist()) & set(range(9, 17)) and set(r.rows.tolist()) <= set(range(1, 17))


def test_classifier_takes_over_with_five_of_each_and_gives_probabilities() -> None:
    x, labels = _clusters()
    pos, neg = np.arange(5), np.arange(30, 35)
    r = rank_candidates(x, pos, neg, k=20)
    assert r.method == "classifier" and np.all((r.scores >= 0) & (r.scores <= 1))
    assert (labels[r.rows] == 0).mean() > 0.8 and not set(np.r_[pos, neg]) & set(r.rows.tolist())
    assert rank_candidates(x, pos, neg[:4], k=5).method == "similarity"
    assert rank_candidates(x, pos, neg, k=5, classifier=False).method == "similarity"


def test_a_classifier_round_keeps_half_of_what_the_similarity_ranking_proposes_first() -> None:
    x, _ = _clusters()
    pos, neg = np.arange(5), np.arange(30, 35)
    both = rank_candidates(x, pos, neg, k=20)
    alone = rank_candidates(x, pos, neg, k=20, classifier=False)
    assert both.method == "classifier" and len(set(both.rows.tolist())) == 20
    assert set(alone.rows[:10].tolist()) <= set(both.rows.tolist())
    assert both.rows[0] == alone.rows[0]  # taken alternately, the similarity ranking first


def test_ranking_needs_a_member_and_stops_at_the_survey_size() -> None:
    x, _ = _clusters()
    with pytest.raises(ValueError, match="at least one"):
        rank_candidates(x, np.array([], int), np.array([], int), k=5)
    assert len(rank_candidates(x[:10], np.array([0]), np.array([], int), k=50).rows) == 9


def test_like_these_ranks_by_the_nearest_pick_and_pushes_away_from_the_others() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(30, 16)) for c in centres]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    near = like_these(vectors, np.array([0, 30]), np.array([], int), 40)
    assert set(near.rows[:40]) <= set(range(60)) and not {0, 30} & set(near.rows)  # both clusters, picks left out
    assert list(near.scores) == sorted(near.scores, reverse=True)
    pushed = like_these(vectors, np.array([0, 30]), np.array([31]), 28)
    assert 31 not in pushed.rows and (pushed.rows < 30).sum() > (near.rows[:28] < 30).sum()


def _exact_search(x: np.ndarray):
    """An exact k-NN search with the index's signature (what FAISS's flat index answers)."""
    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = queries @ x.T
        rows = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, rows, 1), rows
    return search


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_preselected_pool_ranks_like_a_full_pass(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 16))
    x = centres[rng.integers(0, 40, 20_000)] + rng.normal(scale=0.8, size=(20_000, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    near = np.argsort(-(x @ x[0]))  # a tag around galaxy 0: members among its look-alikes, rejections further out
    none = np.array([], int)
    cases = [("diverse", near[:3], none), ("similarity", near[:12], none), ("similarity", near[:12], near[[200, 300]]),
             ("classifier", near[:40:2], near[400:410])]
    for method, pos, neg in cases:
        full = rank_candidates(x, pos, neg, 24, seed=seed)
        pooled = rank_candidates(x, pos, neg, 24, seed=seed, search=_exact_search(x), preselect_above=0)
        assert full.method == pooled.method == method
        if len(neg):  # a rejection can lift a galaxy from outside the pool; the classifier's scale is sampled
            assert len(set(full.rows) & set(pooled.rows)) >= 22
        else:  # the top of a max over members lies within each member's own top: exactly the same
            assert list(full.rows) == list(pooled.rows) and np.allclose(full.scores, pooled.scores)
    picked, other = like_these(x, near[:3], near[[50]], 30), like_these(x, near[:3], near[[50]], 30,
                                                                       search=_exact_search(x), preselect_above=0)
    assert list(picked.rows) == list(other.rows)
