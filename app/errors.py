"""Every refusal the server sends, in the form the asker reads: JSON for API clients, an HTML page for a browser,
an HTML partial for htmx.

A browser must never see raw JSON, and an error's message often carries what the user typed (a tag, a ``where=``
condition, a position): it reaches a page only through ``_error.html``, autoescaped like every template. htmx
requests get the partial retargeted (``HX-Retarget``) into the page's one error region, so an error never replaces
the form or panel that caused it, and looks the same wherever it came from.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

ERROR_REGION = "#errors"  # base.html's error region, where htmx swaps error partials


def is_htmx(headers: Mapping[str, str]) -> bool:
    return headers.get("hx-request") == "true"


def wants_html(headers: Mapping[str, str]) -> bool:
    """htmx requests and browsers get HTML; API clients (no ``text/html`` before JSON in Accept) get JSON."""
    if is_htmx(headers):
        return True
    accept = headers.get("accept", "")
    if "text/html" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/html") < accept.index("application/json")


class ErrorResponder:
    """Builds the response for one refusal (status + message) from the request's headers."""

    def __init__(self, templates: Jinja2Templates, common: dict) -> None:
        self.templates = templates
        self.common = common  # what base.html shows in its header

    def __call__(self, request: Request, status: int, message: str, headers: Mapping[str, str] | None = None,
                 detail: object = None) -> Response:
        """``detail`` replaces the message in the JSON body where API clients expect a structure (validation)."""
        headers = dict(headers or {})
        if not wants_html(request.headers):
            body = {"detail": message if detail is None else detail}
            if detail is not None:
                body["message"] = message
            return JSONResponse(body, status_code=status, headers=headers)
        context = {"message": message, "status": status}
        if is_htmx(request.headers):
            headers.update({"HX-Retarget": ERROR_REGION, "HX-Reswap": "innerHTML"})
            return self.templates.TemplateResponse(request, "_error.html", context, status_code=status,
                                                   headers=headers)
        return self.templates.TemplateResponse(request, "error.html", {**self.common, **context},
                                               status_code=status, headers=headers)


def install_handlers(app: FastAPI, errors: ErrorResponder, failure_headers: Mapping[str, str]) -> None:
    """Every refusal and failure of ``app`` answered by ``errors``; ``failure_headers`` go on an unexpected
    failure's answer, which no middleware sees."""

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
        # Starlette calls this outside every middleware and re-raises afterwards, so the server logs the traceback.
        return errors(request, 500, f"the server failed on this request ({type(exc).__name__}); its log has the "
                                    "details", failure_headers)
