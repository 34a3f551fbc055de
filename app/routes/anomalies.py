"""Anomaly discovery: the ranking, rating galaxies 0-5, retraining, exporting ratings.

Each researcher has their own ratings and so their own ranking (``discovery.active_learning.AnomalyRanker``): it
is refitted when they press retrain and automatically every ``retrain_every`` ratings, and kept in memory between.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.db import ratings as ratings_repo
from app.db.models import Rating
from app.deps import ID_PATTERN, KnownGalaxy, Researcher, Survey, known_galaxy
from app.exports import AnswerFormat, ExportFormat, galaxies_table, ratings_table, table_response
from app.galaxy import Galaxy
from app.resources import Resources
from discovery.active_learning import EXPLORE_SHARE, FEW_LIKED, LIKED, AnomalyRanking

router = APIRouter(tags=["anomalies"])
PANELS = "_anomaly_panels.html"  # what rating and retraining refresh
METHOD_NAMES = {"classifier": "a logistic regression of the galaxies you rated 4-5 against the rest",
                "gaussian_process": "a Gaussian process on the embedding's PCA, its mean the unsupervised score",
                "neighbour_score": "a random forest trusted near rated galaxies, the unsupervised score elsewhere"}


class RatingIn(BaseModel):
    id: str = Field(pattern=ID_PATTERN, description="galaxy id")
    rating: int = Field(ge=0, le=5, strict=True, description="0 = boring or an artifact ... 5 = fascinating")


def _view(survey: Resources, who: str, n: int, force: bool = False) -> dict:
    """The researcher's top ``TOP`` and the ``n`` unrated galaxies to rate next: the ranking's own choice
    (``AnomalyRanking.next_to_rate``: its best guesses to confirm, and a share of the most unusual by the
    unsupervised score), so the page shows what the evaluation simulates. A guess can be in both lists."""
    mine = ratings_repo.ratings_of(survey.sessions, who)
    known = survey.galaxies_by_id(list(mine))
    ids = [i for i in mine if i in known]
    fit, change = survey.ranker.current(who, np.array([known[i].row for i in ids], int),
                                        np.array([mine[i].rating for i in ids], float), force)
    r = fit.ranking
    # Ratings given since the last fit are not in its ranking yet: skip those galaxies here.
    rated = {known[i].row for i in ids}
    to_rate = survey.galaxies_at(r.next_to_rate(n, rated))
    top = survey.galaxies_at(fit.top)
    liked = sum(mine[i].rating >= LIKED for i in ids)
    if r.method != "unsupervised":
        message = f"fitted on {r.fitted_on} ratings by {METHOD_NAMES[r.method]}; "
        if r.method == "classifier" and liked < FEW_LIKED:
            message += (f"“rate next” shows look-alikes of the galaxies you rated {LIKED}-5 until there are "
                        f"{FEW_LIKED}, ")
        message += f"and {round(100 * EXPLORE_SHARE)} % of it the most unusual by the unsupervised score"
    elif r.fitted_on:
        message = (f"fitted on {r.fitted_on} ratings, none of them {LIKED}-5 yet: ranked by the unsupervised score, "
                   "the galaxies you rated left out of the guesses")
    elif mine:
        message = "ranked by the unsupervised score until the next retrain"
    else:
        message = ("no ratings yet: ranked by the unsupervised score (isolation forest + k-NN distance); "
                   "rate galaxies and retrain")
    return {"who": who, "method": r.method, "fitted_on": r.fitted_on, "message": message, "ratings": len(mine),
            **change,
            "to_rate": [{"id": g.id, "ra": g.ra, "dec": g.dec, "score": float(r.acquisition[g.row])}
                        for g in to_rate],
            "top": [_top_entry(g, r, mine) for g in top]}


def _top_entry(g: Galaxy, r: AnomalyRanking, mine: dict[str, Rating]) -> dict:
    """One galaxy of the top: its rating if rated, else the prediction and its uncertainty (the unsupervised score
    before any fit)."""
    rating = mine[g.id].rating if g.id in mine else None
    std = float(r.std[g.row])
    status = "rated" if rating is not None else ("unsupervised" if r.method == "unsupervised" else "predicted")
    return {"id": g.id, "ra": g.ra, "dec": g.dec, "expected": float(r.expected[g.row]), "rating": rating,
            "status": status, "uncertainty": std if status == "predicted" and np.isfinite(std) else None}


@router.get("/anomalies", summary="The anomaly ranking: galaxies to rate next, and the current top")
def anomalies(request: Request, survey: Survey, who: Researcher,
              n: Annotated[int, Query(ge=1, le=200)] = 24,
              format: AnswerFormat = "json") -> Response:
    view = _view(survey, who, n)
    if format != "json":
        top = survey.galaxies_by_id([t["id"] for t in view["top"]])
        entries = [t for t in view["top"] if t["id"] in top]
        table = galaxies_table([top[t["id"]] for t in entries], {
            "expected": np.array([t["expected"] for t in entries], float),
            "rating": np.array([np.nan if t["rating"] is None else t["rating"] for t in entries], float),
            "status": [t["status"] for t in entries],
            "uncertainty": np.array([np.nan if t["uncertainty"] is None else t["uncertainty"] for t in entries],
                                    float)}, survey.measures, {"METHOD": view["method"], "WHO": who})
        return table_response(table, format, "anomalies")
    return survey.views.respond(request, view, page="anomalies.html")


@router.post("/anomalies/ratings", summary="Rate a galaxy 0-5 (rating it again changes the rating)")
def rate(request: Request, survey: Survey, body: RatingIn, who: Researcher) -> Response:
    known_galaxy(body.id, survey)
    ratings_repo.rate(survey.sessions, body.id, who, body.rating)
    data = _view(survey, who, 24)
    data["rated"] = {"id": body.id, "rating": body.rating}
    return survey.views.respond(request, data, fragment=PANELS)


@router.post("/anomalies/retrain", summary="Refit the ranking on all of this researcher's ratings")
def retrain(request: Request, survey: Survey, who: Researcher) -> Response:
    return survey.views.respond(request, _view(survey, who, 24, force=True), fragment=PANELS)


@router.get("/anomalies/ratings/export", summary="This researcher's ratings as CSV or FITS", response_class=Response)
def export(survey: Survey, who: Researcher, format: ExportFormat = "csv", everyone: bool = False) -> Response:
    rows = ratings_repo.history(survey.sessions, None if everyone else who)
    table = ratings_table(rows, survey.galaxies_by_id([r.galaxy_id for r in rows]))
    return table_response(table, format, "ratings")


@router.get("/galaxies/{galaxy_id}/rating", summary="This researcher's rating of a galaxy")
def my_rating(survey: Survey, g: KnownGalaxy, who: Researcher) -> dict:
    mine = ratings_repo.ratings_of(survey.sessions, who)
    if g.id not in mine:
        raise HTTPException(404, f"galaxy {g.id!r} is not rated by {who}")
    return {"id": g.id, "rating": mine[g.id].rating, "who": who}
