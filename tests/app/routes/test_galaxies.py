from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from fastapi.testclient import TestClient

from app.main import create_app
from galsearch.settings import Settings


@pytest.fixture()
def client(workdir: Path, database_url: str) -> TestClient:
    with TestClient(create_app(Settings(workdir=workdir, database_url=database_url, page_size=24))) as c:
        yield c


def test_gallery_page_uses_local_htmx(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert '<script src="/static/htmx/htmx.min.js"' in r.text
    assert "http" not in r.text.split("<script")[1].split(">")[0]  # no CDN
    assert r.text.count('class="thumb"') == 24
    assert 'hx-get="/gallery?page=2"' in r.text
    js = client.get("/static/htmx/htmx.min.js")
    assert js.status_code == 200 and "htmx" in js.text[:2000]
    assert client.get("/static/app/style.css").status_code == 200


def test_gallery_pages_cover_the_survey(client: TestClient, catalog: Table) -> None:
    seen, page = [], 1
    while page:
        body = client.get("/api/galaxies", params={"page": page}).json()
        seen += [g["id"] for g in body["galaxies"]]
        page = body["next_page"]
    assert seen == [str(i) for i in catalog["id"]]
    assert 'class="more"' in client.get("/gallery", params={"page": 9}).text
    assert 'class="more"' not in client.get("/gallery", params={"page": 10}).text  # 240 galaxies, 24 a page


def test_thumbnail_png_is_cached(client: TestClient, catalog: Table, workdir: Path) -> None:
    gid = str(catalog["id"][3])
    r = client.get(f"/galaxies/{gid}/image.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    cached = workdir / "thumbs" / "3.png"
    assert cached.exists() and cached.read_bytes() == r.content
    assert client.get(f"/galaxies/{gid}/image.png").content == r.content


def test_similar_json(client: TestClient, catalog: Table) -> None:
    gid = str(catalog["id"][0])
    r = client.get(f"/galaxies/{gid}/similar", params={"k": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["query"]["id"] == gid and body["query"]["ra"] == pytest.approx(float(catalog["ra"][0]))
    res = body["results"]
    assert len(res) == 7 and gid not in [x["id"] for x in res]
    assert {"id", "ra", "dec", "distance", "similarity"} <= set(res[0])
    d = [x["distance"] for x in res]
    assert d == sorted(d) and all(np.isfinite(d))


def test_similar_html_for_htmx(client: TestClient, catalog: Table) -> None:
    gid = str(catalog["id"][5])
    r = client.get(f"/galaxies/{gid}/similar?k=5", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert f'id="query-id">{gid}<' in r.text
    assert r.text.count('class="thumb"') == 5


def test_a_browser_opening_look_alikes_or_a_lookup_gets_html_and_an_api_client_json(client: TestClient,
                                                                                   catalog: Table) -> None:
    gid, ra, dec = str(catalog["id"][5]), float(catalog["ra"][5]), float(catalog["dec"][5])
    for path, params in ((f"/galaxies/{gid}/similar", {"k": 5}), ("/lookup", {"ra": ra, "dec": dec, "k": 5})):
        page = client.get(path, params=params, headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], path
        assert f'id="query-id">{gid}<' in page.text and page.text.count('class="thumb"') == 5
        assert client.get(path, params=params).headers["content-type"] == "application/json", path


def test_galaxy_detail(client: TestClient, catalog: Table) -> None:
    gid = str(catalog["id"][2])
    body = client.get(f"/galaxies/{gid}").json()
    assert str(body["id"]) == gid and body["morphology"] == str(catalog["morphology"][2])


@pytest.mark.parametrize("path,status", [
    ("/galaxies/999999999/similar", 404),
    ("/galaxies/999999999/image.png", 404),
    ("/galaxies/nope", 404),
    ("/galaxies/..%2F..%2Fetc%2Fpasswd/image.png", 404),  # decoded to a path no route matches
    ("/galaxies/a%09b/similar", 422),  # a control character: no id holds one (a space is fine: 404)
    ("/galaxies/" + "9" * 65 + "/similar", 422),
    ("/gallery?page=0", 422),
    ("/api/galaxies?page=abc", 422),
])
def test_bad_input_is_a_4xx_with_a_message(client: TestClient, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert body.get("detail") or body.get("message")


@pytest.mark.parametrize("k", [0, -1, 201, 10**9, "x"])
def test_k_out_of_range(client: TestClient, catalog: Table, k) -> None:
    r = client.get(f"/galaxies/{catalog['id'][0]}/similar", params={"k": k})
    assert r.status_code == 422 and "k" in r.json()["message"]


def test_unknown_id_message(client: TestClient) -> None:
    r = client.get("/galaxies/123abc/similar")
    assert r.status_code == 404 and "123abc" in r.json()["detail"]


def test_path_traversal_never_reaches_files(client: TestClient) -> None:
    for p in ("/galaxies/../../etc/passwd/image.png", "/galaxies/%2e%2e/image.png", "/static/app/../../pyproject.toml"):
        r = client.get(p)
        assert r.status_code in (404, 422), p
        assert "[project]" not in r.text and "root:" not in r.text


def test_openapi_documents_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/galaxies/{galaxy_id}/similar", "/galaxies/{galaxy_id}/image.png", "/api/galaxies"} <= set(paths)


def test_the_database_holds_no_row_per_galaxy(client: TestClient, database_url: str, catalog: Table) -> None:
    from sqlalchemy import create_engine, inspect

    gid = str(catalog["id"][4])
    detail = client.get(f"/galaxies/{gid}").json()  # served from the survey's files
    assert detail["ra"] == pytest.approx(float(catalog["ra"][4]))
    engine = create_engine(database_url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version", "tags", "tag_assignments", "ratings"}
    engine.dispose()


def test_app_does_not_import_training_code() -> None:
    import subprocess
    import sys

    code = ("import sys, app.main; bad = [m for m in ('torch', 'embedder.train', 'embedder.model') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_responses_carry_server_timing(client: TestClient, catalog: Table) -> None:
    r = client.get(f"/galaxies/{catalog['id'][0]}/similar", params={"k": 5})
    name, dur = r.headers["server-timing"].split(";dur=")
    assert name == "app" and float(dur) >= 0


def test_similar_restricted_by_catalog_conditions(client: TestClient, catalog: Table) -> None:
    gid = str(catalog["id"][0])
    r = client.get(f"/galaxies/{gid}/similar", params={"k": 10, "where": ["mag_r<=17.5", "morphology!=elliptical"]})
    assert r.status_code == 200
    rows = {str(i): row for i, row in zip(catalog["id"], catalog)}
    hits = r.json()["results"]
    assert len(hits) == 10 and gid not in [h["id"] for h in hits]
    assert all(rows[h["id"]]["mag_r"] <= 17.5 and rows[h["id"]]["morphology"] != "elliptical" for h in hits)
    only = client.get(f"/galaxies/{gid}/similar", params={"k": 50, "where": "morphology==ring"}).json()["results"]
    assert {rows[h["id"]]["morphology"] for h in only} == {"ring"}
    assert len(only) == int((catalog["morphology"] == "ring").sum()) - (rows[gid]["morphology"] == "ring")


@pytest.mark.parametrize("where", ["nope<=3", "mag_r<=bright", "morphology<ring", "mag_r~3", "ra"])
def test_bad_conditions_are_422(client: TestClient, catalog: Table, where: str) -> None:
    r = client.get(f"/galaxies/{catalog['id'][0]}/similar", params={"where": where})
    assert r.status_code == 422 and r.json()["detail"]


def test_galaxy_json_and_exports_carry_its_morphometry(client: TestClient, catalog: Table) -> None:
    gid = str(catalog["id"][0])
    row = client.get(f"/galaxies/{gid}").json()
    assert {"asymmetry", "concentration", "gini", "m20", "segment_area", "r50"} <= set(row)
    assert isinstance(row["concentration"], float)
    r = client.get(f"/galaxies/{gid}/similar", params={"k": 5, "format": "csv"})
    assert r.status_code == 200 and "asymmetry" in r.text.splitlines()[0]


def test_why_similar_takes_the_search_distance_apart(client: TestClient, workdir: Path) -> None:
    query = client.get("/api/galaxies").json()["galaxies"][0]["id"]
    best = client.get(f"/galaxies/{query}/similar", params={"k": 3}).json()["results"][0]
    why = client.get(f"/galaxies/{query}/why/{best['id']}").json()
    assert why["similarity"] == pytest.approx(best["similarity"], abs=1e-5)
    assert why["distance_squared"] == pytest.approx(2 - 2 * best["similarity"], abs=1e-4)
    shares = why["shares"]
    assert list(shares)[0] == "learned" and len(shares) == 10 and sum(shares.values()) == pytest.approx(1.0)
    vectors = np.load(workdir / "embeddings.npy", mmap_mode="r")
    ids = [str(i) for i in np.load(workdir / "embedding_ids.npy", allow_pickle=True)]
    u, v = vectors[ids.index(query)], vectors[ids.index(best["id"])]
    learned = float(((u[:-9] - v[:-9]) ** 2).sum())
    assert shares["learned"] == pytest.approx(learned / why["distance_squared"], rel=1e-4)
    assert set(why["morphometry"]) >= {"asymmetry", "gini"} and len(why["morphometry"]["gini"]) == 2
    assert why["query"]["id"] == query and why["other"]["id"] == best["id"]
    assert client.get(f"/galaxies/{query}/why/nope").status_code == 404
    page = client.get(f"/galaxies/{query}/why/{best['id']}", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.text.count("<meter") == 10


def test_gallery_filters_sorts_searches_and_captions(client: TestClient, catalog: Table) -> None:
    body = client.get("/api/galaxies", params={"where": "mag_r<=19.5", "sort": "mag_r", "order": "desc",
                                               "show": "morphology"}).json()
    assert body["total"] == int((catalog["mag_r"] <= 19.5).sum())
    rows = {str(r["id"]): r for r in catalog}
    shown = [rows[g["id"]] for g in body["galaxies"]]
    assert [r["mag_r"] for r in shown] == sorted((r["mag_r"] for r in shown), reverse=True)
    assert [g["label"] for g in body["galaxies"]] == [str(r["morphology"]) for r in shown]
    part = str(catalog["id"][7])[-3:]
    found = client.get("/api/galaxies", params={"q": part}).json()
    assert found["total"] == sum(part in str(i) for i in catalog["id"]) and found["total"] >= 1
    text = client.get("/api/galaxies", params={"sort": "morphology"}).json()["galaxies"]
    assert [rows[g["id"]]["morphology"] for g in text] == sorted(rows[g["id"]]["morphology"] for g in text)
    for bad in ({"where": "nope<1"}, {"sort": "nope"}, {"show": "nope"}, {"where": "mag_r<=bright"},
                {"sort": "no spaces"}):
        r = client.get("/api/galaxies", params=bad)
        assert r.status_code == 422, bad
    added = client.get("/", params={"where": "mag_r<=19.5", "column": "morphology", "op": "==", "value": " ring ",
                                    "sort": "", "show": ""}, follow_redirects=False)
    assert added.status_code == 303
    assert added.headers["location"] == "/?where=mag_r%3C%3D19.5&where=morphology%3D%3Dring"
