"""Durability and concurrency against the real server process, on SQLite (WAL) and PostgreSQL
(``python -m bench.soak``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_sigkill_loses_no_acknowledged_write_and_20_clients_race_cleanly(workdir: Path, database_url: str) -> None:
    out = subprocess.run([sys.executable, "-m", "bench.soak", "--workdir", str(workdir), "--database-url", database_url,
                          "--seconds", "2", "--kills", "2", "--clients", "6", "--concurrent", "20", "--json"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    kill, busy = r["kill"], r["concurrency"]
    assert kill["acknowledged"] > 20 and busy["acknowledged"] > 10 and busy["clients"] == 20, r
    assert busy["writes_acknowledged"] > busy["acknowledged"], r  # the clients really did write the same keys
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["server_errors"] == 0, r
    assert r["found"] == r["acknowledged"] and kill["refused_4xx"] == busy["refused_4xx"] == 0, r
    assert kill["integrity"] in ("ok", None) and kill["unanswered"] > 0, r  # the kills hit writes in flight
