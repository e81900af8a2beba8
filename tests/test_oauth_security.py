"""OAuth2 and JWT attacks, revocation, introspection, metadata, and a sweep of every route.

Every crafted token below must be rejected with 401; every protected route must answer
401 without a token and 403 with a valid token that carries no scope.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import time

import httpx
import psycopg
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from hub import ledger
from tests.conftest import bearer, count, token_for

ROWS = "/datasets/public_works.service_requests/rows"
PUBLIC = {"/oauth/token", "/oauth/revoke", "/oauth/introspect", "/.well-known/jwks.json",
          "/oauth/authorize",
          "/.well-known/oauth-authorization-server", "/transparency/report"}
# Open data (api/routes/open_data.py): anyone's, by design.
PUBLIC |= {"/open/datasets", "/open/datasets/{dataset_id}"}


SUBJECT = {}  # a real client's id, set by the fixture below: only the attack explains a 401
# The DCAT-AP catalog and residents' feedback (docs/open-catalog.md): anyone's, by design.
PUBLIC |= {"/open/catalog", "/open/feedback"}


@pytest.fixture(autouse=True)
def real_subject(credentials):
    SUBJECT["sub"] = credentials["public_works_engineer"][0]


def claims_for(settings, **changes) -> dict:
    now = int(time.time())
    base = {"iss": settings.token_issuer, "aud": settings.audience, "sub": SUBJECT["sub"],
            "client_id": SUBJECT["sub"], "iat": now, "nbf": now, "exp": now + 300,
            "jti": f"attack-{time.time_ns()}", "scope": "datasets:read",
            "role": "public_works_engineer", "department": "public_works"}
    return {k: v for k, v in (base | changes).items() if v is not None}


def signed(app_client, claims: dict, **header) -> str:
    key = app_client.app.state.hub.signing_key
    return jwt.encode({"alg": "ES256", "kid": key.kid} | header, claims, key)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none(app_client, settings) -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_for(settings))}."


def _hs256_with_public_key(app_client, settings) -> str:
    # Forged by hand, as an attacker would: joserfc itself refuses to build such a key.
    public = app_client.app.state.hub.signing_key.as_pem(private=False)
    kid = app_client.app.state.hub.signing_key.kid
    signing_input = f"{b64({'alg': 'HS256', 'kid': kid})}.{b64(claims_for(settings))}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _tampered(app_client, settings) -> str:
    header, payload, signature = signed(app_client, claims_for(settings)).split(".")
    raised = claims_for(settings, role="auditor", scope="datasets:read audit:read")
    return f"{header}.{b64(raised)}.{signature}"


def _unknown_kid(app_client, settings) -> str:
    other = ECKey.generate_key("P-256", auto_kid=True)
    return jwt.encode({"alg": "ES256", "kid": other.kid}, claims_for(settings), other)


ATTACKS = {
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "tampered payload": _tampered,
    "unknown kid": _unknown_kid,
    "expired": lambda c, s: signed(c, claims_for(s, exp=int(time.time()) - 60)),
    "not yet valid": lambda c, s: signed(c, claims_for(s, nbf=int(time.time()) + 600)),
    "wrong issuer": lambda c, s: signed(c, claims_for(s, iss="https://evil.example")),
    "wrong audience": lambda c, s: signed(c, claims_for(s, aud="another-api")),
    "no jti": lambda c, s: signed(c, claims_for(s, jti=None)),
    "garbage": lambda c, s: "not.a.jwt",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_crafted_tokens_are_rejected(app_client, settings, attack):
    token = ATTACKS[attack](app_client, settings)
    response = app_client.get(ROWS, headers=bearer(token))
    assert response.status_code == 401, (attack, response.text)
    assert response.json()["error"] == "invalid_token"


def test_a_well_formed_token_of_ours_is_accepted(app_client, settings):
    # The control for the attacks above: the same claims, honestly signed, do work.
    response = app_client.get(ROWS, params={"limit": 1},
                              headers=bearer(signed(app_client, claims_for(settings))))
    assert response.status_code == 200


def test_a_remembered_token_still_expires_on_time(app_client, credentials, settings,
                                                 monkeypatch):
    # Each worker checks a token's signature once and remembers its claims; the expiry is
    # checked on every use all the same.
    token = token_for(app_client, credentials, "transport_analyst")
    assert app_client.get(ROWS, params={"limit": 1}, headers=bearer(token)).status_code == 200
    later = time.time() + settings.token_ttl_seconds + 60
    monkeypatch.setattr(time, "time", lambda: later)
    response = app_client.get(ROWS, params={"limit": 1}, headers=bearer(token))
    assert response.status_code == 401 and "expired" in response.json()["error_description"]


def test_verified_tokens_remember_the_last_size_signatures(app_client, credentials,
                                                          settings):
    from api.errors import ApiError
    from api.security import VerifiedTokens

    hub = app_client.app.state.hub
    first, second, third = (token_for(app_client, credentials, "transport_analyst")
                            for _ in range(3))
    remembering, forgetful = VerifiedTokens(hub.keys, settings, size=2), VerifiedTokens(
        hub.keys, settings, size=0)
    for token in (first, second, third):
        remembering.claims(token)
        forgetful.claims(token)
    # With no keys, only a remembered token passes: its signature is not checked again.
    remembering.keys = forgetful.keys = KeySet([])
    assert remembering.claims(second)["sub"] == remembering.claims(third)["sub"]  # no raise
    for tokens, token in ((remembering, first), (forgetful, third)):  # dropped; never kept
        with pytest.raises(ApiError, match="not valid"):
            tokens.claims(token)


# ---------- revocation (RFC 7009) and introspection (RFC 7662)


def test_revoked_token_is_rejected_and_the_revocation_audited(app_client, credentials, url):
    token = token_for(app_client, credentials, "transport_analyst")
    assert app_client.get(ROWS, params={"limit": 1}, headers=bearer(token)).status_code == 200
    response = app_client.post("/oauth/revoke", data={"token": token},
                               auth=credentials["transport_analyst"])
    assert response.status_code == 200
    rejected = app_client.get(ROWS, headers=bearer(token))
    assert rejected.status_code == 401 and "revoked" in rejected.json()["error_description"]
    assert count(url, "select count(*) from audit.events where kind = 'token.revoked'") >= 1


def test_a_client_cannot_revoke_anothers_token(app_client, credentials):
    token = token_for(app_client, credentials, "transport_analyst")
    response = app_client.post("/oauth/revoke", data={"token": token},
                               auth=credentials["public_works_engineer"])
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    assert app_client.get(ROWS, params={"limit": 1}, headers=bearer(token)).status_code == 200


def test_revoking_garbage_is_a_quiet_success(app_client, credentials):
    response = app_client.post("/oauth/revoke", data={"token": "nonsense"},
                               auth=credentials["transport_analyst"])
    assert response.status_code == 200


def test_revocation_needs_client_authentication(app_client):
    assert app_client.post("/oauth/revoke", data={"token": "x"}).status_code == 401


def test_introspection_reports_active_then_inactive(app_client, credentials):
    token = token_for(app_client, credentials, "transport_analyst")
    auth = credentials["public_works_engineer"]
    active = app_client.post("/oauth/introspect", data={"token": token}, auth=auth).json()
    assert active["active"] is True and active["role"] == "transport_analyst"
    app_client.post("/oauth/revoke", data={"token": token}, auth=credentials["transport_analyst"])
    inactive = app_client.post("/oauth/introspect", data={"token": token}, auth=auth).json()
    assert inactive == {"active": False}
    assert app_client.post("/oauth/introspect", data={"token": "x"}, auth=auth).json() == {
        "active": False}


def test_metadata_lists_the_endpoints(app_client, settings):
    meta = app_client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == settings.token_issuer
    assert meta["token_endpoint"].endswith("/oauth/token")
    assert "client_credentials" in meta["grant_types_supported"]
    keys = app_client.get("/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in keys] == [app_client.app.state.hub.signing_key.kid]
    assert all("d" not in k for k in keys)  # public halves only


def test_authlib_client_obtains_a_token_with_no_custom_code(app_client, credentials):
    client_id, secret = credentials["transport_analyst"]

    async def fetch() -> dict:
        transport = httpx.ASGITransport(app=app_client.app)
        async with AsyncOAuth2Client(client_id, secret, transport=transport,
                                     base_url="http://hub") as client:
            return await client.fetch_token("http://hub/oauth/token",
                                            grant_type="client_credentials")

    token = asyncio.run(fetch())
    assert token["token_type"] == "Bearer" and token["scope"] == "datasets:read"
    response = app_client.get(ROWS, params={"limit": 1}, headers=bearer(token["access_token"]))
    assert response.status_code == 200


# ---------- every route: 401 without a token, 403 with no scope


def protected_routes(app) -> list[tuple[str, str]]:
    """Every operation in the app's OpenAPI document, but the public ones."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path not in PUBLIC:
            concrete = path.replace("{dataset_id}", "public_works.service_requests").replace(
                "{request_id}", "00000000-0000-0000-0000-000000000000")
            found += [(method.upper(), concrete) for method in operations]
    return found


