"""HTTP routes for tags: tag a galaxy, expand a tag into ranked candidates, decide on them, export members.

Each route answers JSON, or an HTML page/partial when a browser or htmx asks for one, so the API and the
gallery stay one set of endpoints.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, Form, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from app import tagging
from app.errors import is_htmx, wants_html
from discovery.tag_expansion import normalise_tag, rank_candidates
from app.web import ID_PATTERN, WHO_COOKIE, WHO_PATTERN, AppContext, GalaxyId, Who, researcher

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


def register_tag_routes(app: FastAPI, ctx: AppContext) -> None:
    def tag_state(tag: str) -> tuple[list, dict]:
        rows = tagging.assignments(ctx.sessions, tag)
        return rows, tagging.summary(rows)

    @app.post("/who", summary="Set the researcher name recorded with tags and decisions (a cookie)")
    def set_who(name: Annotated[str, Form(pattern=WHO_PATTERN)]) -> Response:
        resp = JSONResponse({"who": name.strip()})
        resp.set_cookie(WHO_COOKIE, name.strip(), max_age=365 * 86400, samesite="lax")
        return resp

    @app.get("/tags", summary="Every tag with its member and rejection counts")
    def list_tags(request: Request) -> Response:
        tags = tagging.all_tags(ctx.sessions)
        if wants_html(request.headers):
            return ctx.templates.TemplateResponse(request, "tags.html", {**ctx.common, "tags": tags})
        return JSONResponse({"tags": tags})

    @app.get("/tags/{tag}", summary="A tag's members and counts (JSON, or its page in a browser)")
    def tag_page(request: Request, tag: TagPath, who: Who = None) -> Response:
        name = _tag_or_422(tag)
        rows, counts = tag_state(name)
        if not rows and not wants_html(request.headers):
            raise HTTPException(404, f"no galaxy carries {name} yet")
        members = [r for r in rows if r.status in tagging.MEMBER]
        if wants_html(request.headers):
            found = ctx.galaxies_by_id([r.galaxy_id for r in members])
            # htmx asks for the counts and members alone, to refresh them after decisions.
            refresh = is_htmx(request.headers)
            return ctx.templates.TemplateResponse(request, "_tag_state.html" if refresh else "tag.html", {
                **ctx.common, "tag": name, "counts": counts, "who": researcher(who), "k": 24, "refresh": refresh,
                "members": [(found[r.galaxy_id], r) for r in members if r.galaxy_id in found]})
        return JSONResponse({"tag": name, **counts, "galaxies": [
            {"id": r.galaxy_id, "status": r.status, "source": "human" if r.status == "positive" else "proposal",
             "score": r.score, "who": r.who, "updated": r.updated_at.isoformat()} for r in rows]})

    @app.post("/tags/{tag}/galaxies/{galaxy_id}", summary="Tag a galaxy by hand")
    def tag_galaxy(tag: TagPath, galaxy_id: GalaxyId, who: Who = None) -> dict:
        name = _tag_or_422(tag)
        ctx.galaxy_or_404(galaxy_id)
        row = tagging.assign(ctx.sessions, name, galaxy_id, "positive", "human", researcher(who))
        return {"tag": name, "id": galaxy_id, "status": row.status, "who": row.who}

    @app.delete("/tags/{tag}/galaxies/{galaxy_id}", summary="Remove a galaxy's tag or decision")
    def untag_galaxy(tag: TagPath, galaxy_id: GalaxyId) -> dict:
        name = _tag_or_422(tag)
        if not tagging.unassign(ctx.sessions, name, galaxy_id):
            raise HTTPException(404, f"galaxy {galaxy_id!r} has no {name} tag or decision")
        return {"tag": name, "id": galaxy_id, "removed": True}

    @app.get("/galaxies/{galaxy_id}/tags", summary="The tags a galaxy carries")
    def galaxy_tags(request: Request, galaxy_id: GalaxyId) -> Response:
        g = ctx.galaxy_or_404(galaxy_id)
        names = tagging.tags_of(ctx.sessions, galaxy_id)
        if wants_html(request.headers):
            return ctx.templates.TemplateResponse(request, "_tags.html", {"g": g, "tags": names})
        return JSONResponse({"id": galaxy_id, "tags": names})

    @app.post("/galaxies/{galaxy_id}/tags", summary="Tag a galaxy from a form (HTML partial)",
              response_class=HTMLResponse)
    def tag_from_form(request: Request, galaxy_id: GalaxyId, tag: Annotated[str, Form(max_length=64)],
                      who: Who = None) -> HTMLResponse:
        g = ctx.galaxy_or_404(galaxy_id)
        tagging.assign(ctx.sessions, _tag_or_422(tag), galaxy_id, "positive", "human", researcher(who))
        return ctx.templates.TemplateResponse(request, "_tags.html",
                                              {"g": g, "tags": tagging.tags_of(ctx.sessions, galaxy_id)})

    @app.get("/tags/{tag}/candidates", summary="Galaxies proposed for a tag, best first")
    def candidates(request: Request, tag: TagPath, k: Annotated[int, Query(ge=1)] = 24) -> Response:
        name = _tag_or_422(tag)
        if k > ctx.max_k:
            raise HTTPException(422, f"k must be at most {ctx.max_k}")
        rows, counts = tag_state(name)
        members = [r.galaxy_id for r in rows if r.status in tagging.MEMBER]
        if not members:
            raise HTTPException(404, f"no galaxy carries {name} yet: tag one first")
        known = ctx.galaxies_by_id([r.galaxy_id for r in rows])
        pos = np.array([known[i].row for i in members if i in known], int)
        neg = np.array([known[r.galaxy_id].row for r in rows if r.status == "rejected" and r.galaxy_id in known], int)
        ranking = rank_candidates(ctx.vectors, pos, neg, k)
        score = dict(zip(ranking.rows.tolist(), ranking.scores.tolist()))
        found = [(g, score[g.row]) for g in ctx.galaxies_at(ranking.rows.tolist())]
        if wants_html(request.headers):
            return ctx.templates.TemplateResponse(request, "candidates.html", {
                "tag": name, "method": ranking.method, "candidates": found, "counts": counts, "k": k})
        return JSONResponse({"tag": name, "method": ranking.method, "k": k, "candidates": [
            {"id": g.id, "ra": g.ra, "dec": g.dec, "score": sc} for g, sc in found]})

    @app.post("/tags/{tag}/decisions", summary="Accept or reject proposed galaxies (deciding again updates)")
    def decide(tag: TagPath, body: Decisions, who: Who = None) -> dict:
        name = _tag_or_422(tag)
        missing = sorted({d.id for d in body.decisions} - set(ctx.galaxies_by_id([d.id for d in body.decisions])))
        if missing:
            raise HTTPException(404, f"unknown galaxy id(s): {', '.join(missing[:10])}")
        for d in body.decisions:
            tagging.assign(ctx.sessions, name, d.id, tagging.DECISIONS[d.decision], "proposal", researcher(who),
                           d.score)
        _, counts = tag_state(name)
        return {"tag": name, "decided": len(body.decisions), **counts}

    @app.get("/tags/{tag}/export", summary="A tag's members as CSV, FITS or VOTable (id, ra, dec, tag, source, score, "
                     "morphometry)",
             response_class=Response)
    def export(tag: TagPath, format: Literal["csv", "fits", "votable"] = "csv") -> Response:
        name = _tag_or_422(tag)
        exported = tagging.export(ctx.sessions, name, format, ctx.measures)
        if exported is None:
            raise HTTPException(404, f"no galaxy carries {name}: there is nothing to export")
        content, media, ext = exported
        filename = f"{name.lstrip('#')}.{ext}"
        return Response(content, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
