"""Anomaly ranking over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from fastapi.testclient import TestClient

from app.main import create_app
from galsearch.settings import Settings


@pytest.fixture()
def client(workdir: Path, database_url: str, act_as) -> TestClient:
    settings = Settings(workdir=workdir, database_url=database_url, retrain_every=3)
    with TestClient(create_app(settings)) as c:
        act_as(c, "jocelyn")
        yield c


def test_rate_retrain_and_rerank(client: TestClient) -> None:
    start = client.get("/anomalies", params={"n": 10}).json()
    assert start["method"] == "unsupervised" and "no ratings yet" in start["message"] and start["ratings"] == 0
    shown = [g["id"] for g in start["to_rate"]]
    assert len(shown) == 10 and len(set(shown)) == 10
    for gid, rating in zip(shown[:2], (5, 0)):
        r = client.post("/anomalies/ratings", json={"id": gid, "rating": rating})
        assert r.status_code == 200 and r.json()["rated"] == {"id": gid, "rating": rating}
    assert client.get("/anomalies").json()["method"] == "unsupervised"  # 2 < retrain_every
    r = client.post("/anomalies/ratings", json={"id": shown[2], "rating": 1}).json()
    assert r["method"] == "classifier" and r["ratings"] == 3 and r["fitted_on"] == 3  # retrained automatically
    assert not {g["id"] for g in r["to_rate"]} & set(shown[:3])  # rated galaxies leave the queue
    assert r["top"][0]["id"] == shown[0] and r["top"][0]["rating"] == 5 and r["top"][0]["status"] == "rated"
    guesses = [g for g in r["top"] if g["status"] == "predicted"]
    assert guesses and all(g["rating"] is None and g["uncertainty"] >= 0 for g in guesses)
    assert "fitted on 3 ratings" in r["message"] and "look-alikes" in r["message"]
    client.post("/anomalies/ratings", json={"id": shown[0], "rating": 2})  # changing a rating updates it
    retrained = client.post("/anomalies/retrain").json()
    assert retrained["ratings"] == 3 and "entered_top_100" in retrained
    assert client.get(f"/galaxies/{shown[0]}/rating").json()["rating"] == 2
    export = client.get("/anomalies/ratings/export", params={"format": "fits"})
    table = Table.read(io.BytesIO(export.content), format="fits")
    assert sorted(table["id"]) == sorted(shown[:3]) and set(table["who"]) == {"jocelyn"}
    assert dict(zip(table["id"], table["rating"]))[shown[0]] == 2 and np.isfinite(table["ra"]).all()
    csv = Table.read(client.get("/anomalies/ratings/export").text, format="ascii.csv")
    assert {"id", "ra", "dec", "rating", "who", "when"} <= set(csv.colnames)


def test_researchers_have_their_own_ratings(client: TestClient, act_as) -> None:
    gid = client.get("/anomalies").json()["to_rate"][0]["id"]
    client.post("/anomalies/ratings", json={"id": gid, "rating": 4})
    act_as(client, "henrietta")
    assert client.get("/anomalies").json()["ratings"] == 0
    assert client.get(f"/galaxies/{gid}/rating").status_code == 404
    everyone = Table.read(client.get("/anomalies/ratings/export", params={"everyone": True}).text, format="ascii.csv")
    assert list(everyone["who"]) == ["jocelyn"]


def test_retrain_without_ratings_is_the_unsupervised_ranking(client: TestClient) -> None:
    r = client.post("/anomalies/retrain")
    assert r.status_code == 200 and r.json()["method"] == "unsupervised"


@pytest.mark.parametrize("body,code", [({"id": "999999999", "rating": 3}, 404), ({"id": "{gid}", "rating": 6}, 422),
                                       ({"id": "{gid}", "rating": -1}, 422), ({"id": "{gid}", "rating": 2.5}, 422),
                                       ({"id": "{gid}", "rating": "3"}, 422), ({"id": "{gid}"}, 422)])
def test_bad_ratings_are_4xx(client: TestClient, body: dict, code: int) -> None:
    gid = client.get("/anomalies").json()["to_rate"][0]["id"]
    payload = {k: (v.format(gid=gid) if isinstance(v, str) else v) for k, v in body.items()}
    r = client.post("/anomalies/ratings", json=payload)
    assert r.status_code == code and (r.json().get("message") or r.json().get("detail"))
    assert client.get("/anomalies").json()["ratings"] == 0


def test_anomaly_page_shows_the_top_100_it_names_and_what_to_rate_next(client: TestClient) -> None:
    page = client.get("/anomalies", headers={"accept": "text/html"}).text
    assert page.count('class="rate-card') == 124 and "Top 100 of the ranking" in page
    assert "anomaly score" in page and "predicted" not in page and "last retrain" not in page  # nothing rated yet
    assert 'id="retrain"' in page and "anomalies.js" in page
    data = client.get("/anomalies").json()
    assert len(data["top"]) == 100 and len(data["to_rate"]) == 24 and data["fitted_on"] == 0
    assert all(g["status"] == "unsupervised" and g["uncertainty"] is None for g in data["top"])
    # no ratings yet: rate next is the unsupervised top itself
    assert [g["id"] for g in data["to_rate"]] == [g["id"] for g in data["top"][:24]]


def test_ratings_below_four_keep_the_unsupervised_order(client: TestClient) -> None:
    first = client.get("/anomalies", params={"n": 3}).json()["to_rate"]
    for g in first:
        client.post("/anomalies/ratings", json={"id": g["id"], "rating": 1})
    r = client.post("/anomalies/retrain").json()
    assert r["method"] == "unsupervised" and r["fitted_on"] == 3 and "none of them 4-5 yet" in r["message"]
    assert not {g["id"] for g in first} & {g["id"] for g in r["to_rate"]}


def test_rated_galaxies_leave_the_queue_before_any_retrain(client: TestClient) -> None:
    first = client.get("/anomalies", params={"n": 5}).json()["to_rate"][0]["id"]
    after = client.post("/anomalies/ratings", json={"id": first, "rating": 3}).json()
    assert after["method"] == "unsupervised" and "until the next retrain" in after["message"]
    assert first not in {g["id"] for g in after["to_rate"]}