def test_sweep_covers_the_data_and_audit_routes(app_client):
    paths = {p for _, p in protected_routes(app_client.app)}
    assert {"/datasets", ROWS, "/audit/events", "/audit/anomalies"} <= paths


def test_every_protected_route_needs_a_token(app_client):
    for method, path in protected_routes(app_client.app):
        response = app_client.request(method, path)
        assert response.status_code == 401, (method, path)


def test_every_protected_route_refuses_a_token_without_scope(app_client, settings):
    token = signed(app_client, claims_for(settings, scope=""))
    for method, path in protected_routes(app_client.app):
        response = app_client.request(method, path, headers=bearer(token))
        assert response.status_code == 403, (method, path, response.text)


# ---------- clients removed, keys rotated


def test_removed_clients_tokens_stop_working_at_once(app_client, url, settings):
    from hub import clients

    with psycopg.connect(url) as conn:
        client, secret = clients.add_client(conn, name="short-lived", role="transport_analyst")
    token = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            auth=(client.client_id, secret)).json()["access_token"]
    assert app_client.get(ROWS, params={"limit": 1}, headers=bearer(token)).status_code == 200
    with psycopg.connect(url) as conn:
        clients.remove_client(conn, "short-lived")
        with pytest.raises(clients.ClientError, match="no client named 'short-lived'"):
            clients.remove_client(conn, "short-lived")
    assert app_client.get(ROWS, headers=bearer(token)).status_code == 401


