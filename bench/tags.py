"""Benchmark: tag expansion on a built workdir, a pass over every galaxy against the pool the index preselects.

    python -m bench.tags --synthetic 1000000 --json        # the workdir bench.serving makes (work/bench-N)
    python -m bench.tags --workdir work/demo --starts 10

For each of ``--starts`` starting galaxies, a tag is grown the way a researcher grows one: its members are the
start's nearest look-alikes, its rejections galaxies a little further out. Each of the three rankings
(``diverse``: 3 members; ``similarity``: 12 members, 2 rejections; ``classifier``: 20 members, 10 rejections)
proposes its top ``--k`` both ways: ``discovery.tag_expansion.rank_candidates`` without and with the index's
``SearchIndex.candidates`` (the server's way). Reported per ranking: the median and worst share of the full
pass's top found by the preselected one, and the median and worst time of each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.report import print_result
from bench.synthetic import workdir as synthetic_workdir
from discovery.tag_expansion import rank_candidates
from index_builder.index import load

CASES = {"diverse": (3, 0), "similarity": (12, 2), "classifier": (20, 10)}  # members, rejections
REJECTED_FROM = 200  # rejections are taken from the start's look-alikes from this rank on


def run(workdir: Path, starts: int, k: int, seed: int = 0) -> dict:
    index = load(workdir)
    vectors = index.vectors
    rng = np.random.default_rng(seed)
    out: dict = {"galaxies": len(vectors), "k": k, "starts": starts, "index": index.manifest["index_type"]}
    found: dict[str, list[float]] = {c: [] for c in CASES}
    times: dict[str, dict[str, list[float]]] = {c: {"full_s": [], "preselected_s": []} for c in CASES}
    for start in rng.choice(len(vectors), starts, replace=False):
        _, near = index.search(np.asarray(vectors[start : start + 1], np.float32), REJECTED_FROM + 100)
        near = near[0][near[0] >= 0]
        for case, (members, rejections) in CASES.items():
            pos = near[:members]
            neg = near[REJECTED_FROM : REJECTED_FROM + rejections]
            t0 = time.perf_counter()
            full = rank_candidates(vectors, pos, neg, k, seed=seed)
            t1 = time.perf_counter()
            pooled = rank_candidates(vectors, pos, neg, k, seed=seed, search=index.candidates, preselect_above=0)
            t2 = time.perf_counter()
            found[case].append(len(set(full.rows.tolist()) & set(pooled.rows.tolist())) / max(1, len(full.rows)))
            times[case]["full_s"].append(t1 - t0)
            times[case]["preselected_s"].append(t2 - t1)
    for case in CASES:
        out[case] = {"top_found_median": round(float(np.median(found[case])), 3),
                     "top_found_worst": round(float(np.min(found[case])), 3),
                     **{f"{name}_{how}": round(float(fn(v)), 3) for name, v in times[case].items()
                        for how, fn in (("median", np.median), ("worst", np.max))}}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("work/demo"))
    p.add_argument("--synthetic", type=int, metavar="N", help="the synthetic workdir of N galaxies (bench.serving)")
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.synthetic:
        args.workdir = Path("work") / f"bench-{args.synthetic}"
        synthetic_workdir(args.synthetic, args.workdir)
    print_result(run(args.workdir, args.starts, args.k), args.json)


if __name__ == "__main__":
    main()
