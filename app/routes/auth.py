"""Who is asking: the researcher's name (a cookie recorded with tags and ratings) and, when ``GALSEARCH_AUTH``
is set, signing in with the access token (``app.security`` checks it on every write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.deps import WHO_COOKIE, WHO_PATTERN, Survey
from app.security import AUTH_COOKIE, LOGIN_PATH, auth_cookie_value, token_matches

router = APIRouter(tags=["auth"])


@router.post("/who", summary="Set the researcher name recorded with tags and decisions (a cookie)")
def set_who(name: Annotated[str, Form(pattern=WHO_PATTERN)]) -> Response:
    resp = JSONResponse({"who": name.strip()})
    resp.set_cookie(WHO_COOKIE, name.strip(), max_age=365 * 86400, samesite="lax")
    return resp


def _token(survey: Survey) -> str:
    """The access token; 404 when access control is off."""
    if not survey.settings.auth_token:
        raise HTTPException(404, "access control is off: anyone may write (set GALSEARCH_AUTH to require a token)")
    return survey.settings.auth_token


@router.get(LOGIN_PATH, response_class=HTMLResponse, summary="Sign-in form (when writes need the access token)")
def login_form(request: Request, survey: Survey) -> Response:
    _token(survey)
    return survey.views.render(request, "login.html", {"error": None})


@router.post(LOGIN_PATH, summary="Sign in with the access token: sets the sign-in cookie")
def login(request: Request, survey: Survey,
          token_given: Annotated[str, Form(alias="token", max_length=512)]) -> Response:
    expected = _token(survey)
    html = survey.views.wants_html(request)
    if not token_matches(token_given, expected):
        if html:
            return survey.views.render(request, "login.html", {"error": "wrong token"}, status_code=401)
        raise HTTPException(401, "wrong token")
    resp: Response = RedirectResponse("/", status_code=303) if html else JSONResponse({"signed_in": True})
    resp.set_cookie(AUTH_COOKIE, auth_cookie_value(expected), max_age=30 * 86400, httponly=True, samesite="strict")
    return resp


@router.post("/logout", summary="Sign out (drops the sign-in cookie)")
def logout() -> JSONResponse:
    resp = JSONResponse({"signed_in": False})
    resp.delete_cookie(AUTH_COOKIE)
    return resp
