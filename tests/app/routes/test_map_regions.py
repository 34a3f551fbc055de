"""The survey map over HTTP: a box or a lasso lists the galaxies inside it and tags them (source = map), on SQLite
and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib.path import Path as MplPath

from app.main import create_app
from galsearch.settings import Settings
from survey.workdir import SURVEY_MAP

JSON = {"Accept": "application/json"}


@pytest.fixture()
def client(workdir: Path, database_url: str, act_as) -> TestClient:
    with TestClient(create_app(Settings(workdir=workdir, database_url=database_url))) as c:
        act_as(c, "vera")
        yield c


def _triangle(xy: np.ndarray) -> np.ndarray:
    """A triangle over the middle of the map: it holds galaxies, and fewer than its bounding box."""
    (x0, y0), (x1, y1) = np.percentile(xy, 20, axis=0), np.percentile(xy, 80, axis=0)
    return np.array([[x0, y0], [x1, y0], [x0, y1]])


def test_a_lasso_lists_and_tags_exactly_the_galaxies_inside_it(client: TestClient, workdir: Path) -> None:
    xy = np.load(workdir / SURVEY_MAP)
    ids = [str(i) for i in client.app.state.resources.index.ids]
    triangle = _triangle(xy)
    inside = np.flatnonzero(MplPath(triangle).contains_points(xy))
    lasso = ",".join(f"{v:.17g}" for v in triangle.ravel())
    box = dict(zip(("x0", "y0"), triangle.min(0))) | dict(zip(("x1", "y1"), triangle.max(0)))
    in_box = client.get("/map/region", params=box, headers=JSON).json()["count"]
    found = client.get("/map/region", params={"lasso": lasso}, headers=JSON).json()
    assert 0 < found["count"] == len(inside) < in_box
    assert {g["id"] for g in found["galaxies"]} <= {ids[r] for r in inside}
    page = client.get("/map/region", params={"lasso": lasso}, headers={"Accept": "text/html"})
    assert "galaxies in the lasso" in page.text and 'name="lasso"' in page.text
    tagged = client.post("/map/tag", data={"lasso": lasso, "tag": "#lassoed"}, headers=JSON).json()
    assert tagged == {"tag": "#lassoed", "tagged": len(inside)}
    members = client.get("/tags/lassoed", headers=JSON).json()["galaxies"]
    assert {m["id"] for m in members} == {ids[r] for r in inside} and {m["source"] for m in members} == {"map"}


@pytest.mark.parametrize(("params", "message"), [
    ({}, "a box (x0, x1, y0, y1) or a lasso"),
    ({"x0": 1, "x1": 0, "y0": 0, "y1": 1}, "x0 < x1"),
    ({"lasso": "0,0,1,1"}, "3 to 500"),
    ({"lasso": "0,0,1,1,2"}, "3 to 500"),
    ({"lasso": "0,0,1,nan,2,0"}, "finite"),
    ({"lasso": "0,0,1,<b>,2,0"}, "a list of numbers"),
    ({"lasso": ",".join(["1"] * 1002)}, "3 to 500"),
])
def test_a_bad_region_is_a_422_with_a_message(client: TestClient, params: dict, message: str) -> None:
    for r in (client.get("/map/region", params=params, headers=JSON),
              client.post("/map/tag", data={**params, "tag": "#x"}, headers=JSON)):
        assert r.status_code == 422 and message in r.text and "<b>" not in r.text
