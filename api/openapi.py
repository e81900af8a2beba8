"""What /openapi.json says about authentication: the hub's OAuth2 bearer scheme, and which
routes need a token with which scopes.

The routes check tokens themselves (api/deps.py: `authenticate`, `scoped`), with their own
error bodies and no per-request cost here; this module only documents those checks. A
route's requirement lists its scopes as alternatives, one requirement per scope, since
OpenAPI asks for every scope within one requirement and for any one of the requirements.
tests/test_openapi.py holds each documented scope against what the route accepts.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.models import (
    OAuth2,
    OAuthFlowAuthorizationCode,
    OAuthFlowClientCredentials,
    OAuthFlows,
)

from access_policies.model import KNOWN_SCOPES
from api.errors import ErrorBody

BEARER = "hub_oauth2"  # the scheme's name in components.securitySchemes
TOKEN_URL = "/oauth/token"
AUTHORIZE_URL = "/oauth/authorize"
SCOPE_NOTES = {
    "datasets:read": "read the datasets your role holds a grant on; ask for access",
    "contracts:write": "register your department's data contracts",
    "grants:admin": "decide access requests for your department's datasets",
    "audit:read": "search the audit log; access reports and anomaly flags",
}


def token_scopes(*any_of: str) -> dict[str, Any]:
    """A route's `openapi_extra`: it needs an access token holding any one of these scopes."""
    return {"security": [{BEARER: [scope]} for scope in any_of]}


def scheme() -> dict[str, Any]:
    """The bearer scheme: tokens from client credentials, or from the console's sign-in
    (authorization code with PKCE)."""
    scopes = {s: SCOPE_NOTES.get(s, s) for s in sorted(KNOWN_SCOPES)}
    model = OAuth2(
        description="Send the access token as `Authorization: Bearer <token>`. Without "
                    "one (or with a bad one) a route answers 401 with a WWW-Authenticate "
                    "challenge; with a token lacking the scope, 403 insufficient_scope.",
        flows=OAuthFlows(
            clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_URL, scopes=scopes),
            authorizationCode=OAuthFlowAuthorizationCode(
                authorizationUrl=AUTHORIZE_URL, tokenUrl=TOKEN_URL, scopes=scopes)))
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def install(app: FastAPI) -> None:
    """Add the scheme and the error body (api/errors.py) to the app's OpenAPI document,
    which FastAPI builds on first use."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()  # FastAPI keeps it as app.openapi_schema
            components = document.setdefault("components", {})
            components.setdefault("securitySchemes", {})[BEARER] = scheme()
            schemas = components.setdefault("schemas", {})
            schemas[ErrorBody.__name__] = ErrorBody.model_json_schema()
        return app.openapi_schema

    app.openapi = openapi  # FastAPI's documented way to extend the document
