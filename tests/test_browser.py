"""A real Chromium (Debian's, driven by Playwright) clicks a galaxy and sees its look-alikes appear."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from app.main import create_app
from galsearch.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path_factory.mktemp("db") / "browser.db"
    app = create_app(Settings(workdir=workdir, database_url=f"sqlite:///{db}", page_size=24))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make browser-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()


def test_click_a_galaxy_shows_its_neighbours(server: str, page) -> None:
    page.goto(server + "/")
    thumbs = page.locator("#gallery .thumb")
    assert thumbs.count() >= 24
    first = thumbs.nth(0)
    gid = first.get_attribute("data-id")
    assert page.evaluate("typeof htmx") == "object"
    url_before = page.url
    first.click()
    page.wait_for_selector("#similar .results .thumb")
    assert page.locator("#query-id").inner_text() == gid  # the query galaxy stays visible
    assert page.locator("#similar .results .thumb").count() == 20
    assert page.url == url_before  # swapped in place, no navigation
    # Neighbours are clickable in turn.
    nxt = page.locator("#similar .results .thumb").nth(0)
    nid = nxt.get_attribute("data-id")
    nxt.click()
    page.wait_for_function(f"document.querySelector('#query-id').textContent === '{nid}'")
    img = page.locator("#similar .query img")
    assert page.evaluate("(el) => el.complete && el.naturalWidth > 0", img.element_handle())


def test_infinite_scroll_loads_more(server: str, page) -> None:
    page.goto(server + "/")
    page.wait_for_load_state("networkidle")
    shown = page.locator("#gallery .thumb").count()
    assert shown >= 24  # the first page, plus any pages needed to fill the window
    page.locator("#gallery .more").scroll_into_view_if_needed()
    page.wait_for_function(f"document.querySelectorAll('#gallery .thumb').length >= {shown + 24}")


def test_tag_expand_decide_expand_again_and_export(server: str, page) -> None:
    import csv
    import io

    page.goto(server + "/")
    first = page.locator("#gallery .thumb").nth(0)
    gid = first.get_attribute("data-id")
    first.click()
    page.wait_for_selector(f"#tags-{gid} input[name=tag]")
    page.fill(f"#tags-{gid} input[name=tag]", "#diffuse")
    page.click(f"#tags-{gid} button[type=submit]")
    page.wait_for_selector(f"#tags-{gid} a.chip")
    url_before = page.url
    assert page.locator(f"#tags-{gid} a.chip").inner_text() == "#diffuse" and page.url == url_before

    page.goto(server + "/tags/%23diffuse")
    page.click("#expand")
    page.wait_for_selector("#decide .candidate")
    cards = page.locator("#decide .candidate")
    first_round = [cards.nth(i).get_attribute("data-id") for i in range(cards.count())]
    assert gid not in first_round and len(first_round) == 24
    accepted, rejected = first_round[:2], first_round[2]
    cards.nth(0).locator("button[data-decision=accept]").click()  # by click
    page.wait_for_function(f"!document.querySelector('.candidate[data-id=\"{accepted[0]}\"]')")
    page.locator(f'.candidate[data-id="{accepted[1]}"]').focus()  # by keyboard
    page.keyboard.press("a")
    page.wait_for_function(f"!document.querySelector('.candidate[data-id=\"{accepted[1]}\"]')")
    page.locator(f'.candidate[data-id="{rejected}"]').focus()
    page.keyboard.press("r")
    page.wait_for_function(f"!document.querySelector('.candidate[data-id=\"{rejected}\"]')")
    assert "3 members" in page.locator("#tag-counts").inner_text()

    page.click("#expand")
    page.wait_for_function(f"!document.querySelector('.candidate[data-id=\"{accepted[0]}\"]') && "
                           "document.querySelectorAll('#decide .candidate').length === 24")
    second_round = {c.get_attribute("data-id") for c in page.locator("#decide .candidate").all()}
    assert not second_round & {*accepted, rejected, gid}

    with page.expect_download() as download:
        page.click("text=CSV")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(r["id"] for r in rows) == sorted([gid, *accepted])
    assert {r["source"] for r in rows} == {"human", "accepted proposal"} and {r["tag"] for r in rows} == {"#diffuse"}


def test_rate_anomalies_with_the_keyboard_and_retrain(server: str, page) -> None:
    page.goto(server + "/anomalies")
    page.wait_for_selector("#to-rate .rate-card")
    before = [c.get_attribute("data-id") for c in page.locator("#top figure").all()]
    rated = []
    for i, key in enumerate("50415"):
        card = page.locator("#to-rate .rate-card").first
        rated.append(card.get_attribute("data-id"))
        card.focus()
        page.keyboard.press(key)
        page.wait_for_function(f"document.querySelector('#anomaly-status').dataset.ratings === '{i + 1}'")
    assert len(set(rated)) == 5
    assert not set(rated) & {c.get_attribute("data-id") for c in page.locator("#to-rate .rate-card").all()}
    page.click("#retrain")
    page.wait_for_function("document.querySelector('#anomaly-status').dataset.method === 'gaussian_process' && "
                           "document.querySelector('#anomaly-status').textContent.includes('last retrain')")
    after = [c.get_attribute("data-id") for c in page.locator("#top figure").all()]
    assert after != before  # the ranking changed
    marked = {f.get_attribute("data-id"): f.locator("figcaption").inner_text()
              for f in page.locator("#top figure.rated").all()}
    assert marked[rated[0]] == "rated 5" and marked[rated[4]] == "rated 5"


def test_researcher_name_from_the_header_form_and_forged_writes_refused(server: str, page) -> None:
    import json
    import urllib.request

    page.goto(server + "/")
    page.fill("header form.who input[name=name]", "Annie Cannon")
    with page.expect_navigation():  # the form reloads the page so that per-researcher panels follow the name
        page.click("header form.who button")
    assert page.input_value("header form.who input[name=name]") == "Annie Cannon"
    first = page.locator("#gallery .thumb").nth(0)
    gid = first.get_attribute("data-id")
    first.click()
    page.fill(f"#tags-{gid} input[name=tag]", "#barred")
    page.click(f"#tags-{gid} button[type=submit]")
    page.wait_for_selector(f"#tags-{gid} a.chip")
    with urllib.request.urlopen(server + "/tags/%23barred") as resp:
        assert [g["who"] for g in json.load(resp)["galaxies"]] == ["Annie Cannon"]

    # Another site auto-submits a form at galsearch with the researcher's cookies: it must be refused.
    page.route("http://evil.example/", lambda route: route.fulfill(content_type="text/html", body=(
        f'<form method="post" action="{server}/tags/%23forged/galaxies/{gid}"></form>'
        "<script>document.forms[0].submit()</script>")))
    with page.expect_response(lambda r: "/tags/%23forged/" in r.url) as forged:
        page.goto("http://evil.example/")
    assert forged.value.status == 403
    try:
        urllib.request.urlopen(server + "/tags/%23forged")
        raise AssertionError("the forged tag was written")
    except urllib.error.HTTPError as err:
        assert err.code == 404


def test_details_link_opens_the_galaxy_page_with_bands_and_look_alikes(server: str, page) -> None:
    page.goto(server + "/")
    first = page.locator("#gallery .thumb").nth(1)
    gid = first.get_attribute("data-id")
    first.click()
    page.wait_for_selector("#similar .query a[href]")
    page.click("#similar .query a[href]")
    page.wait_for_selector("#similar .results .thumb")  # look-alikes load into the page by themselves
    assert page.url.endswith(f"/galaxies/{gid}") and page.locator("#query-id").inner_text() == gid
    bands = page.locator(".bands img")
    assert bands.count() == 3
    page.wait_for_function("Array.from(document.querySelectorAll('.bands img')).every(i => i.complete && "
                           "i.naturalWidth > 0)")
    assert "legacysurvey.org/viewer?ra=" in page.locator("#legacy-viewer").get_attribute("href")
