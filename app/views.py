"""What the server renders: the templates, what every page's header shows, and the one rule for HTML or JSON.

A route answers JSON unless ``wants_html``: then a browser gets the route's page and htmx its fragment (the part
of the page it swaps in), or whichever of the two the route has.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates

from app.errors import ErrorResponder, is_htmx, wants_html
from frontend import TEMPLATES_DIR


class Views:
    def __init__(self, common: dict) -> None:
        self.templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
        # The templates ship with the package and never change under a running server. Jinja's default checks a
        # template's file time at every use (each thumbnail a page includes): a system call that hands the GIL
        # to another request's thread and waits to get it back, which under 32 concurrent clients made most of a
        # gallery page's time (py-spy, bench/serving).
        self.templates.env.auto_reload = False
        self.common = common  # survey size, bands, limits: what base.html and the forms show
        self.errors = ErrorResponder(self.templates, common)

    @staticmethod
    def wants_html(request: Request) -> bool:
        return wants_html(request.headers)

    def render(self, request: Request, page: str | None, context: dict, fragment: str | None = None,
               status_code: int = 200) -> Response:
        """The ``page`` template for a browser, the ``fragment`` one for htmx, or the one the route has.

        The context also carries ``fragment`` (true when the fragment is rendered), for templates that add
        out-of-band updates to it.
        """
        partial = fragment is not None and (page is None or is_htmx(request.headers))
        return self.templates.TemplateResponse(request, fragment if partial else page,
                                               {**self.common, **context, "fragment": partial},
                                               status_code=status_code)

    def respond(self, request: Request, data: dict, page: str | None = None, fragment: str | None = None) -> Response:
        """``data`` as JSON, or as the context of ``render`` when HTML is wanted (routes whose page shows exactly
        what their JSON holds)."""
        if self.wants_html(request):
            return self.render(request, page, data, fragment)
        return JSONResponse(data)
