"""A real Chromium on a real cutout collection: SDSS JPEGs from ../shared/data/gz1-sdss, their ids renamed to
IAU names (``J152451.22+020518.4``, with '.' and '+') and given sky positions, as a researcher's catalogue has.

Everything is done by clicking and typing, as a person would: tagging from the gallery and from a galaxy's page,
expanding, accepting and rejecting; hostile strings typed into every field that reaches a page must show as
text and never run (no dialog may open; the Content-Security-Policy stays on).
"""

from __future__ import annotations

import io
import json
import re
import urllib.parse
import urllib.request

import numpy as np
import pytest
from conftest import GZ1, draw_lasso, open_map, serving, tag_members
from PIL import Image
from playwright.sync_api import expect

from app.main import create_app
from galsearch.settings import Settings

pytestmark = pytest.mark.browser

PAYLOAD = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def server(iau_survey, tmp_path_factory: pytest.TempPathFactory) -> str:
    db = tmp_path_factory.mktemp("db") / "iau.db"
    settings = Settings(workdir=iau_survey[0], database_url=f"sqlite:///{db}", page_size=24)
    with serving(create_app(settings)) as url:
        yield url


def api(server: str, path: str) -> dict:
    with urllib.request.urlopen(server + path) as resp:
        return json.load(resp)


def tag_here(page, container: str, tag: str) -> None:
    page.fill(f"{container} .galaxy-tags input[name=tag]", tag)
    page.click(f"{container} .galaxy-tags button[type=submit]")


def test_tag_iau_named_galaxies_from_the_gallery_and_their_page_then_expand_accept_and_reject(
        server: str, page) -> None:
    page.goto(server + "/")
    thumb = page.locator('#gallery .thumb[data-id^="SDSS J"]').first  # an IAU name with a space, '.' and '+'/'-'
    gid = thumb.get_attribute("data-id")
    assert ("+" in gid or "-" in gid) and "." in gid
    thumb.click()
    expect(page.locator("#query-id")).to_have_text(gid)
    tag_here(page, "#similar", "#merger")
    expect(page.locator("#similar .galaxy-tags a.chip", has_text="#merger")).to_have_count(1)

    page.click("#similar .query a:text('details')")  # the galaxy's own page
    expect(page.locator("h2", has_text=f"Galaxy {gid}")).to_be_visible()
    tag_here(page, ".detail", "#odd")
    expect(page.locator(".detail .galaxy-tags a.chip", has_text="#odd")).to_have_count(1)
    expect(page.locator(".detail .galaxy-tags a.chip", has_text="#merger")).to_have_count(1)
    assert api(server, "/galaxies/" + urllib.parse.quote(gid) + "/tags")["tags"] == ["#merger", "#odd"]

    page.click(".detail .galaxy-tags a.chip:text('#merger')")
    page.click("#expand")
    cards = page.locator("#decide .candidate")
    expect(cards.first).to_be_visible()
    accept_id, reject_id = cards.nth(0).get_attribute("data-id"), cards.nth(1).get_attribute("data-id")
    cards.nth(0).locator("button[data-decision=accept]").click()  # clicked, not the key
    expect(page.locator(f'.candidate[data-id="{accept_id}"]')).to_have_count(0)
    cards.nth(0).locator("button[data-decision=reject]").click()  # was covered by the score badge
    expect(page.locator(f'.candidate[data-id="{reject_id}"]')).to_have_count(0)
    # The counts and the member grid follow the decisions without a reload.
    expect(page.locator("#tag-counts")).to_contain_text("2 members")
    expect(page.locator("#tag-counts")).to_contain_text("1 rejected")
    expect(page.locator("#members .member")).to_have_count(2)
    expect(page.locator(f'#members .member[data-id="{accept_id}"]')).to_have_count(1)
    stored = {g["id"]: g["status"] for g in api(server, "/tags/%23merger")["galaxies"]}
    assert stored == {gid: "positive", accept_id: "accepted", reject_id: "rejected"}


