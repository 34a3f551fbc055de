"""Benchmark: the real server (uvicorn in its own process) under 1, 8 and 32 concurrent clients.

    python bench/http.py --workdir work/demo --n 400 --json

For each route (``/galaxies/{id}/similar?k=50``, a gallery page, a thumbnail) and each concurrency level, ``--n``
requests over random galaxies/pages are spread over that many client threads; reported: p50/p99 latency and
requests per second. The workdir must be built (``make build``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file, this folder heads the import path, where bench/http.py would shadow the standard library's
# http package: the repository root takes its place.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

LEVELS = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "galsearch.cli", "serve", "--workdir", str(workdir),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")


def load(base: str, paths: list[str], clients: int) -> dict:
    def one(path: str, client: httpx.Client) -> float:
        t = time.perf_counter()
        r = client.get(base + path)
        r.raise_for_status()
        return (time.perf_counter() - t) * 1000

    shares = [paths[i::clients] for i in range(clients)]

    def worker(mine: list[str]) -> list[float]:
        with httpx.Client(timeout=30) as client:
            return [one(p, client) for p in mine]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(worker, shares) for x in part]
    wall = time.perf_counter() - t0
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2), "rps": round(len(latencies) / wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("work/demo"))
    p.add_argument("--n", type=int, default=400, help="requests per route and concurrency level")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    ids = np.load(args.workdir / "embedding_ids.npy").astype(str)
    rng = np.random.default_rng(0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(args.workdir, port)
    try:
        routes = {
            "similar": [f"/galaxies/{g}/similar?k=50" for g in rng.choice(ids, args.n)],
            "gallery": [f"/gallery?page={int(p)}" for p in rng.integers(1, max(2, len(ids) // 48), args.n)],
            "thumbnail": [f"/galaxies/{g}/image.png" for g in rng.choice(ids, args.n)],
        }
        result = {name: {str(c): load(base, paths, c) for c in LEVELS} for name, paths in routes.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'route':>10} {'clients':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name, levels in result.items():
        for c, r in levels.items():
            print(f"{name:>10} {c:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['rps']:>8}")


if __name__ == "__main__":
    main()
