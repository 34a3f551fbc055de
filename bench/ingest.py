"""Benchmark: ingest throughput and peak memory on a FITS survey far larger than one chunk.

    python -m bench.ingest --n 30000 --json

Writes ``--n`` noisy 3-band cutouts as the demo survey lays them out (files of 1,000 image HDUs, a FITS catalog),
then times ``galsearch ingest`` on them in a child process and samples its resident memory, which should stay
near one chunk's worth whatever ``--n`` is: ``peak_anon_mb`` is the memory the job allocated, ``peak_rss_mb``
adds the store's memory-mapped file pages, which the kernel writes back and drops when memory runs short.
Prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from bench.report import print_result

PER_FILE = 1000


def write_survey(root: Path, n: int, size: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "cutouts").mkdir(parents=True)
    ids, files, hdus = [], [], []
    for f, start in enumerate(range(0, n, PER_FILE)):
        hdul = [fits.PrimaryHDU()]
        for i in range(start, min(n, start + PER_FILE)):
            h = fits.ImageHDU(rng.normal(0, 1, (3, size, size)).astype(np.float32), name=f"G{i}")
            h.header["BANDS"] = "g,r,z"
            hdul.append(h)
            ids.append(f"G{i}")
            files.append(f"cutouts/chunk_{f:04d}.fits")
            hdus.append(len(hdul) - 1)
        fits.HDUList(hdul).writeto(root / files[-1])
    Table({"id": ids, "file": files, "hdu": hdus, "ra": rng.uniform(0, 360, n),
           "dec": rng.uniform(-60, 60, n)}).write(root / "catalog.fits")
    return root / "catalog.fits"


def _rss_anon_kb(pid: int) -> int:
    """The process's anonymous resident memory: what it allocated, without the memmapped store's file pages
    (those count in its RSS but are page cache, written back and dropped by the kernel as memory runs short)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")), 0)


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        catalog = write_survey(Path(tmp) / "survey", args.n, args.size)
        out = Path(tmp) / "store"
        t0 = time.perf_counter()
        job = subprocess.Popen([sys.executable, "-m", "galsearch.cli", "ingest", "--catalog", str(catalog),
                                "--out", str(out)], stderr=subprocess.DEVNULL)
        anon_kb = 0
        while job.poll() is None:
            anon_kb = max(anon_kb, _rss_anon_kb(job.pid))
            time.sleep(0.05)
        if job.returncode:
            raise SystemExit(f"ingest failed with exit code {job.returncode}")
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
        images_mb = (out / "images.npy").stat().st_size / 2**20
        return {"n": args.n, "cutout": f"3x{args.size}x{args.size}", "ingest_s": round(seconds, 1),
                "galaxies_per_s": round(args.n / seconds, 1), "images_mb": round(images_mb, 1),
                "peak_rss_mb": round(peak_mb, 1), "peak_anon_mb": round(anon_kb / 1024, 1),
                "count": json.loads((out / "meta.json").read_text())["count"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=30_000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--tmp", type=Path, help="folder for the survey and store (default: the system's temp)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    print_result(run(args), args.json)


if __name__ == "__main__":
    main()