def test_hostile_strings_typed_anywhere_show_as_text_and_never_run(server: str, page) -> None:
    def shown_as_text(fragment: str = PAYLOAD) -> None:
        expect(page.locator("#errors .error")).to_contain_text(fragment)
        assert page.locator("img[src=x]").count() == 0  # it never became markup
        page.click("#errors .dismiss")
        expect(page.locator("#errors .error")).to_have_count(0)

    page.goto(server + "/")
    page.locator("#gallery .thumb").first.click()
    expect(page.locator("#similar .results .thumb").first).to_be_visible()
    tag_here(page, "#similar", PAYLOAD)  # a tag, from the gallery
    shown_as_text()
    expect(page.locator("#similar .galaxy-tags input[name=tag]")).to_be_visible()  # the form is still there

    page.fill("#similar form.refine input[name=where]", f"morphology=={PAYLOAD}")  # a where= that matches nothing
    page.click("#similar form.refine button[type=submit]")
    expect(page.locator("#similar .results .thumb")).to_have_count(0)
    expect(page.locator("#similar .query")).to_contain_text(PAYLOAD)
    page.fill("#similar form.refine input[name=where]", PAYLOAD)  # a malformed where=
    page.click("#similar form.refine button[type=submit]")
    shown_as_text()

    k_box = page.locator("#similar form.refine input[name=k]")
    k_box.evaluate("(el) => { el.type = 'text'; el.removeAttribute('min'); el.removeAttribute('max'); }")
    k_box.fill(PAYLOAD)  # an invalid k, past the browser's own checks
    page.click("#similar form.refine button[type=submit]")
    shown_as_text("valid integer")

    for ra, dec in ((PAYLOAD, "+02:12:21"), ("150.1", PAYLOAD)):  # RA/Dec text
        page.fill("form.lookup input[name=ra]", ra)
        page.fill("form.lookup input[name=dec]", dec)
        page.click("form.lookup button[type=submit]")
        shown_as_text()

    who = page.locator("header form.who input[name=name]")
    who.fill(PAYLOAD)
    page.click("header form.who button")  # the browser's pattern check refuses it: nothing is sent
    assert page.locator("#errors .error").count() == 0
    who.evaluate("(el) => el.removeAttribute('pattern')")
    page.click("header form.who button")  # the server refuses it too, and says so
    expect(page.locator("#errors .error")).to_contain_text("name")
    assert page.locator("img[src=x]").count() == 0

    gid = page.locator("#gallery .thumb").first.get_attribute("data-id")
    page.goto(server + "/galaxies/" + urllib.parse.quote(gid))
    tag_here(page, ".detail", PAYLOAD)  # a tag, from a galaxy's page
    shown_as_text()


def test_search_iau_names_and_filter_by_class_in_the_gallery(server: str, iau_survey, page) -> None:
    _, subset = iau_survey
    spaced = next(str(i) for i in subset["id"] if " " in str(i))  # "SDSS J…+…": a space, a '.' and a '+'
    page.goto(server + "/")
    page.fill("form.view input[name=q]", spaced.lower())  # any case
    page.click("form.view button[type=submit]")
    expect(page.locator("#gallery .thumb")).to_have_count(1)
    assert page.locator("#gallery .thumb").get_attribute("data-id") == spaced
    page.locator("#gallery .thumb").click()  # and its look-alikes open as from the full gallery
    expect(page.locator("#query-id")).to_have_text(spaced)

    page.goto(server + "/")
    page.select_option("form.view select[name=column]", "morphology")
    page.select_option("form.view select[name=op]", "==")
    page.fill("form.view input[name=value]", "merger")
    page.select_option("form.view select[name=show]", "morphology")
    page.click("form.view button[type=submit]")
    mergers = sorted(str(i) for i in subset["id"][subset["morphology"] == "merger"])
    expect(page.locator("#gallery .thumb")).to_have_count(len(mergers))
    assert sorted(page.locator("#gallery .thumb").evaluate_all("els => els.map(e => e.dataset.id)")) == mergers
    assert set(page.locator("#gallery .thumb .caption").all_inner_texts()) == {"merger"}
    page.fill("form.view input[name=value]", PAYLOAD)  # a hostile value: nothing matches, nothing runs
    page.select_option("form.view select[name=column]", "morphology")
    page.select_option("form.view select[name=op]", "==")
    page.click("form.view button[type=submit]")
    expect(page.locator(".conditions code").last).to_have_text(f"morphology=={PAYLOAD}")
    expect(page.locator("#gallery .thumb")).to_have_count(0)
    assert page.locator("img[src=x]").count() == 0
    page.fill("form.view input[name=q]", PAYLOAD)  # a hostile id search: kept in the box as text, nothing runs
    page.click("form.view button[type=submit]")
    expect(page.locator("form.view input[name=q]")).to_have_value(PAYLOAD)
    expect(page.locator("#gallery .thumb")).to_have_count(0)
    assert page.locator("img[src=x]").count() == 0


