"""Benchmark: build time, memory, recall@50 and single-query latency of the index galsearch would build.

    python -m bench.search --n 1000000 --json

Synthetic but survey-like embeddings (``bench/synthetic.py``: a Gaussian mixture of ``--clusters`` centres).
The index is chosen and tuned exactly as
``galsearch index`` does (``--index-type auto``: exact below 100,000 vectors, IVF above with nprobe tuned to
recall@50 >= 0.95; ``ivfpq`` compresses and re-ranks). Latency is measured one query at a time for k=50, as the
server issues them (with IVF-PQ, including the exact re-ranking from the vectors). ``--device cuda`` builds on a GPU
with the FAISS GPU package. ``filters`` compares the two ways to restrict a search by a catalog cut.
"""

from __future__ import annotations

import argparse
import resource
import time

import faiss
import numpy as np

from bench.report import print_result
from bench.synthetic import mixture
from index_builder.index import MAX_MEMORY_MB, RECALL_K, filter_params, make_index, search

FILTER_FRACTIONS = (0.5, 0.1, 0.01)
OVERFETCH_MARGIN = 1.5  # over-fetch k / fraction * this many hits, then keep the allowed ones


def _p50(latencies: list[float]) -> float:
    return round(float(np.percentile(latencies, 50)), 3)


def filters(index: faiss.Index, x: np.ndarray, details: dict, queries: np.ndarray) -> dict:
    """Filtered search two ways, for catalog cuts keeping ``FILTER_FRACTIONS`` of the survey: FAISS's id selector
    with nprobe scaled by the cut (what the server does) against over-fetching and filtering; p50 latency and
    recall@50 against exact filtered search for each."""
    rng = np.random.default_rng(2)
    refine, k = details.get("refine", 1), RECALL_K
    out = {}
    for fraction in FILTER_FRACTIONS:
        allowed = rng.random(len(x)) < fraction  # a cut unrelated to the look (e.g. magnitude)
        params = filter_params(allowed, details)
        fetch = min(len(x), int(np.ceil(k / fraction * OVERFETCH_MARGIN)))
        allowed_rows = np.flatnonzero(allowed)
        timing: dict[str, list[float]] = {"selector": [], "overfetch": []}
        recall: dict[str, list[float]] = {"selector": [], "overfetch": []}
        for row in queries:
            q = x[row : row + 1]
            truth = set(allowed_rows[np.argsort(-(x[allowed_rows] @ q[0]))[:k]].tolist())
            t = time.perf_counter()
            got = search(index, x, q, k, refine, params)[1][0]
            timing["selector"].append((time.perf_counter() - t) * 1000)
            recall["selector"].append(len(truth & set(got.tolist())) / k)
            t = time.perf_counter()
            hits = search(index, x, q, fetch, refine)[1][0]
            got = hits[(hits >= 0) & allowed[np.maximum(hits, 0)]][:k]
            timing["overfetch"].append((time.perf_counter() - t) * 1000)
            recall["overfetch"].append(len(truth & set(got.tolist())) / k)
        out[str(fraction)] = {f"{how}_{what}": v for how in timing for what, v in
                              (("p50_ms", _p50(timing[how])), ("recall_at_50", round(float(np.mean(recall[how])), 4)))}
    return out


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    x = mixture(args.n, args.dim, args.clusters)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    index, details = make_index(x, args.index_type, device=args.device, max_memory_mb=args.max_memory_mb)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    latencies = []
    for row in rng.choice(args.n, args.queries, replace=False):
        q = x[row : row + 1]
        t = time.perf_counter()
        search(index, x, q, RECALL_K + 1, details.get("refine", 1))
        latencies.append((time.perf_counter() - t) * 1000)
    return {
        "n": args.n,
        "dim": args.dim,
        "index_type": details["index_type"],
        "nlist": details.get("nlist"),
        "nprobe": details.get("nprobe"),
        "refine": details.get("refine"),
        "built_on": details["built_on"],
        "recall_at_50": details["recall_at_50"],
        "build_s": round(build_s, 2),
        "index_mb": round(faiss.serialize_index(index).nbytes / 2**20, 1),
        "peak_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "queries": args.queries,
        "threads": faiss.omp_get_max_threads(),
        "filters": filters(index, x, details, rng.choice(args.n, min(args.queries, 100), replace=False)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--clusters", type=int, default=200)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--index-type", choices=["auto", "flat", "ivf", "ivfpq"], default="auto")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where FAISS builds")
    p.add_argument("--max-memory-mb", type=float, default=MAX_MEMORY_MB,
                   help="auto: IVF-PQ above this much raw vectors")
    p.add_argument("--threads", type=int, help="FAISS threads (default: all cores)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    print_result(run(args), args.json)


if __name__ == "__main__":
    main()
