"""A real Chromium (Debian's, driven by Playwright) clicks through the demo gallery: look-alikes, tags, ratings.

The pages' Content-Security-Policy stays on (no ``bypass_csp``), so waits use Playwright's locators, never a
string evaluated in the page; every test ends with no dialog opened and no CSP refusal in the console.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import assert_clean, draw_lasso, open_map, serving, tag_members, watched_page
from playwright.sync_api import expect

from app.main import create_app
from galsearch.settings import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    db = tmp_path_factory.mktemp("db") / "browser.db"
    with serving(create_app(Settings(workdir=workdir, database_url=f"sqlite:///{db}", page_size=24))) as url:
        yield url


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
    expect(page.locator("#query-id")).to_have_text(nid)
    img = page.locator("#similar .query img")
    assert page.evaluate("(el) => el.complete && el.naturalWidth > 0", img.element_handle())


def test_infinite_scroll_loads_more(server: str, page) -> None:
    page.goto(server + "/")
    page.wait_for_load_state("networkidle")
    shown = page.locator("#gallery .thumb").count()
    assert shown >= 24  # the first page, plus any pages needed to fill the window
    page.locator("#gallery .more").scroll_into_view_if_needed()
    page.locator("#gallery .thumb").nth(shown + 23).wait_for()


def test_tag_expand_decide_expand_again_and_export(server: str, page) -> None:
    import csv
    import io

    page.goto(server + "/")
    first = page.locator("#gallery .thumb").nth(0)
    gid = first.get_attribute("data-id")
    first.click()
    expect(page.locator("#query-id")).to_have_text(gid)
    page.fill("#similar .galaxy-tags input[name=tag]", "#diffuse")
    url_before = page.url
    page.click("#similar .galaxy-tags button[type=submit]")
    expect(page.locator("#similar .galaxy-tags a.chip")).to_have_text("#diffuse")
    assert page.url == url_before

    page.goto(server + "/tags/%23diffuse")
    page.click("#expand")
    page.wait_for_selector("#decide .candidate")
    cards = page.locator("#decide .candidate")
    first_round = [cards.nth(i).get_attribute("data-id") for i in range(cards.count())]
    assert gid not in first_round and len(first_round) == 24
    accepted, rejected = first_round[:2], first_round[2]
    cards.nth(0).locator("button[data-decision=accept]").click()  # by click
    expect(page.locator(f'.candidate[data-id="{accepted[0]}"]')).to_have_count(0)
    page.locator(f'.candidate[data-id="{accepted[1]}"]').focus()  # by keyboard
    page.keyboard.press("a")
    expect(page.locator(f'.candidate[data-id="{accepted[1]}"]')).to_have_count(0)
    page.locator(f'.candidate[data-id="{rejected}"]').focus()
    page.keyboard.press("r")
    expect(page.locator(f'.candidate[data-id="{rejected}"]')).to_have_count(0)
    expect(page.locator("#tag-counts")).to_contain_text("3 members")

    page.click("#expand")
    expect(page.locator("#decide .candidate")).to_have_count(24)
    expect(page.locator(f'.candidate[data-id="{accepted[0]}"]')).to_have_count(0)
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
    before = [c.get_attribute("data-id") for c in page.locator("#top .rate-card").all()]
    rated = []
    for i, key in enumerate("50415"):
        card = page.locator("#to-rate .rate-card").first
        rated.append(card.get_attribute("data-id"))
        card.focus()
        page.keyboard.press(key)
        expect(page.locator("#anomaly-status")).to_have_attribute("data-ratings", str(i + 1))
    assert len(set(rated)) == 5
    assert not set(rated) & {c.get_attribute("data-id") for c in page.locator("#to-rate .rate-card").all()}
    page.click("#retrain")
    expect(page.locator("#anomaly-status")).to_have_attribute("data-method", "classifier")
    expect(page.locator("#anomaly-status")).to_have_attribute("data-fitted-on", "5")
    expect(page.locator("#anomaly-status")).to_contain_text("fitted on 5 ratings")
    expect(page.locator("#anomaly-status")).to_contain_text("last retrain")
    after = [c.get_attribute("data-id") for c in page.locator("#top .rate-card").all()]
    assert after != before  # the ranking changed
    marked = {f.get_attribute("data-id"): f.locator("figcaption").inner_text()
              for f in page.locator("#top figure.rated").all()}
    assert marked[rated[0]] == "rated 5" and marked[rated[4]] == "rated 5"
    # the top tells rated from predicted, and each prediction's uncertainty
    top = [c.get_attribute("data-id") for c in page.locator("#top .rate-card").all()]
    assert set(top[:2]) == {rated[0], rated[4]} and top[2] == rated[2]  # rated 4-5 lead, by rating
    guess = page.locator("#top figcaption.predicted").first.inner_text()
    assert guess.startswith("predicted ") and " ± " in guess
    counts = re.search(r"(\d+) rated, (\d+) predicted", page.locator("#top-hint").inner_text())
    assert int(counts[1]) == page.locator("#top figcaption.rated").count() >= 3
    assert int(counts[1]) + int(counts[2]) == 100


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
    expect(page.locator("#query-id")).to_have_text(gid)
    page.fill("#similar .galaxy-tags input[name=tag]", "#barred")
    page.click("#similar .galaxy-tags button[type=submit]")
    expect(page.locator("#similar .galaxy-tags a.chip", has_text="#barred")).to_have_count(1)
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
    for img in bands.all():
        expect(img).to_have_js_property("complete", True)
        assert img.evaluate("(el) => el.naturalWidth") > 0
    assert "legacysurvey.org/viewer?ra=" in page.locator("#legacy-viewer").get_attribute("href")


@pytest.mark.parametrize("width", [1280, 760])  # look-alikes beside the gallery, and above it on a narrow screen
def test_a_galaxy_clicked_far_down_the_gallery_shows_its_look_alikes_in_view(server: str, browser,
                                                                             width: int) -> None:
    with watched_page(browser) as page:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(server + "/")
        for _ in range(40):  # scroll down until every page of the gallery has loaded
            page.mouse.wheel(0, 4000)
            page.wait_for_timeout(250)
            if not page.locator("#gallery .more").count():
                break
        page.mouse.wheel(0, 100_000)
        page.wait_for_timeout(300)
        depth = page.evaluate("window.scrollY")
        assert depth > 2000
        visible = [t for t in page.locator("#gallery .thumb").all() if t.bounding_box()["y"] > 0]
        visible[0].click()
        gid = visible[0].get_attribute("data-id")
        expect(page.locator("#query-id")).to_have_text(gid)
        first = page.locator("#similar .results .thumb").first
        expect(first).to_be_visible()
        page.wait_for_timeout(300)  # any scrolling settles
        for element in (page.locator("#similar .query img"), first):
            box = element.bounding_box()
            assert -1 <= box["y"] and box["y"] + box["height"] <= 901, (width, box)  # in the viewport
        assert_clean(page)


def _shown(page) -> tuple[list[str], list[str]]:
    """The first page of the gallery's thumbnails (more may be scrolling in): their ids and captions, in order."""
    page.locator("#gallery .thumb").first.wait_for()
    shown = page.eval_on_selector_all("#gallery .thumb", """els => els.slice(0, 24).map(e => [e.dataset.id,
        (e.querySelector('.caption') || {textContent: ''}).textContent.trim()])""")
    return [i for i, _ in shown], [c for _, c in shown]


