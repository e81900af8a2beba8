"""OAuth2 token endpoint (RFC 6749 4.4, client credentials) and the public signing keys."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import AppState, RequestIdDep, StateDep
from api.errors import ApiError
from api.security import issue_token
from hub.audit import AuditEvent, record
from hub.clients import Client, authenticate

router = APIRouter(tags=["oauth"])


@router.post("/oauth/token")
async def token(request: Request, state: StateDep, _rid: RequestIdDep) -> JSONResponse:
    """Exchange client credentials (HTTP Basic or form fields) for a signed access token."""
    form = await request.form()
    if form.get("grant_type") != "client_credentials":
        raise ApiError(400, "unsupported_grant_type",
                       "grant_type must be client_credentials (form-encoded)")
    client_id, secret = _credentials(request, form)
    client = await run_in_threadpool(_authenticate, state, client_id, secret)
    role = state.policy.roles.get(client.role) if client else None
    if client is None or role is None:
        await run_in_threadpool(_audit, state, AuditEvent(
            kind="token.denied", request_id=request.state.request_id, decision="deny",
            reason="unknown client or wrong secret", status_code=401, client_id=client_id,
            source_address=request.client.host if request.client else None))
        raise ApiError(401, "invalid_client", "unknown client or wrong secret",
                       {"WWW-Authenticate": 'Basic realm="civic-data-hub"'})
    scopes = _granted_scopes(str(form.get("scope") or ""), role.scopes)
    access_token, claims = issue_token(
        state.signing_key, state.settings, client_id=client.client_id, role=role.name,
        department=role.department, scopes=scopes)
    await run_in_threadpool(_audit, state, AuditEvent(
        kind="token.issued", request_id=request.state.request_id, decision="allow",
        reason="client credentials", status_code=200, client_id=client.client_id,
        role=role.name, department=role.department,
        source_address=request.client.host if request.client else None,
        detail={"jti": claims["jti"], "scope": claims["scope"], "exp": claims["exp"]}))
    body = {"access_token": access_token, "token_type": "Bearer",
            "expires_in": state.settings.token_ttl_seconds, "scope": " ".join(scopes)}
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.get("/.well-known/jwks.json")
def jwks(state: StateDep) -> dict:
    """Public keys that verify the hub's access tokens."""
    return state.keys.as_dict(private=False)


def _audit(state: AppState, event: AuditEvent) -> None:
    with state.pool.connection() as conn:
        record(conn, event)


def _authenticate(state: AppState, client_id: str, secret: str) -> Client | None:
    with state.pool.connection() as conn:
        return authenticate(conn, client_id, secret)


def _credentials(request: Request, form: dict) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(400, "invalid_request", "malformed Basic credentials") from None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    if form.get("client_id") and form.get("client_secret"):
        return str(form["client_id"]), str(form["client_secret"])
    raise ApiError(401, "invalid_client", "send client_id and client_secret (HTTP Basic or form)",
                   {"WWW-Authenticate": 'Basic realm="civic-data-hub"'})


def _granted_scopes(requested: str, allowed: frozenset[str]) -> list[str]:
    wanted = set(requested.split()) if requested else set(allowed)
    extra = wanted - allowed
    if extra:
        raise ApiError(400, "invalid_scope", f"scope {' '.join(sorted(extra))} is not allowed "
                       f"for this client's role; allowed: {' '.join(sorted(allowed))}")
    return sorted(wanted)