def test_rotated_key_keeps_old_tokens_valid_until_they_expire(settings, url, credentials,
                                                             tmp_path):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.security import rotate_signing_key

    home = settings.model_copy(update={"home": tmp_path})
    # A fresh token-signing key, but the hub's own ledger key: this app's sealer signs
    # checkpoints in the shared warehouse, which later tests verify.
    home.keys_dir.mkdir(parents=True)
    ledger.load_signing_key(settings.keys_dir)  # made now if no earlier test made it (alone)
    shutil.copy(settings.keys_dir / "audit-ed25519.pem", home.keys_dir)
    with TestClient(create_app(home, url)) as before:
        old_token = token_for(before, credentials, "transport_analyst")
        old_kid = before.app.state.hub.signing_key.kid
    new_kid = rotate_signing_key(home.keys_dir).kid
    with TestClient(create_app(home, url)) as after:
        assert after.app.state.hub.signing_key.kid == new_kid != old_kid
        assert {k["kid"] for k in after.get("/.well-known/jwks.json").json()["keys"]} == {
            old_kid, new_kid}
        assert after.get(ROWS, params={"limit": 1}, headers=bearer(old_token)).status_code == 200
    # Once the old key's tokens have all expired it is no longer trusted.
    retired = next(home.keys_dir.glob("retired-*.jwk.json"))
    data = json.loads(retired.read_text())
    retired.write_text(json.dumps(data | {"retired_at": time.time() - 10 * 3600}))
    with TestClient(create_app(home, url)) as later:
        assert later.get(ROWS, headers=bearer(old_token)).status_code == 401
