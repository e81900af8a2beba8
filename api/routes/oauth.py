"""OAuth2 token endpoint (RFC 6749: client credentials 4.4, and the console's authorization
code 4.1 with PKCE), revocation, introspection, metadata and the public signing keys."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from access_policies import Role
from access_policies.model import KNOWN_SCOPES
from api.deps import AppState, RequestIdDep, StateDep, record_now, request_event
from api.errors import ApiError
from api.models import (
    Introspection,
    PublicKeys,
    Revoked,
    ServerMetadata,
    TokenResponse,
)
from api.revocations import is_revoked
from api.routes.authorize import redeem_code
from api.security import issue_token
from hub.audit import record
from hub.clients import Client, authenticate

router = APIRouter(tags=["oauth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenForm(BaseModel):
    """The token request (form-encoded). A confidential client authenticates with HTTP
    Basic or client_id and client_secret here."""

    grant_type: str = Field(description="client_credentials or authorization_code")
    scope: str | None = Field(None, description="space-separated; default: all of the role's")
    client_id: str | None = None
    client_secret: str | None = None
    code: str | None = Field(None, description="authorization_code: the code from sign-in")
    redirect_uri: str | None = Field(None, description="authorization_code: as signed in")
    code_verifier: str | None = Field(None, description="authorization_code: PKCE verifier")


class TokenInForm(BaseModel):
    """A token to revoke or introspect (form-encoded), sent by an authenticated client
    (HTTP Basic, or client_id and client_secret here)."""

    token: str
    client_id: str | None = None
    client_secret: str | None = None


def form_body(model: type[BaseModel]) -> dict[str, Any]:
    """openapi_extra documenting a form-encoded body, which the route reads itself."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": schema}}}}


@router.post("/oauth/token", openapi_extra=form_body(TokenForm))
async def token(request: Request, state: StateDep, response: Response,
                _rid: RequestIdDep) -> TokenResponse:
    """Exchange client credentials (HTTP Basic or form fields), or the console's code and
    PKCE verifier, for a signed access token."""
    form = await request.form()
    response.headers.update(NO_STORE)
    if form.get("grant_type") == "authorization_code":
        return await code_token(request, state, form)
    if form.get("grant_type") != "client_credentials":
        raise ApiError(400, "unsupported_grant_type", "grant_type must be client_credentials "
                       "or authorization_code (form-encoded)")
    client, role = await _client(request, state, form)
    scopes = _granted_scopes(str(form.get("scope") or ""), role.scopes)
    access_token, claims = issue_token(
        state.signing_key, state.settings, client_id=client.client_id, role=role.name,
        department=role.department, scopes=scopes,
        attributes={**client.attributes, **role.attributes})
    await record_now(state, request_event(
        request, "token.issued", decision="allow", reason="client credentials",
        status_code=200, client_id=client.client_id, role=role.name,
        department=role.department,
        detail={"jti": claims["jti"], "scope": claims["scope"], "exp": claims["exp"]}))
    return _issued(state, access_token, scopes)


async def code_token(request: Request, state: AppState, form: Any) -> TokenResponse:
    """The console's code, with its PKCE verifier, for a token of the signed-in user."""
    username, role_name, scope, attributes = await run_in_threadpool(redeem_code, state,
                                                                     dict(form))
    role = state.policy.roles.get(role_name)
    if role is None:
        raise ApiError(400, "invalid_grant", f"the user's role {role_name!r} is not in the "
                       "access policies")
    scopes = _granted_scopes(scope, role.scopes)
    subject = f"user:{username}"
    access_token, claims = issue_token(
        state.signing_key, state.settings, client_id=subject, role=role.name,
        department=role.department, scopes=scopes,
        attributes={**attributes, **role.attributes})
    await record_now(state, request_event(
        request, "token.issued", decision="allow", reason="authorization code with PKCE",
        status_code=200, client_id=subject, role=role.name, department=role.department,
        detail={"jti": claims["jti"], "scope": claims["scope"], "exp": claims["exp"],
                "console_client": state.settings.console_client_id}))
    return _issued(state, access_token, scopes)


