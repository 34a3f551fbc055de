"""The benchmarks run as modules (``python -m bench.x``) and print the JSON their docs promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _bench(name: str, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m bench.<name> ARGS`` as the README runs it, from anywhere (the repository root on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", f"bench.{name}", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def _run(name: str, *args: str) -> object:
    out = _bench(name, *args, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_search_benchmark_reports_recall_and_latency() -> None:
    r = _run("search", "--n", "3000", "--queries", "20", "--index-type", "ivf", "--dim", "16")
    assert r["index_type"] == "IndexIVFFlat" and r["recall_at_50"] >= 0.95
    assert {"p50_ms", "p99_ms", "build_s"} <= set(r) and r["p50_ms"] <= r["p99_ms"]


def test_anomaly_benchmark_times_a_rerank() -> None:
    (r,) = _run("anomaly", "--n", "3000", "--ratings", "50", "--repeat", "1")
    assert r["n"] == 3000 and r["rerank_s"] > 0


def test_discovery_benchmark_runs_simulated_researchers_on_a_workdir(workdir: Path) -> None:
    (r,) = _run("discovery", "--workdir", str(workdir), "--raters", "2", "--tag-starts", "2")
    assert len(r["anomaly"]["active_learning"]["50"]["seeds"]) == 2 and "look_alikes" in r["anomaly"]
    assert all(len(t["found"]["3"]["seeds"]) <= 2 for t in r["tag_expansion"].values())
    table = _bench("discovery", "--workdir", str(workdir), "--raters", "2", "--tag-starts", "2")
    assert table.returncode == 0 and "active learning" in table.stdout and "plain search" in table.stdout


@pytest.mark.parametrize("name", ["embed", "serving"])
def test_benchmarks_with_torch_or_httpx_import_cleanly(name: str) -> None:
    out = _bench(name, "--help", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_http_benchmark_serves_a_synthetic_survey(tmp_path: Path) -> None:
    out = _bench("serving", "--synthetic", "1500", "--n", "40", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["server"]["galaxies"] == 1500 and r["server"]["index_type"] == "IndexFlatIP"
    for route in ("similar", "gallery", "thumbnail"):
        assert set(r[route]) == {"1", "8", "32"}
        assert all(v["p50_ms"] <= v["p99_ms"] and v["rps"] > 0 for v in r[route].values())


def test_ingest_benchmark_reports_throughput_and_memory() -> None:
    r = _run("ingest", "--n", "1500", "--size", "32")
    assert r["count"] == 1500 and r["galaxies_per_s"] > 0
    assert 0 < r["peak_anon_mb"] <= r["peak_rss_mb"]


def test_map_benchmark_times_every_colouring_and_zoom() -> None:
    r = _run("map", "--n", "20000", "--repeat", "1", "--size", "128")
    assert r["n"] == 20000 and r["worst_ms"] > 0 and r["text_zoom64_median_ms"] > 0
