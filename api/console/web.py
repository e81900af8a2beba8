"""What every console page shares: templates, the signed-in person, CSRF and error pages.

The console keeps the person's access token in an HttpOnly, SameSite=Lax cookie (Secure
over TLS). SessionBridge hands it to the console's routes as the bearer token, so each page
authenticates exactly as an API request does (signature, expiry, revocation) and calls the
very functions the API routes call. Only console paths get the bridge: an API route never
takes the cookie, so a forged cross-site request to the API carries no identity.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import Principal, StateDep, authenticate
from api.errors import ApiError, ensure_request_id, forbidden

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
SESSION_COOKIE = "hub_console"
CSRF_FIELD = "csrf_token"
# Pages are same-origin only: no outside script, style, frame or form target.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
NEXT_STEP = {
    400: "Check what you entered, change it and send it again.",
    403: "Ask your department's data admin for access, or sign in as someone who has it.",
    404: "Check the address, or start again from the catalog.",
    409: "Reload the page to see the current state, then try again.",
    429: "Wait a minute, then try again.",
}


def is_console(path: str) -> bool:
    return path == "/" or path == "/console" or path.startswith("/console/")


class SessionBridge:
    """ASGI middleware: on console paths, the session cookie becomes the bearer token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_console(scope["path"]):
            headers = list(scope["headers"])
            names = {name for name, _ in headers}
            cookies = b"; ".join(v for n, v in headers if n == b"cookie").decode("latin-1")
            token = cookie_parser(cookies).get(SESSION_COOKIE)
            if token and b"authorization" not in names:
                headers.append((b"authorization", f"Bearer {token}".encode("latin-1")))
                scope = dict(scope, headers=headers)
        await self.app(scope, receive, send)


def csrf_token(request: Request) -> str:
    """The form token of this session: an HMAC of the session's token, which a page of
    another site can neither read (HttpOnly cookie) nor compute (server key)."""
    session = request.cookies.get(SESSION_COOKIE, "")
    if not session:
        return ""
    key = request.app.state.hub.pseudonym_key
    return hmac.new(key, b"console-csrf\0" + session.encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> None:
    form = await request.form()  # starlette keeps it: the route reads the same form
    sent = str(form.get(CSRF_FIELD) or "")
    expected = csrf_token(request)
    if not expected or not hmac.compare_digest(sent, expected):
        raise forbidden("this form was sent without its security token, or with a stale one "
                        "(from before you signed in again): reload the page and send it again",
                        "csrf_refused")


def guard(*scopes: str) -> Any:
    """A dependency: the signed-in person (else the sign-in page), holding one of `scopes`
    (else the 403 page); a POST must carry the session's CSRF token."""
    async def check(request: Request, state: StateDep) -> Principal:
        principal = await authenticate(request, state)
        if scopes and not principal.scopes & set(scopes):
            raise forbidden(f"this page needs scope {' or '.join(scopes)}; your role "
                            f"{principal.role} has {' '.join(sorted(principal.scopes))}",
                            "insufficient_scope")
        if request.method == "POST":
            await check_csrf(request)
        return principal

    check.console_scopes = scopes  # read by the route sweep test: no page goes unguarded
    return Depends(check)


async def signed_in_or_none(request: Request) -> Principal | None:
    """The person, when a valid session is present; public pages show a sign-in link."""
    if not request.headers.get("authorization"):
        return None
    try:
        return await authenticate(request, request.app.state.hub)
    except ApiError:
        return None


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    me = getattr(request.state, "principal", None)
    page = TEMPLATES.TemplateResponse(request, name, {
        "me": me, "csrf": csrf_token(request), "csrf_field": CSRF_FIELD,
        "request_id": ensure_request_id(request), **context}, status_code=status)
    secure(page)
    return page


def secure(response: Response) -> Response:
    response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})
    return response


def error_page(request: Request, error: ApiError) -> Response | None:
    """The console's answer to an error on its paths: signed out -> the sign-in page,
    otherwise a page saying what went wrong and what to do. None for API paths."""
    if not is_console(request.url.path):
        return None
    if error.status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/signin?next={quote(target)}", status_code=303)
    step = NEXT_STEP.get(error.status, "Try again in a moment; if it keeps failing, quote "
                         "the request id to the hub's operators.")
    return render(request, "error.html", error.status, error=error, next_step=step)
