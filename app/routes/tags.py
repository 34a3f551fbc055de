"""Tags: tag a galaxy, expand a tag into ranked candidates, decide on them, export the members.

Each route answers JSON, or an HTML page or fragment when a browser or htmx asks for one, so the API and the
gallery stay one set of endpoints.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from app.db import tags
from app.db.models import TagAssignment
from app.deps import ID_PATTERN, GalaxyId, KnownGalaxy, Researcher, Survey, check_k
from app.exports import AnswerFormat, ExportFormat, galaxies_table, table_response, tag_table
from app.resources import Resources
from discovery.tag_expansion import CandidateRanking, normalise_tag, rank_candidates

router = APIRouter(tags=["tags"])
TagPath = Annotated[str, PathParam(min_length=1, max_length=64, description="tag, with or without its leading #")]


class Decision(BaseModel):
    id: str = Field(pattern=ID_PATTERN, description="galaxy id")
    decision: Literal["accept", "reject"]
    score: float | None = Field(None, description="the candidate's score when it was proposed")


class Decisions(BaseModel):
    decisions: list[Decision] = Field(min_length=1, max_length=1000)


def _tag_or_422(raw: str) -> str:
    try:
        return normalise_tag(raw)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/tags", summary="Every tag with its member and rejection counts")
def list_tags(request: Request, survey: Survey) -> Response:
    return survey.views.respond(request, {"tags": tags.all_tags(survey.sessions)}, page="tags.html")


@router.get("/tags/{tag}", summary="A tag's members and counts (JSON, or its page in a browser)")
def tag_page(request: Request, survey: Survey, tag: TagPath, who: Researcher) -> Response:
    name = _tag_or_422(tag)
    rows = tags.assignments(survey.sessions, name)
    counts = tags.summary(rows)
    if survey.views.wants_html(request):
        members = [r for r in rows if r.status in tags.MEMBER]
        found = survey.galaxies_by_id([r.galaxy_id for r in members])
        # htmx asks for the counts and members alone, to refresh them after decisions.
        return survey.views.render(request, "tag.html", {
            "tag": name, "counts": counts, "who": who, "k": 24,
            "members": [(found[r.galaxy_id], r) for r in members if r.galaxy_id in found]},
            fragment="_tag_state.html")
    if not rows:
        raise HTTPException(404, f"no galaxy carries {name} yet")
    return JSONResponse({"tag": name, **counts, "galaxies": [
        {"id": r.galaxy_id, "status": r.status, "source": tags.source_of(r),
         "score": r.score, "who": r.who, "updated": r.updated_at.isoformat()} for r in rows]})


@router.post("/tags/{tag}/galaxies/{galaxy_id}", summary="Tag a galaxy by hand")
def tag_galaxy(survey: Survey, tag: TagPath, g: KnownGalaxy, who: Researcher) -> dict:
    name = _tag_or_422(tag)
    row = tags.assign(survey.sessions, name, g.id, "positive", "human", who)
    return {"tag": name, "id": g.id, "status": row.status, "who": row.who}


@router.delete("/tags/{tag}/galaxies/{galaxy_id}", summary="Remove a galaxy's tag or decision")
def untag_galaxy(survey: Survey, tag: TagPath, galaxy_id: GalaxyId) -> dict:
    name = _tag_or_422(tag)
    if not tags.unassign(survey.sessions, name, galaxy_id):
        raise HTTPException(404, f"galaxy {galaxy_id!r} has no {name} tag or decision")
    return {"tag": name, "id": galaxy_id, "removed": True}


@router.get("/galaxies/{galaxy_id}/tags", summary="The tags a galaxy carries")
def galaxy_tags(request: Request, survey: Survey, g: KnownGalaxy) -> Response:
    names = tags.tags_of(survey.sessions, g.id)
    if survey.views.wants_html(request):
        return survey.views.render(request, None, {"g": g, "tags": names}, fragment="_tags.html")
    return JSONResponse({"id": g.id, "tags": names})


@router.post("/galaxies/{galaxy_id}/tags", summary="Tag a galaxy from a form (HTML partial)",
             response_class=HTMLResponse)
def tag_from_form(request: Request, survey: Survey, g: KnownGalaxy, tag: Annotated[str, Form(max_length=64)],
                  who: Researcher) -> Response:
    tags.assign(survey.sessions, _tag_or_422(tag), g.id, "positive", "human", who)
    return survey.views.render(request, None, {"g": g, "tags": tags.tags_of(survey.sessions, g.id)},
                               fragment="_tags.html")


@router.get("/tags/{tag}/candidates", summary="Galaxies proposed for a tag, best first")
def candidates(request: Request, survey: Survey, tag: TagPath, k: Annotated[int, Query(ge=1)] = 24,
               format: AnswerFormat = "json") -> Response:
    name = _tag_or_422(tag)
    check_k(survey, k)
    rows = tags.assignments(survey.sessions, name)
    ranking = candidate_ranking(survey, name, rows, k)
    score = dict(zip(ranking.rows.tolist(), ranking.scores.tolist()))
    found = [(g, score[g.row]) for g in survey.galaxies_at(ranking.rows.tolist())]
    if format != "json":
        table = galaxies_table([g for g, _ in found], {"score": np.array([sc for _, sc in found], float)},
                               survey.measures, {"TAG": name, "METHOD": ranking.method})
        return table_response(table, format, f"candidates_{name.lstrip('#')}")
    if survey.views.wants_html(request):
        return survey.views.render(request, None, {"tag": name, "method": ranking.method, "candidates": found,
                                                   "counts": tags.summary(rows), "k": k},
                                   fragment="candidates.html")
    return JSONResponse({"tag": name, "method": ranking.method, "k": k, "candidates": [
        {"id": g.id, "ra": g.ra, "dec": g.dec, "score": sc} for g, sc in found]})


def member_rows(survey: Resources, rows: list[TagAssignment]) -> tuple[np.ndarray, np.ndarray]:
    """Store rows of a tag's members and of its rejections, from its assignment ``rows``."""
    known = survey.galaxies_by_id([r.galaxy_id for r in rows])
    pos = np.array([known[r.galaxy_id].row for r in rows if r.status in tags.MEMBER and r.galaxy_id in known], int)
    neg = np.array([known[r.galaxy_id].row for r in rows if r.status == "rejected" and r.galaxy_id in known], int)
    return pos, neg


