"""A galaxy: its catalogue row and page, its pictures, and its look-alikes (the route users hit hardest)."""

from __future__ import annotations

import io
from typing import Annotated

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from app.deps import GalaxyId, K, resources_of
from app.exports import EXPORT_FORMATS, AnswerFormat, download, similar_table, table_response
from app.thumbs import media_type

router = APIRouter(tags=["galaxies"])
# The Legacy Surveys sky viewer centred on a galaxy (DR10 images, zoomed to a few arcmin).
LEGACY_VIEWER = "https://www.legacysurvey.org/viewer?ra={ra:.6f}&dec={dec:.6f}&layer=ls-dr10&zoom=16"
CACHED = {"Cache-Control": "public, max-age=86400"}


def _json_scalar(value: object) -> object:
    """A catalog cell as JSON: masked or non-finite values become null, numpy scalars plain Python."""
    if value is np.ma.masked:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@router.get("/galaxies/{galaxy_id}", summary="A galaxy's catalog row (JSON), or its page in a browser")
def galaxy(request: Request, galaxy_id: GalaxyId) -> Response:
    survey = resources_of(request)
    row = survey.row(galaxy_id)
    values = survey.store.catalog[row]
    columns = {name: _json_scalar(values[name]) for name in survey.store.catalog.colnames
               if np.ndim(values[name]) == 0}
    if survey.measures is not None:
        columns.update(survey.measures.of(row))
    if not survey.views.wants_html(request):
        return JSONResponse(columns)
    coords = survey.coords(galaxy_id)
    position = None
    if coords["ra"] is not None:
        position = SkyCoord(coords["ra"], coords["dec"], unit="deg").to_string("hmsdms", sep=":", precision=2)
    return survey.views.render(request, "galaxy.html", {
        "g": coords, "position": position, "columns": columns, "k": 20,
        "legacy_viewer": LEGACY_VIEWER.format(**coords) if position else None})


@router.get("/galaxies/{galaxy_id}/image.png", summary=(
            "Colour thumbnail: a PNG/JPEG survey's own image (JPEG or PNG, as kept at ingest), else an asinh "
            "(Lupton) composite of the bands"),
            response_class=Response, responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
def image(request: Request, galaxy_id: GalaxyId) -> Response:
    survey = resources_of(request)
    picture = survey.thumbs.get(survey.row(galaxy_id))
    return Response(picture, media_type=media_type(picture), headers=CACHED)


@router.get("/galaxies/{galaxy_id}/bands/{band}.png", summary="One band in grey (asinh stretch)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def band_image(request: Request, galaxy_id: GalaxyId, band: Annotated[str, PathParam(max_length=32)]) -> Response:
    survey = resources_of(request)
    row = survey.row(galaxy_id)
    if band not in survey.store.bands:
        raise HTTPException(404, f"no band {band!r}: this survey has {', '.join(survey.store.bands)}")
    return Response(survey.thumbs.band(row, survey.store.bands.index(band)), media_type="image/png", headers=CACHED)


@router.get("/galaxies/{galaxy_id}/cutout.fits", summary=(
            "The packed cutout as a FITS image (bands, H, W): the pixels the encoder and the morphometry saw"),
            response_class=Response, responses={200: {"content": {"application/fits": {}}}})
def cutout(request: Request, galaxy_id: GalaxyId) -> Response:
    survey = resources_of(request)
    row = survey.row(galaxy_id)
    hdu = fits.PrimaryHDU(np.asarray(survey.store.images[row], np.float32))
    hdu.header["OBJECT"] = (galaxy_id[:68], "galaxy id")
    hdu.header["BANDS"] = (",".join(survey.store.bands), "the planes, in order")
    if (wcs := survey.store.wcs(row)) is not None:
        hdu.header.update(wcs.to_header())
    coords = survey.coords(galaxy_id)
    if coords["ra"] is not None:
        hdu.header["RA"], hdu.header["DEC"] = (coords["ra"], "deg"), (coords["dec"], "deg")
    hdu.header["RASTER"] = (survey.store.raster, "PNG/JPEG pixels scaled 0-1, not calibrated flux")
    buf = io.BytesIO()
    hdu.writeto(buf)
    return download(buf.getvalue(), "application/fits", f"{galaxy_id}.fits")


Ids = Annotated[list[str], Query(max_length=50, description="galaxy ids (repeat the parameter)")]


@router.get("/similar", summary="Galaxies most like any of several (id=...) and least like others (not=...)")
def like_these(request: Request, k: K, id: Ids, not_: Annotated[list[str] | None, Query(
        alias="not", max_length=50, description="galaxies the results should not look like")] = None) -> Response:
    survey = resources_of(request)
    ids, not_ids = list(dict.fromkeys(id)), [i for i in dict.fromkeys(not_ or []) if i not in id]
    results = survey.like_these(ids, not_ids, k)
    if survey.views.wants_html(request):
        return survey.views.render(request, None, {"ids": ids, "not_ids": not_ids, "results": results, "k": k},
                                   fragment="like_these.html")
    return JSONResponse({"ids": ids, "not": not_ids, "k": k, "results": results})


@router.get("/galaxies/{galaxy_id}/why/{other_id}", summary=(
            "Why two galaxies are called alike: their band images, morphometry side by side, and each part's share "
            "of their search distance (the learned embedding, each statistic)"))
def why(request: Request, galaxy_id: GalaxyId, other_id: GalaxyId) -> Response:
    survey = resources_of(request)
    apart = survey.why(galaxy_id, other_id)
    rows = survey.row(galaxy_id), survey.row(other_id)
    values = [survey.measures.of(r) if survey.measures is not None else {} for r in rows]
    result = {"query": survey.coords(galaxy_id), "other": survey.coords(other_id), **apart,
              "morphometry": {name: [v.get(name) for v in values] for name in values[0]}}
    if not survey.views.wants_html(request):
        return JSONResponse(result)
    units = dict(zip(survey.measures.names, survey.measures.units)) if survey.measures is not None else {}
    return survey.views.render(request, "why.html", {**result, "units": units})


@router.get("/galaxies/{galaxy_id}/similar", summary="The k most similar galaxies (JSON, HTML for htmx, or a table)",
            responses={200: {"content": {m: {} for _, m, _ in EXPORT_FORMATS.values()}}})
def similar(request: Request, galaxy_id: GalaxyId, k: K,
            where: Annotated[list[str] | None, Query(max_length=200, description=(
                "catalog conditions, all of which the look-alikes must meet, e.g. mag_r<=17.5 or "
                "morphology!=artifact"))] = None,
            distinct_arcsec: Annotated[float | None, Query(gt=0, le=3600, description=(
                "drop look-alikes closer than this to the query or to a better one (repeated detections of "
                "one object)"))] = None,
            format: AnswerFormat = "json") -> Response:
    survey = resources_of(request)
    where = [w for w in where or [] if w.strip()]  # the panel's filter box sends an empty one
    query, results = survey.look_alikes(galaxy_id, k, where, distinct_arcsec)
    if format != "json":
        table = similar_table(galaxy_id, results, survey.rows_of([r["id"] for r in results]).tolist(),
                             survey.measures)
        return table_response(table, format, f"similar_{galaxy_id}")
    if survey.views.wants_html(request):
        return survey.views.render(request, None, {"query": query, "results": results, "k": k, "where": where},
                                   fragment="similar.html")
    return JSONResponse({"query": query, "k": k, "metric": "cosine", "results": results})
