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
