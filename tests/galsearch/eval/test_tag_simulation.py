"""The simulated researcher spreading a tag (galsearch.eval.tags)."""

from __future__ import annotations

import numpy as np

from galsearch.eval.metrics import tag_classes
from galsearch.eval.tags import tag_expansion


def _survey() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.array(["ring", "elliptical", "edge_on"]), [40, 400, 200])
    centres = {"ring": [3, 0, 0, 0], "elliptical": [0, 3, 0, 0], "edge_on": [0, 0, 3, 0]}
    x = np.array([centres[c] for c in labels], float) + rng.normal(scale=0.8, size=(len(labels), 4))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_tag_expansion_reports_members_found_beside_plain_search_and_both_rounds() -> None:
    x, labels = _survey()
    assert tag_classes(labels) == ["edge_on", "ring"]
    out = tag_expansion(x, labels, ["edge_on", "ring"], seed=0, starts=6)
    assert set(out) == {"#edge-on", "#ring"}
    ring = out["#ring"]
    assert ring["members"] == 40 and set(ring["found"]) == set(ring["plain_search"]) == {"1", "2", "3"}
    for figure in (ring["found"], ring["plain_search"]):
        assert all(len(figure[r]["seeds"]) == 6 and figure[r]["worst"] <= figure[r]["median"] for r in figure)
        assert figure["1"]["median"] <= figure["2"]["median"] <= figure["3"]["median"] <= 1  # recall only grows
    # 20 decisions a round: at most 20, 40, 60 of the 39 other rings found
    assert ring["found"]["1"]["median"] <= 20 / 39 and ring["found"]["3"]["median"] > 0.9
    assert ring["found"]["3"]["worst"] >= ring["plain_search"]["3"]["worst"]
    # Only 39 other rings: those accepted in round 1 are not proposed again, so round 2 has fewer to find.
    assert 0.2 < ring["round2_precision_at_50"] < ring["round1_precision_at_50"]
    assert ring["round2_precision_at_50"] <= ring["round2_ceiling_at_50"] <= (39 - 1) / 50
    assert 0 <= ring["classifier_worse_rounds"] <= ring["classifier_rounds"]
    assert out["#edge-on"]["round1_precision_at_50"] > 0.95