def candidate_ranking(survey: Resources, name: str, rows: list[TagAssignment], k: int) -> CandidateRanking:
    """The tag's ``k`` best candidates (404 while it has no member)."""
    pos, neg = member_rows(survey, rows)
    if not len(pos):
        raise HTTPException(404, f"no galaxy carries {name} yet: tag one first")
    return rank_candidates(survey.vectors, pos, neg, k, search=survey.index.candidates)


@router.post("/tags/{tag}/decisions", summary="Accept or reject proposed galaxies (deciding again updates)")
def decide(survey: Survey, tag: TagPath, body: Decisions, who: Researcher) -> dict:
    name = _tag_or_422(tag)
    missing = sorted({d.id for d in body.decisions}
                     - set(survey.galaxies_by_id([d.id for d in body.decisions])))
    if missing:
        raise HTTPException(404, f"unknown galaxy id(s): {', '.join(missing[:10])}")
    for d in body.decisions:
        tags.assign(survey.sessions, name, d.id, tags.DECISIONS[d.decision], "proposal", who, d.score)
    return {"tag": name, "decided": len(body.decisions), **tags.summary(tags.assignments(survey.sessions, name))}


@router.get("/tags/{tag}/export", summary="A tag's members as CSV, FITS or VOTable (id, ra, dec, tag, source, score, "
            "morphometry)", response_class=Response)
def export(survey: Survey, tag: TagPath, format: ExportFormat = "csv") -> Response:
    name = _tag_or_422(tag)
    rows = tags.assignments(survey.sessions, name)
    if not rows:
        raise HTTPException(404, f"no galaxy carries {name}: there is nothing to export")
    members = [r.galaxy_id for r in rows if r.status in tags.MEMBER]
    table = tag_table(name, rows, survey.galaxies_by_id(members), survey.measures)
    return table_response(table, format, name.lstrip("#"))
