"""Why two galaxies are called alike: their search distance taken apart into the learned embedding's share and
each morphometry statistic's.

A search vector is the unit learned embedding with the weighted, normalised statistics appended, re-normalised
(``embedder.morphometry.combine``), and the index ranks by cosine similarity, so the squared distance between two
vectors, 2 - 2 cos, is exactly the sum of its squared coordinate differences: the learned columns' sum plus one
term per statistic. Each part's share of that sum is what the page shows beside the two galaxies' values.
"""

from __future__ import annotations

import numpy as np


def distance_shares(u: np.ndarray, v: np.ndarray, statistics: list[str]) -> dict:
    """The squared distance between search vectors ``u`` and ``v`` and each part's share of it: ``learned``
    (every column but the trailing ``len(statistics)``) and one per statistic, in the order they are appended."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    terms = (u - v) ** 2
    n = len(statistics)
    parts = {"learned": float(terms[: len(terms) - n].sum())}
    parts.update({name: float(t) for name, t in zip(statistics, terms[len(terms) - n:])})
    total = float(terms.sum())
    shares = {name: (value / total if total > 0 else 0.0) for name, value in parts.items()}
    return {"distance_squared": total, "similarity": float(u @ v), "shares": shares}
