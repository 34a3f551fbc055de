"""Soak: no acknowledged write is lost when the server is SIGKILLed mid-stream or when 20 clients write at once.

    python -m bench.soak --workdir work/demo --json
    python -m bench.soak --workdir work/demo --seconds 60 --kills 5 --json \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Both scenarios drive the real server (``galsearch serve`` in its own process on 127.0.0.1) the way the gallery
does: researcher cookie, CSRF token, one keep-alive connection per client.

- **kill**: ``--clients`` writers stream ratings and hand tags, every write a new key; the server is SIGKILLed at
  a random moment ``--kills`` times and restarted each time, and the writers go on.
- **concurrency**: ``--concurrent`` clients rate and tag one small pool of galaxies for ``--seconds``: they race to
  create the same tag and to tag the same galaxies, and rate the same galaxies (each under their own name).

Afterwards a fresh server is asked (through the export and tag routes, so on any database) for everything the run
wrote. Each key's last acknowledged write (HTTP 2xx) counts in ``acknowledged``; it is *found* when the key is present
with that value, *lost* otherwise; a key present more than once is *duplicated*; ``server_errors`` counts 5xx answers.
The run's names carry a random prefix, so a shared database is only added to, never cleared.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.serving import free_port, start_server
from survey.store import CATALOG
from survey.workdir import Workdir

Key = tuple[str, str, str]  # ("rating", galaxy, who) or ("tag", tag, galaxy)


@dataclass
class Write:
    path: str
    body: dict | None
    key: Key
    value: object


@dataclass
class Ledger:
    """What the clients sent and what the server acknowledged, shared by the client threads."""

    acked: dict[Key, object] = field(default_factory=dict)
    acknowledged: int = 0
    server_errors: int = 0
    refused: int = 0  # 4xx: a bug in the soak or the server; reported, not hidden
    unanswered: int = 0  # connection dropped (the kill) or timed out
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, write: Write, status: int | None, ms: float) -> None:
        with self.lock:
            if status is None:
                self.unanswered += 1
            elif 200 <= status < 300:
                self.acknowledged += 1
                self.acked[write.key] = write.value
                self.latencies.append(ms)
            elif status >= 500:
                self.server_errors += 1
            else:
                self.refused += 1


def browser_like(base: str, who: str) -> httpx.Client:
    """A client carrying what the gallery's pages carry: the researcher cookie and the echoed CSRF token."""
    token = secrets.token_urlsafe(16)
    return httpx.Client(base_url=base, timeout=30, headers={"X-CSRF-Token": token},
                        cookies={"galsearch_who": who, "galsearch_csrf": token})


def rate(galaxy: str, who: str, rating: int) -> Write:
    return Write("/anomalies/ratings", {"id": galaxy, "rating": rating}, ("rating", galaxy, who), rating)


def tag(name: str, galaxy: str) -> Write:
    return Write(f"/tags/{name.replace('#', '%23')}/galaxies/{galaxy}", None, ("tag", name, galaxy), "positive")


def send(client: httpx.Client, write: Write, ledger: Ledger) -> bool:
    """Post one write and record the answer; False when the connection is gone (the server was killed)."""
    if write.key[0] == "rating" and client.cookies.get("galsearch_who") != write.key[2]:
        client.cookies.set("galsearch_who", write.key[2])  # the researcher a rating belongs to
    t = time.perf_counter()
    try:
        r = client.post(write.path, json=write.body) if write.body else client.post(write.path)
    except httpx.HTTPError:
        ledger.record(write, None, 0.0)
        return False
    ledger.record(write, r.status_code, (time.perf_counter() - t) * 1000)
    return True


def fresh_keys(prefix: str, client: int, ids: list[str]) -> Iterator[Write]:
    """Endless writes by one client, each to a key nobody else writes (a new researcher name or tag per pass)."""
    rng = np.random.default_rng(client)
    for cycle in range(1_000_000):
        who, name = f"{prefix}k{client}c{cycle}", f"#{prefix}k{client}c{cycle}"
        for galaxy in ids:
            yield rate(galaxy, who, int(rng.integers(0, 6))) if rng.random() < 0.5 else tag(name, galaxy)


def run_clients(base: str, plans: list[Iterator[Write]], names: list[str], ledger: Ledger,
                stop: threading.Event) -> list[threading.Thread]:
    def loop(plan: Iterator[Write], who: str) -> None:
        with browser_like(base, who) as client:
            for write in plan:
                if stop.is_set() or not send(client, write, ledger):
                    return

    threads = [threading.Thread(target=loop, args=(plan, who), daemon=True) for plan, who in zip(plans, names)]
    for t in threads:
        t.start()
    return threads


def kill_scenario(workdir: Path, env: dict, prefix: str, ids: list[str], clients: int, kills: int,
                  seconds: float, seed: int) -> Ledger:
    ledger, rng = Ledger(), np.random.default_rng(seed)
    plans = [fresh_keys(prefix, c, ids) for c in range(clients)]
    for _ in range(kills):
        port = free_port()
        proc = start_server(workdir, port, env)
        stop = threading.Event()
        threads = run_clients(f"http://127.0.0.1:{port}", plans, [f"{prefix}k{c}" for c in range(clients)],
                              ledger, stop)
        time.sleep(float(rng.uniform(0.3, 1.0)) * seconds)
        proc.kill()  # SIGKILL: no shutdown handler runs
        proc.wait()
        stop.set()
        for t in threads:
            t.join(timeout=60)
    return ledger