def test_filter_builder_sort_and_id_search_round_trip_through_the_url(server: str, page) -> None:
    import json
    import urllib.request

    def row(gid: str) -> dict:
        with urllib.request.urlopen(f"{server}/galaxies/{gid}") as resp:
            return json.load(resp)

    page.goto(server + "/")
    page.select_option("form.view select[name=column]", "mag_r")
    page.select_option("form.view select[name=op]", "<=")
    page.fill("form.view input[name=value]", "19.5")
    page.select_option("form.view select[name=sort]", "mag_r")
    page.select_option("form.view select[name=order]", "desc")
    page.select_option("form.view select[name=show]", "morphology")
    page.click("form.view button[type=submit]")
    expect(page.locator(".conditions code")).to_have_text("mag_r<=19.5")
    assert "where=mag_r%3C%3D19.5" in page.url and "sort=mag_r" in page.url and "show=morphology" in page.url
    ids, captions = _shown(page)
    rows = [row(g) for g in ids]
    assert ids and all(r["mag_r"] <= 19.5 for r in rows)  # only galaxies meeting the condition
    assert [r["mag_r"] for r in rows] == sorted((r["mag_r"] for r in rows), reverse=True)
    assert captions == [r["morphology"] for r in rows]  # each thumbnail shows the chosen column
    with urllib.request.urlopen(f"{server}/api/galaxies?where=mag_r<%3D19.5") as resp:
        total = json.load(resp)["total"]
    expect(page.locator(".gallery-wrap .count")).to_have_text(f"{total} of 240 galaxies")
    assert 0 < total < 240

    shared = page.url  # the view opened again from its URL, as a colleague would
    page.goto(shared)
    assert _shown(page) == (ids, captions)
    page.fill("form.view input[name=q]", "10001")
    page.click("form.view button[type=submit]")
    found, _ = _shown(page)
    assert found and all("10001" in g for g in found) and all(row(g)["mag_r"] <= 19.5 for g in found)
    page.click(".conditions a[aria-label^=remove]")
    expect(page.locator(".conditions")).to_have_count(0)
    found, _ = _shown(page)
    assert set(found) >= {g for g in ids if "10001" in g} and all("10001" in g for g in found)

    page.goto(server + "/?where=mag_r%3C%3Dbright")  # a malformed condition in a shared link: a message, no crash
    expect(page.locator(".error")).to_contain_text("is numeric")


