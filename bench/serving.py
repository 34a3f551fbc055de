"""Benchmark: the real server (uvicorn in its own process) under 1, 8 and 32 concurrent clients.

    python -m bench.serving --workdir work/demo --n 400 --json
    python -m bench.serving --synthetic 1000000 --json     # a built 10^6-galaxy workdir, made in work/bench-1000000

For each route (``/galaxies/{id}/similar?k=50``, a gallery page, a thumbnail, an RA/Dec look-up) and each
concurrency level, ``--n`` requests over random galaxies/pages/positions are spread over that many client
connections; reported: p50/p99 latency and requests per second, and the server's resident memory after start-up
and after the load. The workdir must be built (``make build``), or ``--synthetic N`` makes one of N galaxies
(``bench/synthetic.py``: survey-like embeddings, the real index and anomaly builders) and reuses it next time; the
server's start-up time is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
from astropy.table import Table

from bench.synthetic import workdir as synthetic_workdir
from index_builder.index import MAX_MEMORY_MB

LEVELS = (1, 8, 32)
ROUTES = ("similar", "gallery", "thumbnail", "lookup")


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory (VmRSS) and the part of it that is its own (RssAnon: not pages of files it
    memory-maps, which the kernel's file cache holds and may drop), in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: round(int(fields[key].split()[0]) / 1024, 1) for name, key in (("resident", "VmRSS"),
                                                                                 ("anonymous", "RssAnon"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``galsearch serve`` in its own process (``env`` adds variables, e.g. DATABASE_URL); returns once it answers."""
    log = tempfile.TemporaryFile()  # not a pipe: a chatty server must never block on a full one
    proc = subprocess.Popen([sys.executable, "-m", "galsearch.cli", "serve", "--workdir", str(workdir),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log,
                            env={**os.environ, **(env or {})})
    deadline = time.time() + 900  # a 10^6-galaxy survey loads its catalog into the database first
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 900 s")


async def _client(port: int, paths: list[str]) -> list[float]:
    """One keep-alive HTTP/1.1 connection issuing ``paths`` in turn; returns each request's latency in ms."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    try:
        for path in paths:
            t = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(next(line.split(b":", 1)[1] for line in head.lower().split(b"\r\n")
                              if line.startswith(b"content-length:")))
            body = await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status} {body[:200]!r}")
            out.append((time.perf_counter() - t) * 1000)
    finally:
        writer.close()
    return out


def load(port: int, paths: list[str], clients: int) -> dict:
    """Spread ``paths`` over ``clients`` concurrent connections driven by one asyncio loop: a few microseconds of
    client work per request, so the client does not crowd the server's CPU and the latencies measure the server."""

    async def run() -> list[list[float]]:
        return await asyncio.gather(*(_client(port, paths[i::clients]) for i in range(clients)))

    t0 = time.perf_counter()
    latencies = [x for part in asyncio.run(run()) for x in part]
    wall = time.perf_counter() - t0
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2), "rps": round(len(latencies) / wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("work/demo"))
    p.add_argument("--n", type=int, default=400, help="requests per route and concurrency level")
    p.add_argument("--synthetic", type=int, metavar="N", help="benchmark a synthetic workdir of N galaxies")
    p.add_argument("--index-max-memory-mb", type=float, default=MAX_MEMORY_MB,
                   help="--synthetic: the index's memory budget (above it, IVF-PQ)")
    p.add_argument("--random-anomaly-scores", action="store_true",
                   help="--synthetic: random anomaly scores instead of the unsupervised scorer's (hours at 10^7)")
    p.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES), help="the routes to load")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    made = {}
    if args.synthetic:
        args.workdir = Path("work") / f"bench-{args.synthetic}"
        made = synthetic_workdir(args.synthetic, args.workdir, max_memory_mb=args.index_max_memory_mb,
                                 random_anomaly=args.random_anomaly_scores)
    ids = np.load(args.workdir / "embedding_ids.npy").astype(str)
    rng = np.random.default_rng(0)
    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(args.workdir, port)
    startup_s = round(time.perf_counter() - t0, 2)
    started_mb = memory_mb(proc.pid)
    catalog = Table.read(args.workdir / "store" / "catalog.fits", memmap=True)
    at = rng.choice(len(ids), args.n)
    try:
        routes = {
            "similar": [f"/galaxies/{quote(str(g), safe='')}/similar?k=50" for g in rng.choice(ids, args.n)],
            "gallery": [f"/gallery?page={int(p)}" for p in rng.integers(1, max(2, len(ids) // 48), args.n)],
            "thumbnail": [f"/galaxies/{quote(str(g), safe='')}/image.png" for g in rng.choice(ids, args.n)],
            "lookup": [f"/lookup?ra={float(catalog['ra'][r]) + 1e-4}&dec={float(catalog['dec'][r])}&radius=5"
                       for r in at] if "ra" in catalog.colnames else [],
        }
        result = {name: {str(c): load(port, paths, c) for c in LEVELS} for name, paths in routes.items()
                  if paths and name in args.routes}
        loaded_mb = memory_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result["server"] = {"galaxies": int(len(ids)), "startup_s": startup_s,
                        **{f"{name}_mb_started": mb for name, mb in started_mb.items()},
                        **{f"{name}_mb_after_load": mb for name, mb in loaded_mb.items()}, **made}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'route':>10} {'clients':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name, levels in result.items():
        if name == "server":
            print(f"server: {levels}")
            continue
        for c, r in levels.items():
            print(f"{name:>10} {c:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['rps']:>8}")


if __name__ == "__main__":
    main()
