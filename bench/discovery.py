"""Benchmark: discovery with simulated researchers, many of them, on built workdirs (the long runs of eval's
``anomaly`` and ``tag_expansion`` blocks).

    python -m bench.discovery --workdir work/demo --raters 10
    python -m bench.discovery --workdir work/gz1 --interesting-col merger --interesting 1 --boring dont_know

Prints, per workdir, the interesting share of the anomaly top 100 after 0/50/100/200 ratings (median / worst over
``--raters`` simulated raters) for active learning beside look-alike search and the unsupervised ranking alone,
and per tag the members found after 1/2/3 rounds of 20 decisions beside plain look-alike search from the one
starting galaxy (median / worst over ``--tag-starts`` starting galaxies).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from discovery.active_learning import METHODS
from galsearch.eval.anomaly import InterestSpec
from galsearch.eval.evaluate import anomaly_search, labelled_rows
from galsearch.eval.metrics import tag_classes
from galsearch.eval.tags import tag_expansion
from survey.store import Store
from survey.workdir import EMBEDDINGS, Workdir


def run(workdir: Path, label_col: str, interest: InterestSpec, raters: int, tag_starts: int, method: str,
        seed: int = 0) -> dict:
    w = Workdir.of(workdir)
    store = Store(w.store)
    w.check_aligned(store.ids)
    out: dict = {"workdir": str(workdir)}
    mask = interest.of(store.catalog)
    if mask is not None:
        out["anomaly"] = anomaly_search(w, mask, raters, seed, method)
    rows, labels = labelled_rows(store, label_col)
    vectors = np.asarray(np.load(w / EMBEDDINGS, mmap_mode="r")[rows], np.float32)
    out["tag_expansion"] = tag_expansion(vectors, labels, tag_classes(labels), seed, tag_starts)
    return out


def _pair(d: dict) -> str:
    return f"{d['median']:.2f}/{d['worst']:.2f}"


def print_table(result: dict) -> None:
    print(f"== {result['workdir']}")
    a = result.get("anomaly")
    if a:
        print(f"anomalies: {a['interesting_count']} interesting, best achievable {a['achievable']:.2f}, "
              f"unsupervised alone {a['unsupervised']:.2f}; median/worst of {a['raters']} raters")
        print(f"{'ratings':>8} {'active learning':>16} {'look-alikes':>12}")
        for n in a["active_learning"]:
            print(f"{n:>8} {_pair(a['active_learning'][n]):>16} {_pair(a['look_alikes'][n]):>12}")
    print("tags: members found (share of the class), median/worst over starting galaxies; plain search beside")
    for tag, r in result["tag_expansion"].items():
        rounds = "  ".join(f"{n}: {_pair(r['found'][n])} vs {_pair(r['plain_search'][n])}" for n in r["found"])
        print(f"  {tag:<12} ({r['members']:>4}) {rounds}  classifier worse "
              f"{r['classifier_worse_rounds']}/{r['classifier_rounds']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, action="append", required=True)
    p.add_argument("--label-col", default="morphology")
    p.add_argument("--interesting-col", default="interesting")
    p.add_argument("--interesting", default="true")
    p.add_argument("--boring-col", help="default: --label-col")
    p.add_argument("--boring", default="artifact")
    p.add_argument("--raters", type=int, default=10)
    p.add_argument("--tag-starts", type=int, default=10)
    p.add_argument("--method", default="classifier", choices=METHODS)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    interest = InterestSpec(args.interesting_col, tuple(args.interesting.split(",")), args.boring_col or args.label_col,
                            tuple(v for v in args.boring.split(",") if v))
    results = [run(w, args.label_col, interest, args.raters, args.tag_starts, args.method) for w in args.workdir]
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print_table(r)


if __name__ == "__main__":
    main()
