"""FastAPI application: gallery pages, thumbnails and nearest-neighbour queries over one built workdir.

The index, store and database are opened once in ``create_app``; route handlers are plain ``def`` functions so
FastAPI runs them in its threadpool and a slow query never blocks the event loop.
"""


import gc
import re
from pathlib import Path
from typing import Annotated, Literal

import faiss
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from fastapi import FastAPI, HTTPException, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.anomaly_routes import AnomalyRanker, register_anomaly_routes
from app.db import Galaxy, init_db, make_engine, sync_galaxies
from app.errors import ErrorResponder, is_htmx, wants_html
from app.filters import catalog_mask
from app.measures import Measures
from app.settings import ServerSettings
from app.security import CONTENT_SECURITY_POLICY, Guard, register_sign_in_routes
from app.sky import SkyIndex, parse_position
from app.tag_routes import register_tag_routes
from app.tagging import EXPORT_FORMATS, table_bytes
from app.thumbs import ThumbnailCache, media_type
from app.web import AppContext, GalaxyId
from survey.checksum import file_sha256
from survey.workdir import EMBEDDING_IDS
from survey.store import Store
from frontend import STATIC_DIR, TEMPLATES_DIR, htmx_dir
from index_builder.anomaly import load as load_anomaly_scores
from index_builder.index import IndexMismatchError, load as load_index


