"""The gallery: the survey's thumbnails page by page (HTML, htmx pages for the infinite scroll, or JSON)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import Survey

router = APIRouter(tags=["gallery"])
Page = Annotated[int, Query(ge=1, le=10_000_000)]


@router.get("/", response_class=HTMLResponse, summary="The gallery")
def gallery(request: Request, survey: Survey) -> Response:
    return survey.views.render(request, "gallery.html", {"galaxies": survey.page(1), "next_page": survey.next_page(1),
                                                         "k": 20})


@router.get("/gallery", response_class=HTMLResponse, summary="One page of gallery thumbnails (htmx partial)")
def gallery_page(request: Request, survey: Survey, page: Page = 1) -> Response:
    return survey.views.render(request, None, {"galaxies": survey.page(page), "next_page": survey.next_page(page),
                                               "k": 20}, fragment="gallery_page.html")


@router.get("/api/galaxies", summary="One page of galaxies (JSON)")
def list_galaxies(survey: Survey, page: Page = 1) -> dict:
    return {"page": page, "page_size": survey.settings.page_size, "total": len(survey.store),
            "next_page": survey.next_page(page), "galaxies": survey.page(page)}


@router.get("/healthz", summary="Liveness and what is loaded")
def healthz(survey: Survey) -> dict:
    return {"status": "ok", "galaxies": len(survey.store), "index": survey.index.manifest}
