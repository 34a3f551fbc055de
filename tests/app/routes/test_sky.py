"""Sky features: find a galaxy by position, export look-alikes as tables, drop repeated detections."""

from __future__ import annotations

import io
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord, angular_separation
from astropy.table import Table
from fastapi.testclient import TestClient

from app.main import create_app
from app.sky import SkyIndex, parse_position
from galsearch.settings import Settings
from index_builder.sky_cells import SkyCells


@pytest.fixture(scope="module")
def client(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    db = tmp_path_factory.mktemp("sky") / "galsearch.db"
    with TestClient(create_app(Settings(workdir=workdir, database_url=f"sqlite:///{db}"))) as c:
        yield c


def test_positions_parse_as_degrees_or_sexagesimal() -> None:
    assert parse_position("150.1167", "2.2058").ra.deg == pytest.approx(150.1167)
    sexagesimal = parse_position("10:00:28.0", "+02:12:21")
    assert sexagesimal.ra.deg == pytest.approx(150.11667, abs=1e-4) and sexagesimal.dec.deg == pytest.approx(2.2058,
                                                                                                           abs=1e-4)
    assert parse_position("10h00m28s", "2d12m21s").separation(sexagesimal).arcsec < 0.01
    with pytest.raises(ValueError, match="degrees .* or sexagesimal"):
        parse_position("north", "2")


@pytest.mark.parametrize("ra,dec", [("ORIGIN", "0"), ("nan", "0"), ("10", "inf"), ("10", "95"), ("1e400", "0")])
def test_malformed_positions_are_value_errors(ra: str, dec: str) -> None:  # "ORIGIN" ends in N: a latitude to astropy
    with pytest.raises(ValueError):
        parse_position(ra, dec)


def test_lookup_finds_the_nearest_galaxy(client: TestClient, catalog: Table) -> None:
    g = catalog[7]
    sky = SkyCoord(g["ra"], g["dec"], unit="deg").directional_offset_by(0 * u.deg, 1 * u.arcsec)
    r = client.get("/lookup", params={"ra": f"{sky.ra.deg:.7f}", "dec": f"{sky.dec.deg:.7f}", "radius": 3})
    assert r.status_code == 200 and r.json()["id"] == g["id"]
    assert r.json()["separation_arcsec"] == pytest.approx(1.0, abs=0.01)
    hms = sky.to_string("hmsdms", sep=":", precision=3).split()
    assert client.get("/lookup", params={"ra": hms[0], "dec": hms[1], "radius": 3}).json()["id"] == g["id"]
    page = client.get("/lookup", params={"ra": hms[0], "dec": hms[1]}, headers={"HX-Request": "true"})
    assert page.status_code == 200 and f'id="query-id">{g["id"]}<' in page.text and 'class="thumb"' in page.text


def test_lookup_misses_and_bad_positions_are_4xx_with_a_message(client: TestClient, catalog: Table) -> None:
    g = catalog[0]
    far = client.get("/lookup", params={"ra": (g["ra"] + 90) % 360, "dec": 0, "radius": 1})
    assert far.status_code == 404 and "no galaxy within 1 arcsec" in far.json()["detail"]
    assert client.get("/lookup", params={"ra": "ten", "dec": "2"}).status_code == 422
    assert client.get("/lookup", params={"ra": "1", "dec": "2", "radius": 99999}).status_code == 422
    html = client.get("/lookup", params={"ra": "<b>x</b>", "dec": "2"}, headers={"HX-Request": "true"})
    assert html.status_code == 422 and 'class="error"' in html.text and "<b>" not in html.text


def test_gallery_has_a_position_search_box(client: TestClient) -> None:
    page = client.get("/").text
    assert 'hx-get="/lookup"' in page and 'name="ra"' in page and "/static/app/app.js" in page


@pytest.mark.parametrize("fmt", ["csv", "fits", "votable"])
def test_look_alikes_export_as_tables(client: TestClient, catalog: Table, fmt: str) -> None:
    gid = catalog[3]["id"]
    expected = [r["id"] for r in client.get(f"/galaxies/{gid}/similar", params={"k": 12}).json()["results"]]
    r = client.get(f"/galaxies/{gid}/similar", params={"k": 12, "format": fmt})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    table = Table.read(io.BytesIO(r.content) if fmt != "csv" else r.text,
                       format={"csv": "ascii.csv", "fits": "fits", "votable": "votable"}[fmt])
    assert list(table["id"].astype(str)) == expected and list(table["rank"]) == list(range(1, 13))
    assert (np.diff(table["similarity"]) <= 1e-6).all() and {"ra", "dec", "distance"} <= set(table.colnames)


def test_distinct_look_alikes_are_apart_on_the_sky(client: TestClient, catalog: Table) -> None:
    gid = catalog[5]["id"]

    def closest_pair_arcsec(results: list[dict]) -> float:
        pos = [(catalog[5]["ra"], catalog[5]["dec"])] + [(r["ra"], r["dec"]) for r in results]
        return min(angular_separation(*(np.radians(v) for v in (*pos[i], *pos[j]))) * 180 / np.pi * 3600
                   for i in range(len(pos)) for j in range(i + 1, len(pos)))

    plain = client.get(f"/galaxies/{gid}/similar", params={"k": 10}).json()["results"]
    # Wider than the closest pair among the plain look-alikes (whatever the trained embedding put there): the option
    # must drop or replace some of them.
    radius = min(1.5 * closest_pair_arcsec(plain), 3600.0)  # the API takes up to a degree
    assert closest_pair_arcsec(plain) < radius  # without the option, some look-alikes sit that close
    results = client.get(f"/galaxies/{gid}/similar", params={"k": 10, "distinct_arcsec": radius}).json()["results"]
    assert 0 < len(results) <= 10 and closest_pair_arcsec(results) >= radius
    assert [r["id"] for r in results] != [r["id"] for r in plain]


def _sky(ra: list[float], dec: list[float], folder: Path) -> SkyIndex:
    ra, dec = np.array(ra), np.array(dec)
    folder.mkdir()
    return SkyIndex(ra, dec, SkyCells.open(folder, ra, dec))


def test_sky_index_keeps_rows_without_coordinates_and_drops_repeats(tmp_path: Path) -> None:
    sky = _sky([150.0, 150.0002, 151.0, np.nan], [2.0, 2.0, 2.0, np.nan], tmp_path / "a")
    assert sky.distinct(0, [1, 2, 3], 2.0) == [2, 3]  # row 1 is 0.7" from the query
    assert sky.nearest(parse_position("152", "2"), 5) is None and sky.count == 3
    assert sky.nearest(parse_position("150.0001", "2"), 5)[0] in (0, 1)
    empty = _sky([np.nan], [np.nan], tmp_path / "b")
    assert empty.count == 0 and empty.nearest(parse_position("1", "1"), 5) is None


def test_detail_page_has_coordinates_columns_bands_and_a_sky_viewer_link(client: TestClient, catalog: Table) -> None:
    g = catalog[3]
    page = client.get(f"/galaxies/{g['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert f"ra={g['ra']:.6f}&amp;dec={g['dec']:.6f}" in page.text and "legacysurvey.org/viewer" in page.text
    assert SkyCoord(g["ra"], g["dec"], unit="deg").to_string("hmsdms", sep=":", precision=2) in page.text
    assert "<th>morphology</th>" in page.text and f'hx-get="/galaxies/{g["id"]}/similar' in page.text
    for band in ("g", "r", "z"):
        assert f"/bands/{band}.png" in page.text
        png = client.get(f"/galaxies/{g['id']}/bands/{band}.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    missing = client.get(f"/galaxies/{g['id']}/bands/u.png")
    assert missing.status_code == 404 and "g, r, z" in missing.json()["detail"]
    assert client.get(f"/galaxies/{g['id']}").json()["id"] == str(g["id"])  # API clients still get JSON
