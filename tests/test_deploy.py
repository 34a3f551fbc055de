"""No Docker engine runs in CI: check that the compose file and Dockerfile say what the README promises."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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
    for pkg in ("galsearch", "survey", "embedder", "index_builder", "app", "frontend"):
        assert f"COPY {pkg} {pkg}" in text