def _issued(state: AppState, access_token: str, scopes: list[str]) -> TokenResponse:
    return TokenResponse(access_token=access_token, token_type="Bearer",
                         expires_in=state.settings.token_ttl_seconds, scope=" ".join(scopes))


@router.post("/oauth/revoke", openapi_extra=form_body(TokenInForm))
async def revoke(request: Request, state: StateDep, response: Response,
                 _rid: RequestIdDep) -> Revoked:
    """RFC 7009: the client revokes one of its own access tokens (its `jti` is denied)."""
    form = await request.form()
    response.headers.update(NO_STORE)
    client, role = await _client(request, state, form)
    claims = _claims_or_none(state, str(form.get("token") or ""))
    if claims is None:  # RFC 7009 2.2: an invalid or expired token needs no revoking
        return Revoked()
    if claims["sub"] != client.client_id:
        raise ApiError(400, "unauthorized_client", "the token was not issued to this client")
    await run_in_threadpool(deny_jti, state, claims, request)
    state.revocations.forget()  # this worker at once; the others when notified
    return Revoked()


# Unset fields are left out: an inactive token's answer is {"active": false} alone.
@router.post("/oauth/introspect", openapi_extra=form_body(TokenInForm),
             response_model_exclude_none=True)
async def introspect(request: Request, state: StateDep, response: Response,
                     _rid: RequestIdDep) -> Introspection:
    """RFC 7662: whether a token is active, and its claims, for an authenticated client."""
    form = await request.form()
    response.headers.update(NO_STORE)
    await _client(request, state, form)
    claims = _claims_or_none(state, str(form.get("token") or ""))
    if claims is None or await _revoked_now(state, claims):
        return Introspection(active=False)
    return Introspection.model_validate({"active": True, "token_type": "Bearer", **claims})


@router.get("/.well-known/oauth-authorization-server")
def metadata(state: StateDep) -> ServerMetadata:
    """RFC 8414 authorization server metadata."""
    base = state.settings.token_issuer.rstrip("/")
    return ServerMetadata.model_validate({
        "issuer": state.settings.token_issuer,
        "token_endpoint": f"{base}/oauth/token",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic",
                                                       "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "scopes_supported": sorted(KNOWN_SCOPES),
        "response_types_supported": ["code"],
    })


@router.get("/.well-known/jwks.json")
def jwks(state: StateDep) -> PublicKeys:
    """Public keys that verify the hub's access tokens."""
    return PublicKeys.model_validate(state.keys.as_dict(private=False))


async def _client(request: Request, state: AppState, form: dict) -> tuple[Client, Role]:
    """The authenticated client and its role, or 401 invalid_client (audited)."""
    client_id, secret = _credentials(request, form)
    client = await run_in_threadpool(_authenticate, state, client_id, secret)
    role = state.policy.roles.get(client.role) if client else None
    if client is None or role is None:
        await record_now(state, request_event(
            request, "token.denied", decision="deny", reason="unknown client or wrong secret",
            status_code=401, client_id=client_id))
        raise ApiError(401, "invalid_client", "unknown client or wrong secret",
                       {"WWW-Authenticate": 'Basic realm="civic-data-hub"'})
    return client, role


def _claims_or_none(state: AppState, token: str) -> dict | None:
    try:
        return state.tokens.claims(token)
    except ApiError:
        return None


def deny_jti(state: AppState, claims: dict, request: Request) -> None:
    with state.pool.connection() as conn:
        conn.execute("insert into hub.revoked_tokens (jti, client_id, expires_at)"
                     " values (%s, %s, to_timestamp(%s)) on conflict do nothing",
                     [claims["jti"], claims["sub"], claims["exp"]])
        record(conn, request_event(
            request, "token.revoked", decision="allow", reason="revoked by its client",
            status_code=200, client_id=claims["sub"], role=claims.get("role"),
            detail={"jti": claims["jti"]}))


async def _revoked_now(state: AppState, claims: dict) -> bool:
    # Introspection is the authoritative answer: the warehouse's, not a worker's memory.
    async with state.apool.connection() as conn:
        return await is_revoked(conn, claims["jti"], claims["sub"])


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