# The Legacy Surveys sky viewer centred on a galaxy (DR10 images, zoomed to a few arcmin).
LEGACY_VIEWER = "https://www.legacysurvey.org/viewer?ra={ra:.6f}&dec={dec:.6f}&layer=ls-dr10&zoom=16"


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


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    # One thread per query: concurrent requests already use every core, and FAISS's OpenMP threads fighting over
    # them cost more than they give to a single k-NN query.
    faiss.omp_set_num_threads(1)
    workdir = Path(settings.workdir)
    store = Store(workdir / "store")
    model = workdir / "model.pt"
    index = load_index(workdir, file_sha256(model) if model.exists() else None,
                       max_memory_mb=settings.index_max_memory_mb)
    vectors = index.vectors  # the embeddings, memory-mapped once by the index loader
    if not np.array_equal(np.load(workdir / EMBEDDING_IDS), store.ids):
        raise IndexMismatchError(f"embeddings in {workdir} are not aligned with its store; re-run `galsearch embed`")
    anomaly = load_anomaly_scores(workdir, store.ids)
    measures = Measures.load(workdir, len(store))
    sessions = init_db(make_engine(settings.resolved_database_url()))
    sync_galaxies(sessions, store.catalog, store.ids)
    thumbs = ThumbnailCache(workdir / "thumbs", store)
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    page_size = settings.page_size

    app = FastAPI(title="galsearch", version="0.1.0",
                  description="Find look-alikes of a galaxy in a survey from self-supervised embeddings.")

    common = {"survey_count": len(store), "bands": store.bands, "dim": index.manifest["dim"],
              "auth": bool(settings.auth_token), "max_k": settings.max_k, "raster": store.raster}
    errors = ErrorResponder(templates, common)
    app.add_middleware(Guard, auth_token=settings.auth_token, max_body_bytes=settings.max_request_bytes,
                       errors=errors)
    app.mount("/static/htmx", StaticFiles(directory=htmx_dir()), name="htmx")
    app.mount("/static/app", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(StarletteHTTPException)
    def _refused(request: Request, exc: StarletteHTTPException) -> Response:
        return errors(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        given = [f" (got {e['input']!r:.80})" if isinstance(e.get("input"), str | int | float) else ""
                 for e in exc.errors()]
        message = "invalid request: " + "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}{g}"
                                                  for d, g in zip(details, given))
        return errors(request, 422, message, detail=details)

    @app.exception_handler(Exception)
    def _failed(request: Request, exc: Exception) -> Response:
        # Starlette calls this outside every middleware and re-raises afterwards, so the server logs the traceback;
        # the policy header is added here since the Guard does not see this response.
        return errors(request, 500, f"the server failed on this request ({type(exc).__name__}); its log has the "
                                    "details", {"content-security-policy": CONTENT_SECURITY_POLICY})

    def galaxy_or_404(galaxy_id: str) -> Galaxy:
        with sessions() as s:
            g = s.get(Galaxy, galaxy_id)
        if g is None:
            raise HTTPException(404, f"unknown galaxy id {galaxy_id!r}")
        return g

    def row_or_404(galaxy_id: str) -> int:
        """The galaxy's store row, from memory: the hottest routes (thumbnails, look-alikes) skip the database."""
        if galaxy_id not in index.row_of:
            raise HTTPException(404, f"unknown galaxy id {galaxy_id!r}")
        return index.row_of[galaxy_id]

    ra, dec = (np.asarray(store.catalog[c], float) if c in store.catalog.colnames else np.full(len(store), np.nan)
               for c in ("ra", "dec"))

    def coords_of(galaxy_id: str) -> dict:
        row = index.row_of[galaxy_id]
        return {"id": galaxy_id, "ra": float(ra[row]) if np.isfinite(ra[row]) else None,
                "dec": float(dec[row]) if np.isfinite(dec[row]) else None}

    def page_of(page: int) -> list[dict]:
        """One gallery page in survey order, from memory (every visitor's first request, and each scroll)."""
        rows = range((page - 1) * page_size, min(len(store), page * page_size))
        return [coords_of(str(index.ids[r])) for r in rows]

    def next_page(page: int) -> int | None:
        return page + 1 if page * page_size < len(store) else None

    @app.get("/", response_class=HTMLResponse, summary="The gallery")
    def gallery(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "gallery.html",
                                          {**common, "galaxies": page_of(1), "next_page": next_page(1), "k": 20})

    @app.get("/gallery", response_class=HTMLResponse, summary="One page of gallery thumbnails (htmx partial)")
    def gallery_page(request: Request, page: Annotated[int, Query(ge=1, le=10_000_000)] = 1) -> HTMLResponse:
        return templates.TemplateResponse(request, "gallery_page.html",
                                          {"galaxies": page_of(page), "next_page": next_page(page), "k": 20})

    @app.get("/api/galaxies", summary="One page of galaxies (JSON)")
    def list_galaxies(page: Annotated[int, Query(ge=1, le=10_000_000)] = 1) -> dict:
        return {"page": page, "page_size": page_size, "total": len(store), "next_page": next_page(page),
                "galaxies": page_of(page)}

    @app.get("/galaxies/{galaxy_id}", summary="A galaxy's catalog row (JSON), or its page in a browser")
    def galaxy(request: Request, galaxy_id: GalaxyId) -> Response:
        values = store.catalog[row_or_404(galaxy_id)]
        columns = {name: _json_scalar(values[name]) for name in store.catalog.colnames if np.ndim(values[name]) == 0}
        if measures is not None:
            columns.update(measures.of(row_or_404(galaxy_id)))
        if not wants_html(request.headers):
            return JSONResponse(columns)
        coords = coords_of(galaxy_id)
        position = None
        if coords["ra"] is not None:
            position = SkyCoord(coords["ra"], coords["dec"], unit="deg").to_string("hmsdms", sep=":", precision=2)
        return templates.TemplateResponse(request, "galaxy.html", {
            **common, "g": coords, "position": position, "columns": columns, "k": 20,
            "legacy_viewer": LEGACY_VIEWER.format(**coords) if position else None})

    @app.get("/galaxies/{galaxy_id}/image.png", summary=(
             "Colour thumbnail: a PNG/JPEG survey's own image (JPEG or PNG, as kept at ingest), else an asinh "
             "(Lupton) composite of the bands"),
             response_class=Response, responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
    def image(galaxy_id: GalaxyId) -> Response:
        picture = thumbs.get(row_or_404(galaxy_id))
        return Response(picture, media_type=media_type(picture), headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/galaxies/{galaxy_id}/bands/{band}.png", summary="One band in grey (asinh stretch)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def band_image(galaxy_id: GalaxyId, band: Annotated[str, PathParam(max_length=32)]) -> Response:
        row = row_or_404(galaxy_id)
        if band not in store.bands:
            raise HTTPException(404, f"no band {band!r}: this survey has {', '.join(store.bands)}")
        return Response(thumbs.band(row, store.bands.index(band)), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=86400"})

    sky = SkyIndex(ra, dec)
    common["has_sky"] = len(sky.rows) > 0

    def look_alikes(galaxy_id: str, k: int, where: list[str] | None = None,
                    distinct_arcsec: float | None = None) -> tuple[dict, list[dict]]:
        """The query's coordinates and its ``k`` look-alikes (coordinates come from memory, not the database:
        this is the route users hit hardest)."""
        row = row_or_404(galaxy_id)
        try:
            allowed = catalog_mask(store.catalog, where) if where else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        # Dropping repeated detections needs spare hits: fetch twice as many, keep the first k distinct ones.
        hits = index.similar(galaxy_id, 2 * k if distinct_arcsec else k, allowed)
        if distinct_arcsec:
            keep = set(sky.distinct(row, [index.row_of[g] for g, _ in hits], distinct_arcsec))
            hits = [h for h in hits if index.row_of[h[0]] in keep][:k]
        results = [{**coords_of(gid), "similarity": sim, "distance": float(np.sqrt(max(0.0, 2.0 - 2.0 * sim)))}
                   for gid, sim in hits]
        return coords_of(galaxy_id), results

    @app.get("/galaxies/{galaxy_id}/similar", summary="The k most similar galaxies (JSON, HTML for htmx, or a table)",
             responses={200: {"content": {m: {} for _, m, _ in EXPORT_FORMATS.values()}}})
    def similar(request: Request, galaxy_id: GalaxyId,
                k: Annotated[int, Query(ge=1, le=settings.max_k)] = 20,
                where: Annotated[list[str] | None, Query(max_length=200, description=(
                    "catalog conditions, all of which the look-alikes must meet, e.g. mag_r<=17.5 or "
                    "morphology!=artifact"))] = None,
                distinct_arcsec: Annotated[float | None, Query(gt=0, le=3600, description=(
                    "drop look-alikes closer than this to the query or to a better one (repeated detections of "
                    "one object)"))] = None,
                format: Annotated[Literal["json", "csv", "fits", "votable"], Query(
                    description="json (default), or a table file for TOPCAT/astropy")] = "json") -> Response:
        where = [w for w in where or [] if w.strip()]  # the panel's filter box sends an empty one
        query, results = look_alikes(galaxy_id, k, where, distinct_arcsec)
        if format != "json":
            table = Table(rows=[(i + 1, r["id"], r["ra"] if r["ra"] is not None else np.nan,
                                 r["dec"] if r["dec"] is not None else np.nan, r["similarity"], r["distance"])
                                for i, r in enumerate(results)],
                          names=("rank", "id", "ra", "dec", "similarity", "distance"),
                          dtype=(int, str, float, float, float, float))
            table["ra"].unit = table["dec"].unit = "deg"
            table.meta["query_id"] = galaxy_id
            if measures is not None:
                measures.add_columns(table, [index.row_of[r["id"]] for r in results])
            _, media, ext = EXPORT_FORMATS[format]
            safe_name = re.sub(r"[^A-Za-z0-9_.+\-]", "_", galaxy_id)  # ids may hold quotes and spaces
            return Response(table_bytes(table, format), media_type=media,
                            headers={"Content-Disposition": f'attachment; filename="similar_{safe_name}.{ext}"'})
        if is_htmx(request.headers):
            return templates.TemplateResponse(request, "similar.html", {
                **common, "query": query, "results": results, "k": k, "where": where})
        return JSONResponse({"query": query, "k": k, "metric": "cosine", "results": results})

    @app.get("/lookup", summary="The galaxy nearest a sky position (degrees or sexagesimal), and its look-alikes")
    def lookup(request: Request, ra: Annotated[str, Query(min_length=1, max_length=40)],
               dec: Annotated[str, Query(min_length=1, max_length=40)],
               radius: Annotated[float, Query(gt=0, le=3600, description="search radius in arcsec")] = 5.0,
               k: Annotated[int, Query(ge=1, le=settings.max_k)] = 20) -> Response:
        try:
            position = parse_position(ra, dec)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        if not common["has_sky"]:
            raise HTTPException(404, "this survey has no coordinates")
        found = sky.nearest(position, radius)
        if found is None:
            raise HTTPException(404, f"no galaxy within {radius:g} arcsec of RA {position.ra.deg:.5f}, "
                                     f"Dec {position.dec.deg:+.5f}")
        row, separation = found
        galaxy_id = str(index.ids[row])
        if is_htmx(request.headers):
            query, results = look_alikes(galaxy_id, k)
            return templates.TemplateResponse(request, "similar.html", {
                **common, "query": query, "results": results, "k": k, "where": []})
        return JSONResponse({**coords_of(galaxy_id), "separation_arcsec": separation})

    ctx = AppContext(sessions=sessions, templates=templates, vectors=vectors, galaxy_or_404=galaxy_or_404,
                     common=common, max_k=settings.max_k, measures=measures)
    register_tag_routes(app, ctx)
    register_sign_in_routes(app, templates, settings.auth_token, common)
    register_anomaly_routes(app, ctx, AnomalyRanker(anomaly["pca"], anomaly["combined"], settings.retrain_every,
                                                         settings.anomaly_method))

    @app.get("/healthz", summary="Liveness and what is loaded")
    def healthz() -> dict:
        return {"status": "ok", "galaxies": len(store), "index": index.manifest}

    # What start-up built (id maps, the catalog, the database's galaxies) lives as long as the server: kept out of
    # the collector's way, a full collection no longer walks millions of objects in the middle of a request.
    gc.collect()
    gc.freeze()
    return app
