"""No Docker engine runs in CI: check that the compose file and Dockerfile say what the README promises, and run
every command the compose file runs (the embedder's build, the api's server and its healthcheck) as it is written,
with only the volume paths, the port, the GPU and the survey's size swapped for this machine's."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from galsearch.cli import main as cli

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SMALL_BUILD = ["--n", "240", "--seed", "3", "--epochs", "1", "--width", "8", "--batch-size", "64"]


def test_compose_services() -> None:
    compose = COMPOSE
    services = compose["services"]
    assert set(services) == {"api", "embedder", "db"}
    assert "DATABASE_URL" in services["api"]["environment"]
    assert services["api"]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "healthcheck" in services["api"] and "healthcheck" in services["db"]
    devices = services["embedder"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    for name in ("api", "embedder"):
        assert any(v.startswith("data:") for v in services[name]["volumes"])
    assert {"data", "pgdata"} <= set(compose["volumes"])


def test_dockerfile_copies_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pkg in (p.rstrip("*") for p in packages["include"]):
        assert (ROOT / pkg / "__init__.py").exists() and f"COPY {pkg} {pkg}" in text


def _here(argv: list[str], volume: dict[str, Path]) -> list[str]:
    """A compose command for this machine: the shared volume's paths mapped to ``volume``, a CPU for the GPU."""
    out = []
    for arg in argv:
        for inside, path in volume.items():
            arg = arg.replace(inside, str(path))
        out.append("cpu" if arg == "cuda" else arg)
    return out


@pytest.fixture(scope="module")
def compose_volume(survey_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The embedder service's command, run: it fills the data volume the api serves from."""
    data = tmp_path_factory.mktemp("data")
    volume = {"/data/demo": survey_dir, "/data/work": data / "work"}
    argv = COMPOSE["services"]["embedder"]["command"]
    assert argv[0] == "galsearch"
    cli(_here(argv[1:], volume) + SMALL_BUILD)  # the demo's own size flags are swapped for a small survey's
    return volume


def test_embedder_command_builds_the_workdir(compose_volume: dict[str, Path]) -> None:
    manifest = json.loads((compose_volume["/data/work"] / "manifest.json").read_text())
    assert manifest["count"] == 240 and manifest["dim"] == 32 + 9  # width 8: 32 learned dimensions + morphometry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_command_serves_and_passes_its_healthcheck(compose_volume: dict[str, Path], database_url: str) -> None:
    api = COMPOSE["services"]["api"]
    port = str(_free_port())
    argv = [a if a != "8000" else port for a in _here(api["command"], compose_volume)]
    assert argv[0] == "galsearch" and "--workdir" in argv
    env = {**os.environ, "DATABASE_URL": database_url}  # compose's names the db service
    log = tempfile.TemporaryFile()
    script = Path(sys.executable).with_name("galsearch")  # the installed console script, as in the image
    server = subprocess.Popen([str(script) if script.exists() else shutil.which("galsearch"), *argv[1:]], env=env,
                              stdout=log,
                              stderr=subprocess.STDOUT)
    check = api["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1] == "python"
    probe = [sys.executable, *[re.sub(r":8000\b", f":{port}", a) for a in check[2:]]]
    try:
        for _ in range(150):
            if server.poll() is not None:
                log.seek(0)
                pytest.fail(f"the api command exited: {log.read().decode(errors='replace')[-2000:]}")
            if subprocess.run(probe, capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the api never passed its healthcheck")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dockerfile_default_command_is_the_api_command() -> None:
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    argv = json.loads(cmd[4:])
    api = COMPOSE["services"]["api"]["command"]
    assert argv[:2] == api[:2] == ["galsearch", "serve"]
    assert set(argv) <= set(api)  # the compose command adds only the workdir, which the image sets by env
