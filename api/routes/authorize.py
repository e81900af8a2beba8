"""Authorization code grant with PKCE (RFC 6749 4.1, RFC 7636 S256) for people signing in
to the console, a public client with no secret.

GET shows the sign-in form; POST checks the password and redirects back with a single-use
code, bound to the client, the redirect URI and the PKCE challenge. POST /oauth/token
(routes/oauth.py) exchanges it, with the verifier, for an access token whose subject is
`user:<name>` and whose role is the user's. Errors a redirect could leak (unknown client,
unregistered redirect URI) are shown here, never sent to the URI.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg.rows import dict_row
from starlette.concurrency import run_in_threadpool

from api.deps import (
    AppState,
    RequestIdDep,
    StateDep,
    client_address,
    record_now,
    request_event,
)
from api.errors import ApiError
from hub.users import check_password

router = APIRouter(tags=["oauth"])
PARAMS = ("response_type", "client_id", "redirect_uri", "code_challenge",
          "code_challenge_method", "state", "scope")


SENT_BACK = {303: {"description": "Back to redirect_uri with ?code= (and state=), or with "
                   "?error= when the request is refused (RFC 6749 4.1.2)",
                   "headers": {"Location": {"schema": {"type": "string"}}}}}


@router.get("/oauth/authorize", response_class=HTMLResponse, responses=SENT_BACK)
def authorize_form(request: Request, state: StateDep, _rid: RequestIdDep) -> Response:
    """The console's sign-in page (authorization request, RFC 6749 4.1.1)."""
    params = {k: request.query_params.get(k, "") for k in PARAMS}
    return _checked(state, params) or _form(params)


@router.post("/oauth/authorize", response_class=HTMLResponse, responses=SENT_BACK | {
    401: {"description": "Unknown user or wrong password: the form again, saying so",
          "content": {"text/html": {"schema": {"type": "string"}}}},
}, openapi_extra={"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
        name: {"type": "string"} for name in ("username", "password", *PARAMS)}}}}}})
async def authorize(request: Request, state: StateDep, _rid: RequestIdDep) -> Response:
    """Check the user's password; redirect back with a code, or show the form again."""
    form = await request.form()
    params = {k: str(form.get(k) or "") for k in PARAMS}
    refused = _checked(state, params)
    if refused is not None:
        return refused
    username = str(form.get("username") or "")
    address = client_address(request)
    throttled = await _throttled(request, state, params, username, address)
    if throttled is not None:
        return throttled
    role = await run_in_threadpool(_password_ok, state, username, str(form.get("password") or ""))
    if role is None:
        await state.signin.failed(username, address)
        await record_now(state, request_event(
            request, "login.denied", decision="deny", reason="unknown user or wrong password",
            status_code=401, client_id=f"user:{username}"))
        return _form(params, "Unknown user or wrong password.", 401)
    await state.signin.succeeded(username)
    code = await run_in_threadpool(_new_code, state, params, username)
    query = urlencode({"code": code, **({"state": params["state"]} if params["state"] else {})})
    return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=303)


async def _throttled(request: Request, state: AppState, params: dict[str, str],
                     username: str, address: str | None) -> Response | None:
    """The form again with 429 when this user or address failed too often (audited)."""
    wait = await state.signin.wait(username, address)
    if wait is None:
        return None
    await record_now(state, request_event(
        request, "login.denied", decision="deny", reason="too many failed sign-ins",
        status_code=429, client_id=f"user:{username}"))
    minutes = max(1, round(wait / 60))
    return _form(params, "Too many failed sign-ins for this user or from this address: wait "
                 f"about {minutes} minute(s), then try again.", 429, {"Retry-After": str(wait)})