@pytest.mark.parametrize("path,status,text", [
    ("/galaxies/J000000.00+000000.0", 404, "unknown galaxy id 'J000000.00+000000.0'"),
    ("/galaxies/" + urllib.parse.quote(PAYLOAD), 404, f"unknown galaxy id {PAYLOAD!r}"),
    ("/galaxies/" + urllib.parse.quote("a\tb"), 422, "'a\\tb'"),
    ("/tags/%23nothing/export?format=csv", 404, "no galaxy carries #nothing"),
    ("/galaxies/J000000.00+000000.0/similar?k=5", 404, "unknown galaxy id"),
    ("/nowhere", 404, "Not Found"),
])
def test_errors_in_the_browser_are_pages_with_a_way_back(server: str, page, path: str, status: int,
                                                          text: str) -> None:
    resp = page.goto(server + path)
    assert resp.status == status and resp.headers["content-type"].startswith("text/html")
    message = page.locator("#error-message")
    expect(message).to_contain_text(text)
    assert not page.locator("body").inner_text().lstrip().startswith("{")  # no raw JSON
    page.click("a:text('the gallery')")
    expect(page.locator("#gallery .thumb").first).to_be_visible()


def test_thumbnails_are_the_survey_own_pixels(server: str, iau_survey, page) -> None:
    _, subset = iau_survey
    row = subset[5]
    with urllib.request.urlopen(server + "/galaxies/" + urllib.parse.quote(row["id"]) + "/image.png") as resp:
        assert resp.headers["content-type"] == "image/jpeg"
        shown = np.asarray(Image.open(io.BytesIO(resp.read())).convert("RGB"), float)
    original = Image.open(GZ1 / row["file"]).convert("RGB")
    w, h = original.size
    side = round(w * 0.6)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    expected = np.asarray(original.crop(box).resize(shown.shape[1::-1], Image.Resampling.LANCZOS), float)
    assert shown.shape[0] >= 200  # a useful resolution, not the 48 px the encoder reads
    assert np.abs(shown - expected).mean() < 3  # grey levels out of 255: the original, resized
    page.goto(server + "/")
    img = page.locator("#gallery .thumb img").first
    expect(img).to_have_js_property("complete", True)
    assert img.evaluate("(el) => el.naturalWidth") >= 200


def test_map_click_why_similar_and_a_lasso_tag_on_iau_names(server: str, iau_survey, page) -> None:
    from matplotlib.path import Path as MplPath
    from scipy.spatial import cKDTree

    shown = open_map(server, iau_survey[0], page)
    pick = int(np.argmax(cKDTree(shown.xy).query(shown.xy, k=2)[0][:, 1]))  # the most isolated point
    gid = shown.ids[pick]
    page.mouse.move(*shown.to_screen(pick))
    expect(page.locator("#map-tip span")).to_have_text(gid)
    page.mouse.click(*shown.to_screen(pick))
    expect(page.locator("#query-id")).to_have_text(gid)
    image = page.locator("#map-image")
    expect(image).to_have_attribute("src", re.compile(re.escape(f"highlight={urllib.parse.quote_plus(gid)}")))
    first = page.locator("#similar .results .result").first
    other = first.locator(".thumb").get_attribute("data-id")
    first.locator("a.why").click()
    expect(page.locator("#why-query")).to_have_text(gid)
    expect(page.locator("#why-other")).to_have_text(other)
    shares = [float(t.rstrip(" %")) for t in page.locator(".why-shares td.share").all_inner_texts()]
    assert abs(sum(shares) - 100) < 0.6
    expect(page.locator(".why-bands img")).to_have_count(2 * 4)  # composite and B, G, R of each JPEG

    shown = open_map(server, iau_survey[0], page)
    box = shown.box
    corners = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
               for fx, fy in ((0.1, 0.1), (0.9, 0.1), (0.5, 0.9))]
    draw_lasso(page, corners)
    expect(page.locator("#region")).to_contain_text("galaxies in the lasso")
    sent = np.array(page.locator("#region input[name=lasso]").get_attribute("value").split(","), float)
    drawn = sorted(shown.ids[i] for i in np.flatnonzero(MplPath(sent.reshape(-1, 2)).contains_points(shown.xy)))
    assert drawn
    expect(page.locator("#region-count")).to_have_text(str(len(drawn)))
    page.fill("#region form.region-tag input[name=tag]", "#lassoed")
    page.click("#region form.region-tag button[type=submit]")
    expect(page.locator("#tagged-count")).to_have_text(str(len(drawn)))
    assert tag_members(server, "#lassoed") == (drawn, {"map"})
    assert any("+" in i or "-" in i for i in drawn)  # IAU names, their '+' and spaces intact
