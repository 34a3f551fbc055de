"""HTTP routes for anomaly discovery: the ranking, rating galaxies 0-5, retraining, exporting ratings.

Each researcher (the ``galsearch_who`` cookie) has their own ratings and so their own ranking: it is refitted
when they press retrain and automatically every ``retrain_every`` ratings, and kept in memory between.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from astropy.table import Table
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from discovery.active_learning import TOP, AnomalyRanker, ResearcherFit
from app.db import Galaxy, Rating, upsert
from app.errors import wants_html
from app.tagging import EXPORT_FORMATS, coord, table_bytes
from app.web import ID_PATTERN, AppContext, GalaxyId, Who, researcher

class RatingIn(BaseModel):
    id: str = Field(pattern=ID_PATTERN, description="galaxy id")
    rating: int = Field(ge=0, le=5, strict=True, description="0 = boring or an artifact ... 5 = fascinating")


def register_anomaly_routes(app: FastAPI, ctx: AppContext, ranker: AnomalyRanker) -> None:
    def ratings_of(who: str) -> dict[str, Rating]:
        with ctx.sessions() as s:
            return {r.galaxy_id: r for r in s.scalars(select(Rating).where(Rating.who == who))}

    def fitted(who: str, force: bool = False) -> tuple[ResearcherFit, dict, dict[str, Rating], dict[str, Galaxy]]:
        mine = ratings_of(who)
        known = ctx.galaxies_by_id(list(mine))
        ids = [i for i in mine if i in known]
        fit, change = ranker.current(who, np.array([known[i].row for i in ids], int),
                                     np.array([mine[i].rating for i in ids], float), force)
        return fit, change, mine, known

    def view(who: str, n: int, force: bool = False) -> dict:
        """The researcher's top ``TOP`` and the ``n`` galaxies to rate next, none of them rated or in that top."""
        fit, change, mine, known = fitted(who, force)
        r = fit.ranking
        # Ratings given since the last fit are not in its ranking yet: skip those galaxies here.
        rated = {known[i].row for i in mine if i in known}
        shown = set(fit.top)
        order = np.argsort(-r.acquisition, kind="stable")[: n + len(rated) + len(shown)]
        to_rate = ctx.galaxies_at([int(x) for x in order if int(x) not in rated and int(x) not in shown][:n])
        top = ctx.galaxies_at(fit.top)
        if r.method != "unsupervised":
            message = f"ranked by {r.method.replace('_', ' ')} on {fit.ratings_at_fit} ratings"
        elif mine:
            message = "ranked by the unsupervised score until the next retrain"
        else:
            message = ("no ratings yet: ranked by the unsupervised score (isolation forest + k-NN distance); "
                       "rate galaxies and retrain")
        return {"who": who, "method": r.method, "message": message, "ratings": len(mine), **change,
                "to_rate": [{"id": g.id, "ra": g.ra, "dec": g.dec, "score": float(r.acquisition[g.row])}
                            for g in to_rate],
                "top": [{"id": g.id, "ra": g.ra, "dec": g.dec, "expected": float(r.expected[g.row]),
                         "rating": mine[g.id].rating if g.id in mine else None} for g in top]}

    def respond(request: Request, data: dict, template: str = "anomalies.html") -> Response:
        if wants_html(request.headers):
            return ctx.templates.TemplateResponse(request, template, {**ctx.common, **data})
        return JSONResponse(data)

    @app.get("/anomalies", summary="The anomaly ranking: galaxies to rate next, and the current top")
    def anomalies(request: Request, who: Who = None, n: Annotated[int, Query(ge=1, le=200)] = 24) -> Response:
        return respond(request, view(researcher(who), n))

    @app.post("/anomalies/ratings", summary="Rate a galaxy 0-5 (rating it again changes the rating)")
    def rate(request: Request, body: RatingIn, who: Who = None) -> Response:
        name = researcher(who)
        ctx.galaxy_or_404(body.id)
        upsert(ctx.sessions, Rating, {"galaxy_id": body.id, "who": name}, {"rating": body.rating})
        data = view(name, 24)
        data["rated"] = {"id": body.id, "rating": body.rating}
        return respond(request, data, "_anomaly_panels.html")

    @app.post("/anomalies/retrain", summary="Refit the ranking on all of this researcher's ratings")
    def retrain(request: Request, who: Who = None) -> Response:
        return respond(request, view(researcher(who), 24, force=True), "_anomaly_panels.html")

    @app.get("/anomalies/ratings/export", summary="This researcher's ratings as CSV or FITS", response_class=Response)
    def export(who: Who = None, format: Literal["csv", "fits", "votable"] = "csv",
               everyone: bool = False) -> Response:
        with ctx.sessions() as s:
            query = select(Rating) if everyone else select(Rating).where(Rating.who == researcher(who))
            rows = list(s.scalars(query.order_by(Rating.updated_at)))
        known = ctx.galaxies_by_id([r.galaxy_id for r in rows])
        table = Table({"id": [r.galaxy_id for r in rows],
                       "ra": np.array([coord(known.get(r.galaxy_id), "ra") for r in rows], float),
                       "dec": np.array([coord(known.get(r.galaxy_id), "dec") for r in rows], float),
                       "rating": np.array([r.rating for r in rows], int), "who": [r.who for r in rows],
                       "when": [r.updated_at.isoformat() for r in rows]}, meta={"ORIGIN": "galsearch"})
        table["ra"].unit = table["dec"].unit = "deg"
        _, media, ext = EXPORT_FORMATS[format]
        return Response(table_bytes(table, format), media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="ratings.{ext}"'})

    @app.get("/galaxies/{galaxy_id}/rating", summary="This researcher's rating of a galaxy")
    def my_rating(galaxy_id: GalaxyId, who: Who = None) -> dict:
        ctx.galaxy_or_404(galaxy_id)
        mine = ratings_of(researcher(who))
        if galaxy_id not in mine:
            raise HTTPException(404, f"galaxy {galaxy_id!r} is not rated by {researcher(who)}")
        return {"id": galaxy_id, "rating": mine[galaxy_id].rating, "who": researcher(who)}
