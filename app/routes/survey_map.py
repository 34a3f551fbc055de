"""The survey map: a page to pan and zoom over every galaxy, its image drawn per view on the server, and the galaxy
under a point (for hovering and clicking)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.db import ratings as ratings_repo
from app.db import tags
from app.deps import Researcher, Survey
from app.filters import as_numbers, catalog_column, scalar_columns
from app.resources import Resources
from app.routes.tags import candidate_ranking, member_rows
from app.survey_map import SurveyMap, View, categorical
from discovery.tag_expansion import normalise_tag

router = APIRouter(tags=["map"])
Coord = Annotated[float, Query(allow_inf_nan=False)]
Pixels = Annotated[int, Query(ge=16, le=1024)]
COLOURS = {"member": (255, 160, 40), "candidate": (80, 220, 255), "query": (255, 255, 255),
           "look-alike": (80, 220, 255), "liked": (90, 230, 90), "middling": (240, 220, 80), "boring": (240, 80, 80)}


def _map(survey: Resources) -> SurveyMap:
    if survey.survey_map is None:
        raise HTTPException(404, "this workdir has no survey map: rebuild its index (galsearch index)")
    return survey.survey_map


def _colouring(survey: Resources, colour: str, who: str) -> tuple[np.ndarray | None, list[str] | None, list]:
    """What ``colour`` asks for: per-row values (and labels for a text column), and marks drawn on top."""
    if colour == "density":
        return None, None, []
    if colour == "anomaly":
        return np.asarray(survey.ranker.prior, float), None, []
    if colour == "ratings":
        mine = ratings_repo.ratings_of(survey.sessions, who)
        found = dict(zip(mine, survey.rows_of(list(mine)).tolist()))
        rows = {k: [found[i] for i, r in mine.items() if found[i] >= 0 and r.rating in v]
                for k, v in (("boring", (0, 1)), ("middling", (2, 3)), ("liked", (4, 5)))}
        return None, None, [(rows[k], COLOURS[k], 4) for k in rows]
    if colour.startswith("tag:"):
        try:
            name = normalise_tag(colour[4:])
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        rows = tags.assignments(survey.sessions, name)
        members, _ = member_rows(survey, rows)
        found = candidate_ranking(survey, name, rows, 100).rows if len(members) else []
        return None, None, [(found, COLOURS["candidate"], 3), (members, COLOURS["member"], 4)]
    if colour.startswith("col:"):
        try:
            column = catalog_column(survey.store.catalog, colour[4:])
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        if column.dtype.kind in "biuf":
            return as_numbers(column), None, []
        codes, labels = categorical(column)
        return codes, labels, []
    raise HTTPException(422, f"unknown colouring {colour!r}: density, anomaly, ratings, tag:NAME or col:COLUMN")


@router.get("/map", response_class=HTMLResponse, summary="The survey map page")
def map_page(request: Request, survey: Survey) -> Response:
    drawn = _map(survey)
    columns = [c for c in scalar_columns(survey.store.catalog) if c not in ("id", "file", "hdu")]
    return survey.views.render(request, "map.html", {"bounds": drawn.bounds, "columns": columns,
                                                     "tags": [t["tag"] for t in tags.all_tags(survey.sessions)],
                                                     "k": 20})


@router.get("/map.png", summary="One view of the survey map as a PNG", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def map_image(survey: Survey, who: Researcher, x0: Coord, x1: Coord, y0: Coord, y1: Coord, width: Pixels = 512,
              height: Pixels = 512, colour: Annotated[str, Query(max_length=80)] = "density",
              highlight: Annotated[str | None, Query(max_length=200)] = None,
              k: Annotated[int, Query(ge=1, le=200)] = 20) -> Response:
    drawn = _map(survey)
    try:
        view = View(x0, x1, y0, y1, width, height)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    values, labels, marks = _colouring(survey, colour, who)
    if highlight:
        _, near = survey.look_alikes(highlight, k)
        marks += [(survey.rows_of([r["id"] for r in near]).tolist(), COLOURS["look-alike"], 4),
                  ([survey.row(highlight)], COLOURS["query"], 7)]
    return Response(drawn.render(view, values, labels, marks), media_type="image/png",
                    headers={"Cache-Control": "no-store"})


@router.get("/map/at", summary="The galaxy nearest a point of the map (within radius, map units)")
def map_at(survey: Survey, x: Coord, y: Coord, radius: Annotated[float, Query(gt=0, allow_inf_nan=False)]) -> dict:
    row = _map(survey).nearest(x, y, radius)
    if row is None:
        raise HTTPException(404, "no galaxy there")
    gid = str(survey.index.ids[row])
    xy = survey.survey_map.coords[row]
    return {**survey.coords(gid), "x": float(xy[0]), "y": float(xy[1])}


MAX_REGION = 2000  # galaxies one box may tag at once: each is one decision, stored like any other


MAX_LASSO = 500  # vertices of a lasso: the browser adds one every few pixels of the pointer's path
OptionalCoord = Annotated[float | None, Query(allow_inf_nan=False)]
FormCoord = Annotated[float | None, Form(allow_inf_nan=False)]
LASSO_HELP = "a polygon x,y,x,y,... (map units) instead of a box"


class Region:
    """A region of the map, from the query or a form: a box (x0 <= x <= x1, y0 <= y <= y1) or a lasso, the
    polygon "x,y,x,y,..." the pointer drew."""

    def __init__(self, x0: float | None, x1: float | None, y0: float | None, y1: float | None,
                 lasso: str | None) -> None:
        self.vertices: np.ndarray | None = None
        if lasso:
            self.vertices = _polygon(lasso)
            return
        if None in (x0, x1, y0, y1):
            raise HTTPException(422, "a region needs a box (x0, x1, y0, y1) or a lasso")
        if not (x0 < x1 and y0 < y1):
            raise HTTPException(422, "a box needs x0 < x1 and y0 < y1")
        self.box = (x0, x1, y0, y1)

    def fields(self) -> dict[str, str]:
        """The form fields that name this region again (the "tag them all" form)."""
        if self.vertices is not None:
            return {"lasso": ",".join(f"{v:.17g}" for v in self.vertices.ravel())}
        return dict(zip(("x0", "x1", "y0", "y1"), (f"{v:.17g}" for v in self.box)))

    def rows(self, survey_map: SurveyMap) -> np.ndarray:
        if self.vertices is not None:
            return survey_map.inside_polygon(self.vertices)
        return survey_map.inside(*self.box)


def _polygon(text: str) -> np.ndarray:
    """The lasso's vertices (n, 2) from "x,y,x,y,...", or a 422 saying what is wrong with it."""
    try:
        values = np.array([float(v) for v in text.split(",")], np.float64)
    except ValueError:
        raise HTTPException(422, "a lasso is a list of numbers x,y,x,y,...") from None
    if len(values) % 2 or not 3 <= len(values) // 2 <= MAX_LASSO or not np.isfinite(values).all():
        raise HTTPException(422, f"a lasso needs 3 to {MAX_LASSO} finite x,y points")
    return values.reshape(-1, 2)


