"""The FastAPI application over one built workdir: open its resources once, guard every request, mount the
gallery's static files and include one router per resource.

Route handlers are plain ``def`` functions so FastAPI runs them in its threadpool and a slow query never blocks
the event loop.
"""

from __future__ import annotations

import gc

import faiss
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.errors import install_handlers
from app.resources import Resources
from app.routes import anomalies, auth, galaxies, gallery, sky, survey_map, tags
from app.security import CONTENT_SECURITY_POLICY, Guard
from app.settings import ServerSettings
from frontend import STATIC_DIR, htmx_dir

ROUTERS = (gallery.router, galaxies.router, sky.router, tags.router, anomalies.router, survey_map.router,
           auth.router)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    # One thread per query: concurrent requests already use every core, and FAISS's OpenMP threads fighting over
    # them cost more than they give to a single k-NN query.
    faiss.omp_set_num_threads(1)
    resources = Resources.open(settings or ServerSettings())
    app = FastAPI(title="galsearch", version="0.1.0",
                  description="Find look-alikes of a galaxy in a survey from self-supervised embeddings.")
    app.state.resources = resources
    app.add_middleware(Guard, auth_token=resources.settings.auth_token,
                       max_body_bytes=resources.settings.max_request_bytes, errors=resources.views.errors)
    # An unexpected failure's answer bypasses the Guard, so it gets the policy header here.
    install_handlers(app, resources.views.errors, {"content-security-policy": CONTENT_SECURITY_POLICY})
    app.mount("/static/htmx", StaticFiles(directory=htmx_dir()), name="htmx")
    app.mount("/static/app", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)
    # What start-up built (id maps, the catalog, the database's galaxies) lives as long as the server: kept out of
    # the collector's way, a full collection no longer walks millions of objects in the middle of a request.
    gc.collect()
    gc.freeze()
    return app