def test_why_similar_from_a_look_alike(server: str, page) -> None:
    page.goto(server + "/")
    first = page.locator("#gallery .thumb").nth(2)
    gid = first.get_attribute("data-id")
    first.click()
    result = page.locator("#similar .results .result").first
    other = result.locator(".thumb").get_attribute("data-id")
    result.locator("a.why").click()
    expect(page.locator("#why-query")).to_have_text(gid)
    expect(page.locator("#why-other")).to_have_text(other)
    shares = [float(t.rstrip(" %")) for t in page.locator(".why-shares td.share").all_inner_texts()]
    assert len(shares) == 10 and abs(sum(shares) - 100) < 0.6  # the learned part and nine statistics
    assert page.locator(".why-shares tr[data-part=asymmetry] td").count() == 4  # share, bar, both values
    images = page.locator(".why-bands img")
    assert images.count() == 2 * 4  # each galaxy's composite and its three bands, side by side
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        expect(images.nth(i)).to_have_js_property("complete", True)
        assert images.nth(i).evaluate("el => el.naturalWidth") > 0
    page.click("#why-other")  # on to the look-alike's own page
    expect(page.locator("h2").first).to_have_text(f"Galaxy {other}")


def test_select_several_then_more_like_these_and_not_like_those(server: str, page) -> None:
    import json
    import urllib.request

    page.goto(server + "/")
    page.check("#select-mode")
    thumbs = page.locator("#gallery .thumb")
    picked = [thumbs.nth(i).get_attribute("data-id") for i in (0, 3)]
    for i in (0, 3, 5, 5):  # the third is picked and unpicked again
        thumbs.nth(i).click()
    expect(page.locator("#picked-count")).to_have_text("2")
    expect(page.locator("#similar .hint")).to_be_visible()  # picking opened no look-alikes
    page.click("#more-like")
    expect(page.locator("#similar .like-these")).to_be_visible()
    assert page.locator("#similar .picked-set img").evaluate_all("els => els.map(e => e.dataset.id)") == picked
    results = page.locator("#similar .results .thumb").evaluate_all("els => els.map(e => e.dataset.id)")
    query = "&".join(f"id={i}" for i in picked)
    with urllib.request.urlopen(f"{server}/similar?{query}&k=20") as resp:
        assert results == [r["id"] for r in json.load(resp)["results"]]
    assert len(results) == 20 and not set(results) & set(picked)

    page.locator("#similar .results .result").first.locator("input[name=not]").check()
    page.click("#similar form.refine-many button[type=submit]")
    expect(page.locator("#similar .not-set img")).to_have_count(1)
    again = page.locator("#similar .results .thumb").evaluate_all("els => els.map(e => e.dataset.id)")
    assert results[0] not in again and len(again) == 20
    page.uncheck("#select-mode")
    expect(page.locator("#gallery .thumb.picked")).to_have_count(0)
    thumbs.nth(1).click()  # with selection off a click opens look-alikes again
    expect(page.locator("#query-id")).to_have_text(thumbs.nth(1).get_attribute("data-id"))