@router.get("/map/region", summary="The galaxies inside a box or a lasso of the map (a gallery page, or JSON)")
def map_region(request: Request, survey: Survey, x0: OptionalCoord = None, x1: OptionalCoord = None,
               y0: OptionalCoord = None, y1: OptionalCoord = None,
               lasso: Annotated[str | None, Query(max_length=MAX_LASSO * 50, description=LASSO_HELP)] = None,
               page: Annotated[int, Query(ge=1, le=10_000_000)] = 1) -> Response:
    region = Region(x0, x1, y0, y1, lasso)
    rows = region.rows(_map(survey))
    galaxies = survey.page(page, rows)
    data = {"count": len(rows), "page": page, "next_page": survey.next_page(page, rows), "galaxies": galaxies}
    if not survey.views.wants_html(request):
        return JSONResponse(data)
    return survey.views.render(request, None, {**data, "region": region, "max_region": MAX_REGION, "k": 20},
                               fragment="_map_region.html")


@router.post("/map/tag", summary="Tag every galaxy inside a box or a lasso of the map (source = map)")
def map_tag(request: Request, survey: Survey, who: Researcher, tag: Annotated[str, Form(max_length=64)],
            x0: FormCoord = None, x1: FormCoord = None, y0: FormCoord = None, y1: FormCoord = None,
            lasso: Annotated[str | None, Form(max_length=MAX_LASSO * 50, description=LASSO_HELP)] = None
            ) -> Response:
    try:
        name = normalise_tag(tag)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    rows = Region(x0, x1, y0, y1, lasso).rows(_map(survey))
    if len(rows) > MAX_REGION:
        raise HTTPException(422, f"the region holds {len(rows)} galaxies; tag at most {MAX_REGION} at once (zoom in)")
    for r in rows:
        tags.assign(survey.sessions, name, str(survey.index.ids[r]), "positive", "map", who)
    data = {"tag": name, "tagged": len(rows)}
    if not survey.views.wants_html(request):
        return JSONResponse(data)
    return survey.views.render(request, None, data, fragment="_map_tagged.html")
