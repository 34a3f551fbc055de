"""Benchmark: how long re-ranking the whole survey takes after a rating (the anomaly page's retrain).

    python -m bench.anomaly --n 100000 1000000 --ratings 200 --json

Synthetic PCA coordinates (the ranking's cost does not depend on what they show) and a synthetic rater.
Reports, per survey size: a whole re-rank as the app does it with its default method, the classifier
(``rerank_s``: fit, probability everywhere, the top and the next batch to rate; what a researcher waits for), and
with the Gaussian process (``gp_rerank_s``; its fit on the ratings ``fit_s`` and an exact mean and standard
deviation for every galaxy ``predict_s``, for reference), best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from discovery.active_learning import RatingModel, rank
from discovery.unsupervised import PCA_DIM


def run(n: int, ratings: int, dim: int, repeat: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(n, dim)).astype(np.float32)
    prior = rng.random(n).astype(np.float32)
    rows = rng.choice(n, ratings, replace=False)
    y = np.clip(np.round(2 + 1.5 * coords[rows, 0] + rng.normal(size=ratings)), 0, 5)
    fit_s, predict_s, gp_s, total_s = [], [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        model = RatingModel(coords, rows, y - y.mean())
        t1 = time.perf_counter()
        model.predict(coords)
        t2 = time.perf_counter()
        rank(coords, prior, rows, y, method="gaussian_process").next_to_rate(24)
        t3 = time.perf_counter()
        rank(coords, prior, rows, y).next_to_rate(24)
        t4 = time.perf_counter()
        fit_s.append(t1 - t0)
        predict_s.append(t2 - t1)
        gp_s.append(t3 - t2)
        total_s.append(t4 - t3)
    return {"n": n, "ratings": ratings, "pca_dim": dim, "rerank_s": round(min(total_s), 3),
            "gp_rerank_s": round(min(gp_s), 3), "fit_s": round(min(fit_s), 3), "predict_s": round(min(predict_s), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--ratings", type=int, default=200)
    p.add_argument("--dim", type=int, default=PCA_DIM)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = [run(n, args.ratings, args.dim, args.repeat) for n in args.n]
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'galaxies':>10} {'ratings':>8} {'re-rank s':>10} {'GP re-rank s':>13} {'GP fit s':>9} "
          f"{'GP predict s':>13}")
    for r in results:
        print(f"{r['n']:>10} {r['ratings']:>8} {r['rerank_s']:>10} {r['gp_rerank_s']:>13} {r['fit_s']:>9} "
              f"{r['predict_s']:>13}")


if __name__ == "__main__":
    main()