def test_map_click_opens_that_galaxy_and_hover_shows_it(server: str, workdir: Path, page) -> None:
    import numpy as np
    from scipy.spatial import cKDTree

    shown = open_map(server, workdir, page)
    gap = cKDTree(shown.xy).query(shown.xy, k=2)[0][:, 1]
    pick = int(np.argmax(gap))  # the most isolated point: a click on it can mean no other galaxy
    ids, image, half = shown.ids, page.locator("#map-image"), shown.half
    px, py = shown.to_screen(pick)
    page.mouse.move(px, py)
    expect(page.locator("#map-tip span")).to_have_text(ids[pick])  # hovering shows the galaxy
    page.mouse.click(px, py)
    expect(page.locator("#query-id")).to_have_text(ids[pick])
    expect(page.locator("#similar .results .thumb")).to_have_count(20)
    expect(image).to_have_attribute("src", re.compile(f"highlight={ids[pick]}"))  # the query drawn on the map
    page.select_option("#map-colour", "col:morphology")
    expect(image).to_have_attribute("src", re.compile("colour=col%3Amorphology"))
    expect(image).to_have_js_property("complete", True)
    before = image.get_attribute("src")
    page.mouse.wheel(0, -300)  # zoom in about the pointer: a narrower view is drawn
    expect(image).not_to_have_attribute("src", before)
    view = dict(re.findall(r"(x0|x1)=([-0-9.e]+)", image.get_attribute("src")))
    assert float(view["x1"]) - float(view["x0"]) < 2 * half * 0.9


def test_map_box_selection_lists_and_tags_its_galaxies(server: str, workdir: Path, page) -> None:
    import numpy as np

    shown = open_map(server, workdir, page)
    xy, ids, box, to_map = shown.xy, shown.ids, shown.box, shown.to_map
    start = (box["x"] + 0.2 * box["width"], box["y"] + 0.2 * box["height"])
    end = (box["x"] + 0.7 * box["width"], box["y"] + 0.7 * box["height"])
    (ax, ay), (bx, by) = to_map(*start), to_map(*end)
    inside = sorted(ids[i] for i in np.flatnonzero((xy[:, 0] >= ax) & (xy[:, 0] <= bx) & (xy[:, 1] >= by)
                                                    & (xy[:, 1] <= ay)))
    assert inside, "the box should hold galaxies"
    page.keyboard.down("Shift")
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=5)
    expect(page.locator("#map-box")).to_be_visible()
    page.mouse.up()
    page.keyboard.up("Shift")
    expect(page.locator("#region-count")).to_have_text(str(len(inside)))
    hostile = "<img src=x onerror=alert(1)>"
    page.fill("#region form.region-tag input[name=tag]", hostile)  # refused, shown as text, never run
    page.click("#region form.region-tag button[type=submit]")
    expect(page.locator("#errors .error")).to_contain_text(hostile)
    assert page.locator("img[src=x]").count() == 0
    page.fill("#region form.region-tag input[name=tag]", "#from-map")
    page.click("#region form.region-tag button[type=submit]")
    expect(page.locator("#tagged-count")).to_have_text(str(len(inside)))
    assert tag_members(server, "#from-map") == (inside, {"map"})


def test_map_lasso_selection_lists_and_tags_the_galaxies_inside_the_drawn_shape(server: str, workdir: Path,
                                                                               page) -> None:
    import numpy as np
    from matplotlib.path import Path as MplPath

    shown = open_map(server, workdir, page)
    xy, ids, box, to_map = shown.xy, shown.ids, shown.box, shown.to_map
    corners = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
               for fx, fy in ((0.15, 0.15), (0.85, 0.2), (0.2, 0.85))]
    triangle = MplPath([to_map(*c) for c in corners])
    inside = sorted(ids[i] for i in np.flatnonzero(triangle.contains_points(xy)))
    (bx0, by0), (bx1, by1) = np.min(triangle.vertices, 0), np.max(triangle.vertices, 0)
    in_box = ((xy[:, 0] >= bx0) & (xy[:, 0] <= bx1) & (xy[:, 1] >= by0) & (xy[:, 1] <= by1)).sum()
    assert 0 < len(inside) < in_box, "the triangle should hold galaxies, fewer than its bounding box"
    draw_lasso(page, corners)
    expect(page.locator("#region")).to_contain_text("galaxies in the lasso")
    expect(page.locator("#map-lasso")).to_be_hidden()
    # The shape the browser sent, its points along the pointer's path, holds the triangle's galaxies.
    sent = np.array(page.locator("#region input[name=lasso]").get_attribute("value").split(","), float)
    drawn = sorted(ids[i] for i in np.flatnonzero(MplPath(sent.reshape(-1, 2)).contains_points(xy)))
    expect(page.locator("#region-count")).to_have_text(str(len(drawn)))
    assert len(set(drawn) ^ set(inside)) <= 2  # only galaxies on the edge, a pixel's rounding apart
    page.fill("#region form.region-tag input[name=tag]", "#lassoed")
    page.click("#region form.region-tag button[type=submit]")
    expect(page.locator("#tagged-count")).to_have_text(str(len(drawn)))
    assert tag_members(server, "#lassoed") == (drawn, {"map"})
