from __future__ import annotations

import numpy as np
import pytest

from galsearch.eval.metrics import (
    label_subset,
    linear_probe,
    neighbour_scores,
    precision_at_k,
    rare_classes,
    rare_recall_at_k,
    split,
)


def test_precision_at_k_by_hand() -> None:
    labels = np.array(["a", "a", "b", "b"])
    nbrs = np.array([[1, 2], [2, 3], [3, 0], [0, 1]])
    assert precision_at_k(nbrs, labels, 1).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert precision_at_k(nbrs, labels, 2).tolist() == [0.5, 0.0, 0.5, 0.0]


def test_rare_recall_counts_other_members_among_neighbours() -> None:
    labels = np.array(["ring", "ring", "ring", "x", "x", "x"])
    # ring 0 finds both other rings, ring 1 finds one, ring 2 none.
    nbrs = np.array([[1, 2], [0, 3], [3, 4], [4, 5], [3, 5], [3, 4]])
    assert rare_recall_at_k(nbrs, labels, 2) == {"ring": pytest.approx(0.5)}


def test_rare_classes_named_first_then_by_frequency() -> None:
    assert rare_classes(np.array(["lens"] * 3 + ["elliptical"] * 100 + ["merger"])) == ["lens"]
    labels = np.array(["0"] * 200 + ["1"] * 3 + ["2"])
    assert rare_classes(labels) == ["1"]  # a class of one has no other member to find


def test_neighbour_scores_on_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 10
    labels = np.repeat(np.array(["a", "b", "ring"]), [60, 60, 12])
    vectors = centres[np.repeat([0, 1, 2], [60, 60, 12])] + rng.normal(size=(132, 8))
    out = neighbour_scores(vectors.astype(np.float32), labels, "l2")
    assert out["precision_at_10"] == 1.0 and out["per_class"]["a"] == {"count": 60, "precision_at_10": 1.0,
                                                                        "precision_at_50": 1.0}
    assert out["rare_recall_at_50"] == {"ring": 1.0}
    assert out["precision_at_50"] == pytest.approx((120 + 12 * 11 / 50) / 132, abs=1e-4)


def test_split_and_subsets_are_stratified_and_disjoint() -> None:
    labels = np.array(["a"] * 500 + ["b"] * 300 + ["lens"] * 4)
    train, test = split(labels, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert (labels[test] == "lens").sum() >= 1 and (labels[train] == "lens").sum() >= 1
    small = label_subset(train, labels, 0.01, seed=0)
    assert set(small) <= set(train) and set(labels[small]) == {"a", "b", "lens"}
    assert len(small) == round(0.01 * 350) + round(0.01 * 210) + 1
    assert np.array_equal(label_subset(train, labels, 1.0, seed=0), train)


def test_linear_probe_learns_a_separable_problem_and_improves_with_labels() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    x = rng.normal(size=(1000, 5)) + 1.5 * y[:, None]
    probe = linear_probe(x, y.astype(str), seed=0)
    assert set(probe) == {"0.01", "0.1", "1.0"}
    assert probe["1.0"] > 0.9 and probe["1.0"] >= probe["0.01"] - 0.05


def test_labelled_rows_skip_missing_labels_and_need_two_classes() -> None:
    from types import SimpleNamespace

    from astropy.table import MaskedColumn, Table

    from galsearch.eval.evaluate import labelled_rows

    col = MaskedColumn(["spiral", "", "smooth", "spiral", "x"], mask=[False, False, False, False, True])
    rows, labels = labelled_rows(SimpleNamespace(catalog=Table({"label": col})), "label")
    assert rows.tolist() == [0, 2, 3] and labels.tolist() == ["spiral", "smooth", "spiral"]
    masked_numbers = MaskedColumn([1.0, 0.0, 1.0, 0.0], mask=[False, True, False, False])
    assert labelled_rows(SimpleNamespace(catalog=Table({"s": masked_numbers})), "s")[0].tolist() == [0, 2, 3]
    numeric = Table({"spiral": [1, 0, 1]})
    assert labelled_rows(SimpleNamespace(catalog=numeric), "spiral")[1].tolist() == ["1", "0", "1"]
    with pytest.raises(ValueError, match="two distinct"):
        labelled_rows(SimpleNamespace(catalog=Table({"label": ["a", "a", ""]})), "label")
    with pytest.raises(ValueError, match="no column"):
        labelled_rows(SimpleNamespace(catalog=numeric), "morphology")
