"""Shared fixtures: one small demo survey, built once per test session through the real CLI, the database and
the browser, and the paths every test directory shares."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from sqlalchemy import MetaData, create_engine, text

from galsearch.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]  # the repository; the tests mirror its packages below tests/
SHARED_DATA = ROOT.parent / "shared" / "data"  # the real labelled cutout collections, beside the repository
SMALL_N = 240
GZ1 = SHARED_DATA / "gz1-sdss"
IAU_N = 96  # gz1-sdss JPEGs in the IAU-named survey, its first 16 mergers among them
POSTGRES_URL = os.environ.get("GALSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def survey_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("survey")
    cli(["demo-survey", "--n", str(SMALL_N), "--seed", "3", "--out", str(out), "--workers", "2"])
    return out


@pytest.fixture(scope="session")
def workdir(survey_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("work")
    cli(["build", "--survey", str(survey_dir), "--workdir", str(w), "--epochs", "2", "--batch-size", "64",
         "--width", "16", "--device", "cpu", "--seed", "1"])
    return w


@pytest.fixture(scope="session")
def catalog(workdir: Path) -> Table:
    """The demo workdir's catalog, read whole."""
    return Table.read(workdir / "store" / "catalog.fits")


def iau_names(ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """``JHHMMSS.ss+DDMMSS.s`` names, as the IAU recommends for survey objects."""
    c = SkyCoord(ra, dec, unit="deg")
    hms = c.ra.to_string(unit=u.hourangle, sep="", precision=2, pad=True)
    dms = c.dec.to_string(sep="", precision=1, alwayssign=True, pad=True)
    return [f"J{a}{d}" for a, d in zip(hms, dms)]


@pytest.fixture(scope="session")
def iau_survey(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    """A workdir of gz1-sdss JPEGs (mergers among them) under IAU names, with the demo survey's encoder."""
    if not (GZ1 / "catalog.csv").exists():
        pytest.skip(f"{GZ1} is not here (the shared data folder beside the repository)")
    catalog = Table.read(GZ1 / "catalog.csv", format="ascii.csv")
    mergers = np.flatnonzero(catalog["merger"] == 1)[:16]
    pick = np.concatenate([mergers, np.flatnonzero(catalog["merger"] == 0)[: IAU_N - len(mergers)]])
    subset = catalog[np.sort(pick)]
    rng = np.random.default_rng(0)
    subset["ra"] = rng.uniform(0, 360, len(subset))
    subset["dec"] = rng.uniform(-20, 60, len(subset))
    subset["sdss_objid"] = subset["id"].astype(str)
    names = iau_names(subset["ra"], subset["dec"])
    subset["id"] = [("SDSS " if i % 4 == 3 else "") + n for i, n in enumerate(names)]  # some with a space
    root = tmp_path_factory.mktemp("gz1")
    subset.write(root / "catalog.csv", format="ascii.csv")
    w = root / "work"
    cli(["build", "--survey", str(root / "catalog.csv"), "--workdir", str(w), "--images-dir", str(GZ1),
         "--model", str(workdir / "model.pt"), "--label-col", "morphology", "--crop", "0.6", "--size", "48",
         "--device", "cpu"])
    return w, subset


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
        with create_engine(POSTGRES_URL).connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'galsearch.db'}"
    if not postgres_available():
        message = f"no PostgreSQL server reachable at {POSTGRES_URL}; set GALSEARCH_TEST_POSTGRES_URL"
        if os.environ.get("GALSEARCH_REQUIRE_POSTGRES"):  # CI: PostgreSQL is tested for real, never skipped
            pytest.fail(message)
        pytest.skip(message)
    engine = create_engine(POSTGRES_URL)
    every_table = MetaData()
    every_table.reflect(engine)  # today's tables and any an older schema (or an interrupted run) left behind
    every_table.drop_all(engine)
    engine.dispose()
    return POSTGRES_URL


def act_as(client, name: str) -> None:
    """Open a page, set the researcher name from its form and echo the CSRF cookie, as the gallery's scripts do."""
    client.get("/")
    client.headers["X-CSRF-Token"] = client.cookies["galsearch_csrf"]
    assert client.post("/who", data={"name": name}).status_code == 200


@pytest.fixture(name="act_as")
def act_as_fixture():
    return act_as


# --- Browser tests: Debian's Chromium driven by Playwright (never a downloaded browser) ---

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make browser-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@contextmanager
def watched_page(browser, **options) -> Iterator:
    """A page whose dialogs (an injected ``alert``) and Content-Security-Policy refusals (an inline script or
    style in our pages) are recorded in ``page.problems``, for ``assert_clean``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    page = context.new_page()
    page.problems = []

    def on_dialog(dialog) -> None:
        page.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda msg: "Content Security Policy" in msg.text and page.problems.append(msg.text))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def page(browser):
    """One watched page per browser test module."""
    with watched_page(browser) as p:
        yield p


@pytest.fixture(autouse=True)
def _no_dialog_or_csp_refusal(request: pytest.FixtureRequest):
    """Every test that drives ``page`` ends with no dialog opened and no CSP refusal."""
    page = request.getfixturevalue("page") if "page" in request.fixturenames else None
    yield
    if page is not None:
        assert_clean(page)


def assert_clean(page) -> None:
    """No dialog opened and no Content-Security-Policy refusal since the last check."""
    problems, page.problems[:] = list(page.problems), []
    assert not problems, problems


@dataclass
class OpenMap:
    """The survey map's whole-survey view as the page first draws it (its bounds padded by 3 % and made square,
    frontend/static/map.js): each galaxy's map point, its id, and the image's box on the screen."""

    xy: np.ndarray
    ids: list[str]
    box: dict
    centre: tuple[float, float]
    half: float

    def to_map(self, px: float, py: float) -> tuple[float, float]:
        (cx, cy), half, box = self.centre, self.half, self.box
        return (cx - half + (px - box["x"]) / box["width"] * 2 * half,
                cy + half - (py - box["y"]) / box["height"] * 2 * half)

    def to_screen(self, row: int) -> tuple[float, float]:
        (cx, cy), half, box = self.centre, self.half, self.box
        return (box["x"] + float(self.xy[row, 0] - (cx - half)) / (2 * half) * box["width"],
                box["y"] + float((cy + half) - self.xy[row, 1]) / (2 * half) * box["height"])


def open_map(server: str, workdir: Path, page) -> OpenMap:
    """Open the survey map page and wait for its first drawing."""
    from playwright.sync_api import expect

    xy = np.load(workdir / "map.npy")
    ids = [str(i) for i in np.load(workdir / "embedding_ids.npy", allow_pickle=True)]
    page.goto(server + "/map")
    image = page.locator("#map-image")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("el => el.naturalWidth") == 640
    (x0, y0), (x1, y1) = xy.min(0).astype(float), xy.max(0).astype(float)
    return OpenMap(xy, ids, image.bounding_box(), ((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0) * 1.06 / 2)


def draw_lasso(page, corners: list[tuple[float, float]]) -> None:
    """Choose the lasso and shift-drag it through ``corners`` (screen points) back to the first, as a person
    draws one; checks the shape shows while drawn."""
    from playwright.sync_api import expect

    page.select_option("#map-shape", "lasso")
    page.keyboard.down("Shift")
    page.mouse.move(*corners[0])
    page.mouse.down()
    for corner in (*corners[1:], corners[0]):
        page.mouse.move(*corner, steps=12)
    expect(page.locator("#map-lasso")).to_be_visible()
    page.mouse.up()
    page.keyboard.up("Shift")


def tag_members(server: str, tag: str) -> tuple[list[str], set[str]]:
    """A tag's members (sorted ids) and the sources they were tagged from, over the JSON API."""
    with urllib.request.urlopen(server + "/tags/" + tag.replace("#", "%23")) as resp:
        tagged = json.load(resp)["galaxies"]
    return sorted(g["id"] for g in tagged), {g["source"] for g in tagged}


def anomalous_survey(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """800 ordinary galaxies in one blob; 20 interesting ones scattered off to one side, 20 artifacts to another."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.5, size=(840, 8))
    x[:800, 2] += 3.0
    x[800:] += rng.normal(scale=1.5, size=(40, 8))
    x[800:820, 0] += 3.0  # interesting
    x[820:, 1] += 3.0  # artifacts: unusual too, but boring
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    interesting, artifact = np.zeros(840, bool), np.zeros(840, bool)
    interesting[800:820], artifact[820:] = True, True
    return x.astype(np.float32), interesting, artifact
