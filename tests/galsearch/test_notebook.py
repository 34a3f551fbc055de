"""The notebook API: ``Survey`` (a workdir in this process) and ``Client`` (a running server) on one workdir and
one database must return the same tables, on the demo survey and on real JPEGs under IAU names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS
from conftest import serving

from app.main import create_app
from galsearch import Client, Survey
from galsearch.notebook import GalsearchError
from galsearch.settings import Settings
from survey.store import Store


@pytest.fixture(params=["demo", "iau"])
def opened(request: pytest.FixtureRequest, workdir: Path, tmp_path: Path):
    """(store, Survey, Client) over a copy of the demo workdir or of the IAU-named gz1-sdss one."""
    source = workdir if request.param == "demo" else request.getfixturevalue("iau_survey")[0]
    copy = tmp_path / "work"
    shutil.copytree(source, copy, symlinks=True, ignore=shutil.ignore_patterns("*.db", "thumbs"))
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    survey = Survey(copy, who="ada", database_url=db)
    with serving(create_app(Settings(workdir=copy, database_url=db, auth_token="s3cret"))) as url:
        with Client(url, token="s3cret", who="ada") as client:
            yield Store(copy / "store"), survey, client
    survey.close()


def _same(a, b, columns: list[str]) -> None:
    assert len(a) == len(b) > 0
    for name in columns:
        if a[name].dtype.kind == "f":
            assert np.allclose(a[name], b[name], equal_nan=True), name
        else:
            assert list(a[name]) == list(b[name]), name


def test_survey_and_client_agree_on_look_alikes_tags_and_anomalies(opened) -> None:
    store, survey, client = opened
    ids = [str(i) for i in store.ids]
    query = ids[5]
    near = survey.similar(query, k=10)
    _same(near, client.similar(query, k=10), ["id", "ra", "dec", "similarity"])
    assert near["ra"].unit == "deg" and "asymmetry" in near.colnames and query not in list(near["id"])
    assert list(near["rank"]) == list(range(1, 11))

    middle = f"ra>={np.median(store.catalog['ra']):.4f}"  # the eastern half of the survey
    east = survey.similar(query, k=10, where=middle)
    assert (east["ra"] >= np.median(store.catalog["ra"]) - 1e-4).all() and len(east) == 10
    _same(east, client.similar(query, k=10, where=[middle]), ["id", "similarity"])
    with pytest.raises(GalsearchError, match="unknown catalog column"):
        survey.similar(query, where="nope>1")

    survey.tag("#notebook").add(query, ids[6])
    members = client.tag("#notebook").members()  # tagged in-process, read over HTTP: one database
    assert sorted(members["id"]) == sorted([query, ids[6]]) and set(members["who"]) == {"ada"}
    proposals = survey.candidates("#notebook", k=8)
    _same(proposals, client.tag("#notebook").candidates(8), ["id", "score"])
    counts = client.tag("#notebook").decide(accept=[proposals["id"][0]], reject=[proposals["id"][1]])
    assert (counts["members"], counts["rejected"]) == (3, 1)
    assert len(survey.tag("#notebook").members()) == 3
    _same(survey.anomalies(12), client.anomalies(12), ["id", "expected", "status"])


def test_lookup_cutout_and_clear_errors(opened) -> None:
    store, survey, client = opened
    galaxy_id, row = str(store.ids[3]), 3
    cut = survey.cutout(galaxy_id)
    assert np.array_equal(cut.data, store.images[row]) and cut.header["BANDS"] == ",".join(store.bands)
    assert np.array_equal(client.cutout(galaxy_id).data, cut.data)
    ra, dec = float(store.catalog["ra"][row]), float(store.catalog["dec"][row])
    assert cut.bands == store.bands
    if store.raster:  # JPEGs carry no WCS
        assert cut.wcs is None and client.cutout(galaxy_id).wcs is None
    else:
        x, y = cut.wcs.world_to_pixel_values(ra, dec)  # the demo's galaxies sit at their stamp's centre
        centre = (cut.data.shape[-1] - 1) / 2
        assert abs(x - centre) < 0.1 and abs(y - centre) < 0.1
        assert client.cutout(galaxy_id).wcs.wcs.compare(cut.wcs.wcs)
        assert WCS(cut.hdu().header).celestial.wcs.compare(cut.wcs.wcs)  # the FITS file keeps it for ds9/astropy
    found = survey.lookup(ra, dec)
    assert list(found["id"]) == [galaxy_id] and found["separation"][0] < 0.01
    assert found["separation"].unit == "arcsec" and found["ra"].unit == "deg"
    _same(found, client.lookup(ra, dec), ["id", "ra", "dec"])
    for api in (survey, client):
        with pytest.raises(GalsearchError, match="unknown galaxy id") as err:
            api.similar("J000000.00+000000.0")
        assert err.value.status == 404
    with Client(str(client._http.base_url)) as anonymous:  # no token: reading is open, writing is not
        assert len(anonymous.similar(galaxy_id, k=3)) == 3
        with pytest.raises(GalsearchError, match="access token") as err:
            anonymous.tag("#x").add(galaxy_id)
        assert err.value.status == 401
