"""The gallery: the survey's thumbnails page by page (HTML, htmx pages for the infinite scroll, or JSON), filtered
by catalog conditions, searched by id and sorted by a column, every choice kept in the URL so a view can be shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import Survey
from app.filters import MAX_CONDITIONS, OPERATORS, scalar_columns

router = APIRouter(tags=["gallery"])
Page = Annotated[int, Query(ge=1, le=10_000_000)]
# A catalog column's name; empty is the form's "none" choice.
Column = Annotated[str | None, Query(max_length=64, pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")]


@dataclass(frozen=True)
class GalleryView:
    """What one gallery view shows: the URL's query, parsed."""

    where: tuple[str, ...] = ()
    sort: str | None = None
    order: str = "asc"
    q: str | None = None
    show: str | None = None

    def query(self, **extra: object) -> str:
        """The view as a URL query string (plus ``extra``), for links and the next page."""
        pairs = [("where", w) for w in self.where] + [(k, v) for k, v in (
            ("sort", self.sort), ("order", self.order if self.sort else None), ("q", self.q), ("show", self.show),
            *extra.items()) if v]
        return urlencode(pairs)

    def without(self, condition: str) -> str:
        """The query string of this view less one condition (the builder's remove link)."""
        return GalleryView(tuple(w for w in self.where if w != condition), self.sort, self.order, self.q,
                           self.show).query()


def gallery_view(where: Annotated[list[str] | None, Query(max_length=200, description=(
                     "catalog conditions the galaxies must all meet, e.g. mag_r<=17.5 or morphology==spiral"))] = None,
                 sort: Column = None,
                 order: Annotated[Literal["asc", "desc"], Query(description="sort order")] = "asc",
                 q: Annotated[str | None, Query(max_length=64, description="part of the id, any case")] = None,
                 show: Column = None) -> GalleryView:
    return GalleryView(tuple(w.strip() for w in where or [] if w.strip())[:MAX_CONDITIONS + 1], sort or None,
                       order, (q or "").strip() or None, show or None)


View = Annotated[GalleryView, Depends(gallery_view)]


def _galleries(survey: Survey, view: GalleryView, page: int) -> dict:
    rows = survey.selection(list(view.where), view.sort, view.order == "desc", view.q)
    return {"galaxies": survey.page(page, rows, view.show), "next_page": survey.next_page(page, rows),
            "total": len(survey.store) if rows is None else len(rows)}


@router.get("/", response_class=HTMLResponse, summary="The gallery (filtered, searched and sorted as the URL says)")
def gallery(request: Request, survey: Survey, view: View,
            column: Column = None,
            op: Annotated[str | None, Query(max_length=2, description="the builder's operator")] = None,
            value: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    if column and op in OPERATORS and value is not None and value.strip():
        # The condition builder's form: fold its column, operator and value into the view's URL.
        added = GalleryView((*view.where, f"{column}{op}{value.strip()}"), view.sort, view.order, view.q, view.show)
        return RedirectResponse(f"/?{added.query()}", status_code=303)
    columns = scalar_columns(survey.store.catalog)
    return survey.views.render(request, "gallery.html", {**_galleries(survey, view, 1), "view": view, "k": 20,
                                                         "columns": columns, "operators": list(OPERATORS)})


@router.get("/gallery", response_class=HTMLResponse, summary="One page of gallery thumbnails (htmx partial)")
def gallery_page(request: Request, survey: Survey, view: View, page: Page = 1) -> Response:
    return survey.views.render(request, None, {**_galleries(survey, view, page), "view": view, "k": 20},
                               fragment="gallery_page.html")


@router.get("/api/galaxies", summary="One page of galaxies (JSON), filtered, searched and sorted as the gallery")
def list_galaxies(survey: Survey, view: View, page: Page = 1) -> dict:
    found = _galleries(survey, view, page)
    return {"page": page, "page_size": survey.settings.page_size, "total": found["total"],
            "next_page": found["next_page"], "galaxies": found["galaxies"]}


@router.get("/healthz", summary="Liveness and what is loaded")
def healthz(survey: Survey) -> dict:
    return {"status": "ok", "galaxies": len(survey.store), "index": survey.index.manifest}
