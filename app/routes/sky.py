"""Sky lookup: the galaxy nearest a typed position, and its look-alikes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from app.deps import K, Survey
from app.sky import parse_position

router = APIRouter(tags=["sky"])
Coordinate = Annotated[str, Query(min_length=1, max_length=40)]


@router.get("/lookup", summary="The galaxy nearest a sky position (degrees or sexagesimal), and its look-alikes")
def lookup(request: Request, survey: Survey, ra: Coordinate, dec: Coordinate, k: K,
           radius: Annotated[float, Query(gt=0, le=3600, description="search radius in arcsec")] = 5.0) -> Response:
    try:
        position = parse_position(ra, dec)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    if not survey.views.common["has_sky"]:
        raise HTTPException(404, "this survey has no coordinates")
    found = survey.sky.nearest(position, radius)
    if found is None:
        raise HTTPException(404, f"no galaxy within {radius:g} arcsec of RA {position.ra.deg:.5f}, "
                                 f"Dec {position.dec.deg:+.5f}")
    row, separation = found
    galaxy_id = str(survey.index.ids[row])
    if survey.views.wants_html(request):
        query, results = survey.look_alikes(galaxy_id, k)
        return survey.views.render(request, None, {"query": query, "results": results, "k": k, "where": []},
                                   fragment="similar.html")
    return JSONResponse({**survey.at(row), "separation_arcsec": separation})
