"""Hostile input and forged writes: size limits, CSRF, optional access token, path traversal, HTML escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from astropy.table import Table
from conftest import ROOT
from fastapi.testclient import TestClient

from app.main import create_app
from galsearch.settings import Settings


@pytest.fixture(scope="module")
def gid(workdir: Path) -> str:
    return str(Table.read(workdir / "store" / "catalog.fits")["id"][0])


def make_client(workdir: Path, tmp_path: Path, **settings) -> TestClient:
    return TestClient(create_app(Settings(workdir=workdir, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                                          **settings)))


@pytest.fixture()
def client(workdir: Path, tmp_path: Path):
    with make_client(workdir, tmp_path, max_request_bytes=4096) as c:
        yield c


def test_scripts_without_cookies_write_freely_and_pages_hand_out_a_csrf_cookie(client, gid) -> None:
    r = client.post(f"/tags/%23bar/galaxies/{gid}")
    assert r.status_code == 200 and "galsearch_csrf" not in r.cookies
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["server-timing"].startswith("app;dur=")
    assert "set-cookie" not in client.get(f"/galaxies/{gid}/image.png").headers  # publicly cacheable: no cookie
    assert "galsearch_csrf" in client.get("/").cookies


def test_a_browser_write_needs_the_csrf_token(client, gid) -> None:
    client.get("/")  # a page visit: the browser now holds galsearch cookies
    refused = client.post(f"/tags/%23bar/galaxies/{gid}")
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    wrong = client.post(f"/tags/%23bar/galaxies/{gid}", headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    token = client.cookies["galsearch_csrf"]
    assert client.post(f"/tags/%23bar/galaxies/{gid}", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.get("/tags/%23bar").json()["members"] == 1


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "null"}])
def test_cross_site_writes_are_refused(client, gid, headers) -> None:
    r = client.post(f"/tags/%23bar/galaxies/{gid}", headers=headers)
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    assert client.get("/tags/%23bar").status_code == 404  # nothing written


def test_same_origin_writes_pass(client, gid) -> None:
    r = client.post(f"/tags/%23bar/galaxies/{gid}", headers={"Origin": "http://testserver",
                                                             "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200


def test_oversized_requests_are_refused(client) -> None:
    big = {"decisions": [{"id": f"g{i}", "decision": "accept"} for i in range(400)]}
    r = client.post("/tags/%23bar/decisions", json=big)
    assert r.status_code == 413 and "4096 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it streams in
        for _ in range(10):
            yield b"x" * 1000

    assert client.post("/anomalies/ratings", content=chunks(),
                       headers={"Content-Type": "application/json"}).status_code == 413
    assert client.get("/gallery", params={"page": "1" * 9000}).status_code == 414


@pytest.mark.parametrize("path", [
    "/static/app/../../app/main.py", "/static/app/%2e%2e/%2e%2e/app/main.py", "/static/app/..%2f..%2fapp%2fmain.py",
    "/static/htmx/..%2f..%2f..%2f..%2fetc%2fpasswd", "/galaxies/..%2f..%2fetc%2fpasswd/image.png",
    "/galaxies/%2e%2e/image.png", "/tags/..%2f..%2fetc/export?format=csv", "/galaxies/..%5c..%5cwin.ini/similar"])
def test_path_traversal_finds_nothing(client, path) -> None:
    r = client.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert b"def create_app" not in r.content and b"root:" not in r.content


def test_markup_in_names_never_reaches_a_page_unescaped(client, gid) -> None:
    client.get("/")
    client.headers["X-CSRF-Token"] = client.cookies["galsearch_csrf"]
    assert client.post(f"/tags/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/galaxies/{gid}").status_code == 422
    assert client.post("/who", data={"name": "<img src=x onerror=alert(1)>"}).status_code == 422
    client.cookies.set("galsearch_who", "<script>alert(1)</script>")  # forged by hand: refused, not stored
    r = client.post(f"/tags/%23bar/galaxies/{gid}")
    assert r.status_code == 422 and "galsearch_who" in r.text
    client.cookies.delete("galsearch_who")
    assert client.get("/tags/%23bar").status_code == 404
    page = client.get("/lookup", params={"ra": "<script>alert(1)</script>", "dec": "0"}, headers={"HX-Request": "true"})
    assert page.status_code == 422 and "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_access_token_guards_writes_and_leaves_reads_open(workdir: Path, tmp_path: Path, gid) -> None:
    with make_client(workdir, tmp_path, auth_token="s3cret") as c:
        assert c.get("/").status_code == 200 and c.get(f"/galaxies/{gid}/similar").status_code == 200
        c.headers["X-CSRF-Token"] = c.cookies["galsearch_csrf"]  # as the gallery's scripts send it
        r = c.post(f"/tags/%23bar/galaxies/{gid}")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert c.post(f"/tags/%23bar/galaxies/{gid}", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post(f"/tags/%23bar/galaxies/{gid}", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        # A browser signs in once; its cookie (plus the CSRF token) then authorises writes.
        assert c.get("/login").status_code == 200
        assert c.post("/login", data={"token": "nope"}).status_code == 401
        assert c.post("/login", data={"token": "s3cret"}).json() == {"signed_in": True}
        assert "s3cret" not in c.cookies["galsearch_auth"]
        assert c.post("/anomalies/ratings", json={"id": gid, "rating": 4}).status_code == 200
        assert c.post("/logout").status_code == 200
        c.cookies.delete("galsearch_auth")
        assert c.post("/anomalies/ratings", json={"id": gid, "rating": 1}).status_code == 401


def test_sign_in_is_off_without_a_token(client) -> None:
    assert client.get("/login").status_code == 404


TEMPLATES = ROOT / "frontend" / "templates"


def test_every_response_forbids_inline_scripts_and_no_template_needs_them(client, gid) -> None:
    for path in ("/", f"/galaxies/{gid}", "/tags", "/anomalies", "/galaxies/nope", f"/galaxies/{gid}/image.png"):
        policy = client.get(path, headers={"accept": "text/html"}).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name  # only <script src=...>
        assert not re.search(r"\s(on[a-z]+|hx-on[:-][^=]*)=", text), template.name  # no inline handlers
        assert "style=" not in text, template.name


def test_refusals_speak_json_to_scripts_html_to_browsers_and_partials_to_htmx(client, gid) -> None:
    api = client.get("/galaxies/nope")
    assert api.status_code == 404 and api.json() == {"detail": "unknown galaxy id 'nope'"}
    page = client.get("/galaxies/nope", headers={"accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "unknown galaxy id &#39;nope&#39;" in page.text and '<a href="/">' in page.text
    part = client.get(f"/galaxies/{gid}/similar", params={"where": "<b>x</b>"}, headers={"HX-Request": "true"})
    assert part.status_code == 422 and part.headers["hx-retarget"] == "#errors" and "<!doctype" not in part.text
    assert "&lt;b&gt;x&lt;/b&gt;" in part.text and "<b>" not in part.text
    too_long = client.get("/?" + "x" * 9000, headers={"accept": "text/html"})  # refused before any route
    assert too_long.status_code == 414 and "URL longer than" in too_long.text and "<html" in too_long.text
    invalid = client.get(f"/galaxies/{gid}/similar", params={"k": "<i>"})
    assert invalid.status_code == 422 and "'<i>'" in invalid.json()["message"]
