"""Signing in and out of the console: the authorization code flow with PKCE, the console
being the hub's public client (api/routes/authorize.py, api/routes/oauth.py).

/console/signin starts a flow: a fresh verifier and state, kept in a short-lived HttpOnly
cookie, and a redirect to the sign-in form. /console/callback checks the state (the sign-in
form's CSRF protection, RFC 6749 10.12), exchanges the code and verifier exactly as
POST /oauth/token does, and keeps the token in the session cookie. Signing out revokes it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.console.web import SESSION_COOKIE, guard, render, secure
from api.deps import AppState, Principal, StateDep
from api.errors import ApiError
from api.routes.oauth import code_token, deny_jti

router = APIRouter(include_in_schema=False)
FLOW_COOKIE = "hub_console_flow"
FLOW_SECONDS = 600
SIGNED_IN = guard()  # any signed-in person


@router.get("/console/signin")
async def sign_in(request: Request, state: StateDep, next: str = "/console/home") -> Response:
    """Start the authorization code flow (PKCE S256) towards the hub's own sign-in form."""
    verifier, flow_state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    query = urlencode({
        "response_type": "code", "client_id": state.settings.console_client_id,
        "redirect_uri": redirect_uri(request, state), "code_challenge": challenge,
        "code_challenge_method": "S256", "state": flow_state})
    response = RedirectResponse(f"/oauth/authorize?{query}", status_code=303)
    response.set_cookie(FLOW_COOKIE, f"{flow_state} {verifier} {_local(next)}",
                        max_age=FLOW_SECONDS, path="/console", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@router.get("/console/callback")
async def callback(request: Request, state: StateDep, code: str = "", error: str = "",
                   error_description: str = "") -> Response:
    """Back from the sign-in form: exchange the code for the person's token."""
    flow_state, verifier, next_path = _flow(request)
    if error:
        raise ApiError(400, "sign_in_failed", f"sign-in was refused: {error_description or error}")
    if not code or request.query_params.get("state") != flow_state:
        raise ApiError(400, "sign_in_expired", "this sign-in was started in another window or "
                       "too long ago: open Sign in again")
    form = {"code": code, "client_id": state.settings.console_client_id,
            "redirect_uri": redirect_uri(request, state), "code_verifier": verifier}
    issued = await code_token(request, state, form)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, issued.access_token, max_age=issued.expires_in,
                        path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    response.delete_cookie(FLOW_COOKIE, path="/console")
    return secure(response)


@router.post("/console/signout")
async def sign_out(request: Request, state: StateDep,
                   principal: Principal = SIGNED_IN) -> Response:
    """Revoke the session's token (as POST /oauth/revoke does) and forget the cookie."""
    claims = state.tokens.claims(request.cookies[SESSION_COOKIE])
    await run_in_threadpool(deny_jti, state, claims, request)
    state.revocations.forget()
    response = render(request, "signed_out.html", me=None)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/console/home")
async def home(principal: Principal = SIGNED_IN) -> Response:
    """Where a person lands after signing in: the first page their role may use."""
    for scope, page in (("datasets:read", "/console/catalog"), ("audit:read", "/console/audit"),
                        ("contracts:write", "/console/contracts")):
        if scope in principal.scopes:
            return RedirectResponse(page, status_code=303)
    return RedirectResponse("/", status_code=303)


def redirect_uri(request: Request, state: AppState) -> str:
    """The callback at the address the browser used, if registered (the default is the
    address `hub serve` listens on); else the first registered one."""
    registered = state.settings.redirect_uris()
    here = str(request.base_url).rstrip("/") + "/console/callback"
    return here if here in registered else sorted(registered)[0]


def _flow(request: Request) -> tuple[str, str, str]:
    parts = request.cookies.get(FLOW_COOKIE, "").split(" ")
    if len(parts) != 3:
        raise ApiError(400, "sign_in_expired", "this sign-in was started in another window or "
                       "too long ago: open Sign in again")
    return parts[0], parts[1], parts[2]


def _local(path: str) -> str:
    # Only a path of this console: never an address elsewhere (an open redirect).
    ok = path.startswith("/") and not path.startswith("//") and " " not in path
    return path if ok and "\\" not in path else "/console/home"
