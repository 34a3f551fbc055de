"""Tags over HTTP, on SQLite and PostgreSQL (the ``database_url`` fixture runs each test on both)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io.votable import parse_single_table
from astropy.table import Table
from fastapi.testclient import TestClient

from app.main import create_app
from galsearch.settings import Settings


@pytest.fixture()
def client(workdir: Path, database_url: str, act_as) -> TestClient:
    with TestClient(create_app(Settings(workdir=workdir, database_url=database_url))) as c:
        act_as(c, "vera")
        yield c


@pytest.fixture(scope="module")
def ids(workdir: Path) -> list[str]:
    return [str(i) for i in Table.read(workdir / "store" / "catalog.fits")["id"]]


def test_tag_expand_decide_and_expand_again(client: TestClient, ids: list[str]) -> None:
    r = client.post(f"/tags/%23Diffuse/galaxies/{ids[0]}")
    assert r.status_code == 200 and r.json() == {"tag": "#diffuse", "id": ids[0], "status": "positive", "who": "vera"}
    first = client.get("/tags/diffuse/candidates", params={"k": 12}).json()
    assert first["method"] == "diverse" and len(first["candidates"]) == 12
    proposed = [c["id"] for c in first["candidates"]]
    assert ids[0] not in proposed
    scores = [c["score"] for c in first["candidates"]]
    assert scores[0] == max(scores) and all(-1.0 <= sc <= 1.0 for sc in scores)  # spread out after the most similar
    decisions = [{"id": i, "decision": "accept" if n < 6 else "reject", "score": 0.5} for n, i in enumerate(proposed)]
    r = client.post("/tags/%23diffuse/decisions", json={"decisions": decisions})
    assert r.status_code == 200
    assert r.json()["members"] == 7 and r.json()["rejected"] == 6 and r.json()["accepted_proposals"] == 6
    second = client.get("/tags/%23diffuse/candidates", params={"k": 12}).json()
    assert second["method"] == "classifier"
    assert not set(proposed) & {c["id"] for c in second["candidates"]}
    assert all(0.0 <= c["score"] <= 1.0 for c in second["candidates"])
    # deciding again updates the row, never duplicates it
    client.post("/tags/diffuse/decisions", json={"decisions": [{"id": proposed[0], "decision": "reject"}]})
    page = client.get("/tags/diffuse").json()
    assert [g["status"] for g in page["galaxies"] if g["id"] == proposed[0]] == ["rejected"]
    assert page["members"] == 6 and page["rejected"] == 7 and page["researchers"] == ["vera"]
    assert client.get("/tags").json()["tags"] == [{"tag": "#diffuse", "members": 6, "rejected": 7}]
    assert "#diffuse" in client.get(f"/galaxies/{ids[0]}/tags").json()["tags"]


def test_exports_load_in_astropy(client: TestClient, ids: list[str]) -> None:
    for gid in ids[:3]:
        client.post(f"/tags/%23ring/galaxies/{gid}")
    client.post("/tags/ring/decisions", json={"decisions": [{"id": ids[5], "decision": "accept", "score": 0.9},
                                                            {"id": ids[6], "decision": "reject"}]})
    tables = {}
    for fmt in ("csv", "fits", "votable"):
        r = client.get("/tags/%23ring/export", params={"format": fmt})
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        raw = io.BytesIO(r.content)
        tables[fmt] = (Table.read(r.text, format="ascii.csv") if fmt == "csv" else
                       Table.read(raw, format="fits") if fmt == "fits" else parse_single_table(raw).to_table())
    for t in tables.values():
        assert sorted(str(i) for i in t["id"]) == sorted([*ids[:3], ids[5]])
        assert {"id", "ra", "dec", "tag", "source", "score", "asymmetry", "concentration", "gini", "m20"} <= set(
            t.colnames)
        assert np.isfinite(np.asarray(t["concentration"], float)).any()
        assert set(t["source"]) == {"human", "accepted proposal"} and set(t["tag"]) == {"#ring"}
        assert np.all(np.isfinite(np.asarray(t["ra"], float)))
    fits_t = tables["fits"]
    assert fits_t["ra"].unit == "deg" and fits_t["segment_area"].unit == "pix2"
    assert float(fits_t["score"][[str(i) for i in fits_t["id"]].index(ids[5])]) == pytest.approx(0.9)


@pytest.mark.parametrize("path,method,code", [
    ("/tags/%23diffuse/galaxies/999999999", "post", 404),
    ("/tags/has%20space/galaxies/{gid}", "post", 422),
    ("/tags/%23" + "x" * 70 + "/galaxies/{gid}", "post", 422),
    ("/tags/%23/galaxies/{gid}", "post", 422),
    ("/tags/%23nobody/candidates", "get", 404),
    ("/tags/%23diffuse/candidates?k=100000", "get", 422),
    ("/tags/%23nobody", "get", 404),
    ("/tags/%23diffuse/export?format=xls", "get", 422),
    ("/tags/%23nobody/export?format=csv", "get", 404),  # not a header-only file
    ("/tags/%23diffuse/galaxies/{gid}", "delete", 404),
])
def test_bad_tag_requests_are_4xx_with_a_message(client: TestClient, ids: list[str], path: str, method: str,
                                                 code: int) -> None:
    r = getattr(client, method)(path.format(gid=ids[0]))
    assert r.status_code == code, r.text
    body = r.json()
    assert body.get("detail") or body.get("message")


def test_bad_decisions_write_nothing(client: TestClient, ids: list[str]) -> None:
    client.post(f"/tags/lens/galaxies/{ids[0]}")
    bad = [{"id": ids[1], "decision": "accept"}, {"id": "nope", "decision": "accept"}]
    assert client.post("/tags/lens/decisions", json={"decisions": bad}).status_code == 404
    assert client.post("/tags/lens/decisions", json={"decisions": [{"id": ids[1], "decision": "maybe"}]}
                       ).status_code == 422
    assert client.post("/tags/lens/decisions", json={"decisions": []}).status_code == 422
    assert client.get("/tags/lens").json()["members"] == 1


def test_tag_pages_render(client: TestClient, ids: list[str]) -> None:
    html = {"accept": "text/html"}
    assert "No tags yet" in client.get("/tags", headers=html).text
    r = client.post(f"/galaxies/{ids[2]}/tags", data={"tag": " Merger "}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and 'href="/tags/%23merger"' in r.text
    page = client.get("/tags/%23merger", headers=html).text
    assert 'id="expand"' in page and "export?format=votable" in page and f'data-id="{ids[2]}"' in page
    cands = client.get("/tags/%23merger/candidates", headers={"HX-Request": "true"}).text
    assert cands.count('class="candidate"') == 24 and 'data-decision="accept"' in cands
    assert client.delete(f"/tags/%23merger/galaxies/{ids[2]}").json()["removed"] is True
    assert client.get(f"/galaxies/{ids[2]}/tags").json()["tags"] == []