def concurrency_scenario(base: str, prefix: str, ids: list[str], clients: int, seconds: float) -> tuple[Ledger, float]:
    """``clients`` researchers on one shared pool of galaxies and one shared tag, for ``seconds``."""
    ledger, stop = Ledger(), threading.Event()
    pool, shared = ids[:12], f"#{prefix}shared"

    def plan(c: int) -> Iterator[Write]:
        rng = np.random.default_rng(1000 + c)
        while True:
            galaxy = str(rng.choice(pool))
            yield rate(galaxy, f"{prefix}r{c}", int(rng.integers(0, 6))) if rng.random() < 0.6 else tag(shared, galaxy)

    t0 = time.perf_counter()
    threads = run_clients(base, [plan(c) for c in range(clients)], [f"{prefix}r{c}" for c in range(clients)],
                          ledger, stop)
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return ledger, time.perf_counter() - t0


def stored(base: str, prefix: str) -> Counter:
    """Every (key, value) the run's names hold in the database, counted, read back through the API."""
    found: Counter = Counter()
    with httpx.Client(base_url=base, timeout=120) as client:
        table = client.get("/anomalies/ratings/export", params={"everyone": True, "format": "csv"})
        table.raise_for_status()
        for row in csv.DictReader(io.StringIO(table.text)):
            if row["who"].startswith(prefix):
                found[(("rating", row["id"], row["who"]), int(row["rating"]))] += 1
        for t in client.get("/tags").json()["tags"]:
            if t["tag"].startswith("#" + prefix):
                for g in client.get(f"/tags/{t['tag'].replace('#', '%23')}").json()["galaxies"]:
                    found[(("tag", t["tag"], g["id"]), g["status"])] += 1
    return found


def audit(ledger: Ledger, found: Counter) -> dict:
    keys = Counter(key for key, _ in found.elements())
    present = {key: value for key, value in found}
    ok = sum(1 for key, value in ledger.acked.items() if keys[key] == 1 and present.get(key) == value)
    # A key written several times keeps only its last value: each key's last acknowledged write must be found.
    return {"acknowledged": len(ledger.acked), "writes_acknowledged": ledger.acknowledged, "found": ok,
            "lost": len(ledger.acked) - ok, "duplicated": sum(1 for n in keys.values() if n > 1),
            "server_errors": ledger.server_errors, "refused_4xx": ledger.refused, "unanswered": ledger.unanswered}


def sqlite_integrity(database_url: str) -> str | None:
    if not database_url.startswith("sqlite:///"):
        return None
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def soak(workdir: Path, database_url: str, clients: int = 8, kills: int = 3, concurrent: int = 20,
         seconds: float = 5.0, seed: int = 0) -> dict:
    """Run both scenarios on one database and audit each; returns the summary ``--json`` prints."""
    from astropy.table import Table

    ids = [str(i) for i in Table.read(Workdir(workdir).store / CATALOG)["id"]]
    env = {"DATABASE_URL": database_url}
    prefix = f"soak{secrets.token_hex(3)}"
    killed = kill_scenario(workdir, env, prefix + "x", ids, clients, kills, seconds, seed)
    port = free_port()
    proc = start_server(workdir, port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        kill_report = audit(killed, stored(base, prefix + "x"))
        busy, wall = concurrency_scenario(base, prefix + "y", ids, concurrent, seconds)
        busy_report = audit(busy, stored(base, prefix + "y"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat = np.array(busy.latencies or [0.0])
    busy_report.update(clients=concurrent, seconds=round(wall, 1), rps=round(busy.acknowledged / wall, 1),
                       p50_ms=round(float(np.percentile(lat, 50)), 1), p99_ms=round(float(np.percentile(lat, 99)), 1))
    kill_report.update(kills=kills, clients=clients, integrity=sqlite_integrity(database_url))
    total = {k: kill_report[k] + busy_report[k] for k in
             ("acknowledged", "found", "lost", "duplicated", "server_errors")}
    return {**total, "database": database_url.split(":", 1)[0].split("+")[0], "kill": kill_report,
            "concurrency": busy_report}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("work/demo"))
    p.add_argument("--database-url", help="default: a fresh SQLite file in the workdir (galsearch-soak.db)")
    p.add_argument("--clients", type=int, default=8, help="writers in the kill scenario")
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--concurrent", type=int, default=20, help="clients in the concurrency scenario")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each kill round and of the concurrency run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    url = args.database_url or f"sqlite:///{(args.workdir / 'galsearch-soak.db').resolve()}"
    result = soak(args.workdir, url, args.clients, args.kills, args.concurrent, args.seconds, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    for name in ("kill", "concurrency"):
        print(f"{name:>12}: " + ", ".join(f"{k} {v}" for k, v in result[name].items()))
    print(f"{'total':>12}: " + ", ".join(f"{k} {result[k]}" for k in ("acknowledged", "found", "lost", "duplicated",
                                                                     "server_errors")))


if __name__ == "__main__":
    main()
