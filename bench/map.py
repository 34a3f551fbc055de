"""Benchmark: how long the server takes to draw one view of the survey map (``app.survey_map``) at N galaxies.

    python -m bench.map --n 1000000 --json

The points are a synthetic 2-D mixture shaped like a UMAP (a few dense islands and a sparse haze); each colouring
is drawn for the whole map, a 4x zoom and a 64x zoom, ``--repeat`` times, and the median and worst per view are
printed (the target: under 200 ms a view at 10^6 on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from app.survey_map import SurveyMap, View, categorical
from bench.report import print_result


def points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 20, (12, 2))
    which = rng.integers(0, len(centres), n)
    xy = centres[which] + rng.normal(0, rng.uniform(0.2, 1.5, len(centres))[which, None], (n, 2))
    haze = rng.random(n) < 0.1
    xy[haze] = rng.uniform(-2, 22, (int(haze.sum()), 2))
    return xy.astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=640, help="pixels a side (the map page draws 640)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    xy = points(args.n)
    drawn = SurveyMap(xy, {"bounds": [float(v) for v in (*xy.min(0), *xy.max(0))]})
    rng = np.random.default_rng(1)
    numeric = rng.normal(size=args.n)
    text = categorical(rng.choice(np.array(["elliptical", "spiral", "edge_on", "merger", "ring"]), args.n))
    marks = [(rng.choice(args.n, 100, replace=False), (80, 220, 255), 3)]
    colourings = {"density": (None, None, []), "numeric": (numeric, None, []), "text": (*text, []),
                  "marks": (None, None, marks)}
    views = {"whole": View(-2, 22, -2, 22, args.size, args.size), "zoom4": View(7, 13, 7, 13, args.size, args.size),
             "zoom64": View(9.8, 10.175, 9.8, 10.175, args.size, args.size)}
    result: dict = {"n": args.n, "size": args.size}
    worst = 0.0
    for cname, (values, labels, mark) in colourings.items():
        for vname, view in views.items():
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                drawn.render(view, values, labels, mark)
                times.append(1000 * (time.perf_counter() - t0))
            result[f"{cname}_{vname}_median_ms"] = round(float(np.median(times)), 1)
            worst = max(worst, max(times))
    result["worst_ms"] = round(worst, 1)
    print_result(result, args.json)


if __name__ == "__main__":
    main()