def redeem_code(state: AppState, form: dict[str, Any]) -> tuple[str, str, str, dict]:
    """(username, role, scope, attributes) for a valid code and verifier; ApiError
    invalid_grant if not.
    The code is spent by this call whatever the outcome."""
    code_hash = _hash(str(form.get("code") or ""))
    with state.pool.connection() as conn, conn.transaction(), \
            conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select c.client_id, c.username, c.redirect_uri, c.code_challenge, c.scope,"
            " c.expires_at, c.used_at, u.role, u.attributes from hub.auth_codes c"
            " left join hub.users u using (username) where c.code_hash = %s for update of c",
            [code_hash]).fetchone()
        cur.execute("update hub.auth_codes set used_at = coalesce(used_at, now())"
                    " where code_hash = %s", [code_hash])
    problem = _code_problem(row, form)
    if problem or not row["role"]:
        raise ApiError(400, "invalid_grant", problem or "the user no longer exists")
    return row["username"], row["role"], row["scope"], row["attributes"] or {}


def _code_problem(row: dict[str, Any] | None, form: dict[str, Any]) -> str | None:
    if row is None:
        return "unknown authorization code"
    if row["used_at"] is not None:
        return "the authorization code was already used"
    if row["expires_at"] < datetime.now(UTC):
        return "the authorization code expired; sign in again"
    if (form.get("client_id"), form.get("redirect_uri")) != (row["client_id"],
                                                             row["redirect_uri"]):
        return "client_id and redirect_uri must be those of the authorization request"
    if _challenge(str(form.get("code_verifier") or "")) != row["code_challenge"]:
        return "code_verifier does not match the code_challenge (PKCE, S256)"
    return None


def _checked(state: AppState, params: dict[str, str]) -> Response | None:
    """None if the request may proceed; else the error page or the error redirect."""
    if params["client_id"] != state.settings.console_client_id:
        raise ApiError(400, "invalid_request", f"unknown client {params['client_id']!r}")
    if params["redirect_uri"] not in _redirect_uris(state):
        raise ApiError(400, "invalid_request", "redirect_uri is not registered for this client")
    if params["response_type"] != "code":
        return _error_redirect(params, "unsupported_response_type", "response_type=code")
    if params["code_challenge_method"] != "S256" or len(params["code_challenge"]) < 43:
        return _error_redirect(params, "invalid_request", "PKCE is required: "
                               "code_challenge (43+ chars) with code_challenge_method=S256")
    return None


def _redirect_uris(state: AppState) -> set[str]:
    return state.settings.redirect_uris()


def _error_redirect(params: dict[str, str], error: str, description: str) -> Response:
    query = {"error": error, "error_description": description}
    if params["state"]:
        query["state"] = params["state"]
    return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=303)


def _password_ok(state: AppState, username: str, password: str) -> str | None:
    with state.pool.connection() as conn:
        return check_password(conn, username, password)


def _new_code(state: AppState, params: dict[str, str], username: str) -> str:
    code = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=state.settings.auth_code_ttl_seconds)
    with state.pool.connection() as conn:
        conn.execute(
            "insert into hub.auth_codes (code_hash, client_id, username, redirect_uri,"
            " code_challenge, scope, expires_at) values (%s, %s, %s, %s, %s, %s, %s)",
            [_hash(code), params["client_id"], username, params["redirect_uri"],
             params["code_challenge"], params["scope"], expires])
    return code


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _form(params: dict[str, str], message: str = "", status: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                     for k, v in params.items())
    note = f'<p class="alert" role="alert">{html.escape(message)}</p>' if message else ""
    # The console's look (api/console/static): the same page whether or not it is used.
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Sign in - Civic Data Hub</title>"
        '<link rel="stylesheet" href="/console/static/console.css"></head>'
        '<body><main class="signin"><h1>Civic Data Hub</h1><h2>Sign in</h2>'
        f'{note}<form method="post" action="/oauth/authorize">{hidden}'
        '<label for="username">Username</label>'
        '<input id="username" name="username" autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form></main></body></html>',
        status_code=status, headers=headers)
