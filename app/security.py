"""Guards in front of every route: request size limits, cross-site request forgery, optional write access control.

Tags and ratings are hours of expert work, so writes are what this protects:

- **Size.** URLs longer than ``max_url_bytes`` get 414 and request bodies larger than ``max_body_bytes`` get 413
  before any route reads them (a chunked body is counted as it arrives).
- **CSRF.** A browser sends cookies (the researcher's name, the sign-in) with every request, including forged
  ones from other sites, so a write from a browser must prove it comes from a galsearch page: requests that a
  browser marks cross-site (``Sec-Fetch-Site``, or an ``Origin`` that is not this host) are refused, and a
  write that carries any galsearch cookie must repeat the ``galsearch_csrf`` cookie's random value in the
  ``X-CSRF-Token`` header (double-submit: another site can neither read the cookie nor set the header). The
  gallery's scripts add the header to every htmx and fetch request. Scripts that send no cookies (curl, a
  notebook) have no ambient credentials to abuse and need no token.
- **Access.** With ``GALSEARCH_AUTH=<token>`` only holders of the token may write: ``Authorization: Bearer
  <token>``, or the HttpOnly cookie that ``POST /login`` sets in a browser. Reads stay public.

It is a plain ASGI middleware rather than ``@app.middleware("http")``: it sits on every request of the hottest
routes, and the function-style middleware costs a task and a stream copy per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from starlette.requests import Request, cookie_parser

from app.errors import ErrorResponder

CSRF_COOKIE = "galsearch_csrf"
CSRF_HEADER = "x-csrf-token"
AUTH_COOKIE = "galsearch_auth"
COOKIE_PREFIX = "galsearch_"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOGIN_PATH = "/login"
# Scripts, styles and everything else only from galsearch's own static files: no inline script, no inline event
# handler, no eval. A markup string that escaped escaping still cannot run.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def auth_cookie_value(token: str) -> str:
    """What the sign-in cookie holds: a keyed hash of the token, so the token itself never sits in a cookie."""
    return hmac.new(token.encode(), b"galsearch-sign-in", hashlib.sha256).hexdigest()


def token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def signed_in(headers: dict[str, str], cookies: dict[str, str], token: str | None) -> bool:
    """True when no token is configured, or the request holds it (bearer header or sign-in cookie)."""
    if not token:
        return True
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and token_matches(auth[7:].strip(), token):
        return True
    return token_matches(cookies.get(AUTH_COOKIE), auth_cookie_value(token))


def _cross_site(headers: dict[str, str]) -> bool:
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    host = headers.get("x-forwarded-host") or headers.get("host", "")  # behind a proxy, the public host
    return urlsplit(origin).netloc.lower() != host.split(",")[0].strip().lower()


class Guard:
    """ASGI middleware applying the rules in this module's docstring; also stamps ``Server-Timing``."""

    def __init__(self, app, auth_token: str | None, max_body_bytes: int, errors: ErrorResponder,
                 max_url_bytes: int = 8192) -> None:
        self.app = app
        self.errors = errors
        self.auth_token = auth_token or None
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        cookies = cookie_parser(headers.get("cookie", ""))  # the parser the routes see cookies through
        needs_csrf = CSRF_COOKIE not in cookies

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"server-timing", f"app;dur={(time.perf_counter() - t0) * 1000:.2f}".encode()),
                         *SECURITY_HEADERS]
                # On pages only (never on publicly cached images): readable by the page's scripts, which echo it;
                # never sent cross-site.
                if needs_csrf and dict(message.get("headers", [])).get(b"content-type", b"").startswith(b"text/html"):
                    token = secrets.token_urlsafe(32)  # drawn only here: the system's entropy is not free
                    extra.append((b"set-cookie", f"{CSRF_COOKIE}={token}; Path=/; SameSite=Strict".encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        refusal = self._refusal(scope, headers, cookies)
        if refusal is None and scope["method"] in UNSAFE_METHODS:
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                refusal = 413, f"request body larger than {self.max_body_bytes} bytes", {}
            else:
                receive = _replay(body, receive)
        if refusal is not None:
            await self.errors(Request(scope), *refusal)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope, headers: dict[str, str], cookies: dict[str, str]) -> tuple[int, str, dict] | None:
        """The status and message refusing this request, or None to let it through."""
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if url_bytes > self.max_url_bytes:
            return 414, f"URL longer than {self.max_url_bytes} bytes", {}
        if scope["method"] not in UNSAFE_METHODS:
            return None
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return 413, f"request body larger than {self.max_body_bytes} bytes", {}
        if _cross_site(headers):
            return 403, "cross-site write refused: send it from a galsearch page, or without browser cookies", {}
        if scope["path"] == LOGIN_PATH:  # signing in proves itself with the token
            return None
        if any(name.startswith(COOKIE_PREFIX) for name in cookies) and not (
                CSRF_COOKIE in cookies and token_matches(headers.get(CSRF_HEADER), cookies[CSRF_COOKIE])):
            return 403, (f"missing or wrong CSRF token: a request with galsearch cookies must send the "
                         f"{CSRF_COOKIE} cookie's value in the X-CSRF-Token header"), {}
        if not signed_in(headers, cookies, self.auth_token):
            return 401, "writing needs the access token: Authorization: Bearer <token>, or sign in at /login", {
                "www-authenticate": 'Bearer realm="galsearch"'}
        return None


async def _read_body(receive, limit: int) -> list[dict] | None:
    """The request's body messages, or None once it grows past ``limit`` bytes."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body"):
            return messages


def _replay(messages: list[dict], receive):
    pending = list(messages)

    async def replayed():
        return pending.pop(0) if pending else await receive()

    return replayed
