"""Tokens from the city's identity provider: a real JWKS served on loopback by the test."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from api.idp import ExternalIdP
from api.main import create_app
from tests.conftest import bearer, count

ROWS = "/datasets/public_works.service_requests/rows"
IDP_KEY = RSAKey.generate_key(2048, auto_kid=True)


@pytest.fixture(scope="module")
def jwks_server():
    body = json.dumps(KeySet([IDP_KEY]).as_dict(private=False)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def idp_client(settings, url, jwks_server, first_run):
    configured = settings.model_copy(update={
        "idp_issuer": "https://login.city.example/realms/staff",
        "idp_jwks_url": f"{jwks_server}/certs",
        "idp_role_map": {"transport-planners": "transport_analyst",
                         "council-staff": "council_office"},
        "idp_attribute_map": {"council_district": "district"},
    })
    with TestClient(create_app(configured, url)) as client:
        yield client


def idp_token(key=IDP_KEY, **changes) -> str:
    now = int(time.time())
    claims = {"iss": "https://login.city.example/realms/staff", "aud": "civic-data-hub",
              "sub": "jdoe", "exp": now + 300, "iat": now, "roles": ["transport-planners"]}
    claims = {k: v for k, v in (claims | changes).items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def test_staff_token_reads_under_the_mapped_roles_policy(idp_client, url):
    response = idp_client.get(ROWS, params={"limit": 3},
                              headers={**bearer(idp_token()), "X-Request-Id": "idp-1"})
    assert response.status_code == 200
    assert all(len(r["address"]) == 16 for r in response.json()["rows"] if r["address"])
    assert count(url, "select count(*) from audit.events where request_id = 'idp-1' and"
                      " client_id = 'idp:jdoe' and role = 'transport_analyst'"
                      " and department = 'transport'") == 1


def test_hub_tokens_still_work_beside_the_provider(idp_client, credentials):
    token = idp_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            auth=credentials["transport_analyst"]).json()["access_token"]
    assert idp_client.get(ROWS, params={"limit": 1}, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("token, status", [
    (lambda: idp_token(aud="another-app"), 401),
    (lambda: idp_token(exp=int(time.time()) - 60), 401),
    (lambda: idp_token(key=RSAKey.generate_key(2048, auto_kid=True)), 401),
    (lambda: idp_token(roles=["mayors-office"]), 403),
    (lambda: idp_token(roles=None), 403),
])
def test_bad_provider_tokens_are_refused(idp_client, token, status):
    assert idp_client.get(ROWS, headers=bearer(token())).status_code == status


def test_provider_claims_cannot_grant_scopes(idp_client):
    # A provider token claiming audit scope still gets only the mapped role's scopes.
    sneaky = idp_token(scope="audit:read datasets:read", department="audit_office")
    assert idp_client.get("/audit/events", headers=bearer(sneaky)).status_code == 403


def test_unreachable_provider_is_503_naming_the_address(settings, url, first_run):
    down = settings.model_copy(update={
        "idp_issuer": "https://login.city.example/realms/staff",
        "idp_jwks_url": "http://127.0.0.1:9/certs"})
    with TestClient(create_app(down, url)) as client:
        response = client.get(ROWS, headers=bearer(idp_token()))
    assert response.status_code == 503 and "127.0.0.1:9" in response.json()["error_description"]


def test_issuer_without_jwks_url_is_a_configuration_error(settings):
    with pytest.raises(ValueError, match="set HUB_IDP_JWKS_URL"):
        ExternalIdP(settings.model_copy(update={"idp_issuer": "https://login.city.example"}))


def test_a_mapped_claim_becomes_the_attribute_a_row_filter_reads(idp_client, url):
    token = idp_token(roles=["council-staff"], council_district=9)
    response = idp_client.get(ROWS, params={"limit": 1000, "select": "sr_number,cd"},
                              headers=bearer(token))
    assert response.status_code == 200, response.text[:300]
    rows = response.json()["rows"]
    assert rows and {r["cd"] for r in rows} == {9}
    nine = count(url, "select count(*) from shared.public_works__service_requests where cd = 9")
    assert len(rows) == min(1000, nine)


def test_a_provider_token_without_the_mapped_claim_gets_403_naming_the_attribute(idp_client):
    for claim in (None, ["9", "13"]):  # missing, or a list: never flattened into a value
        response = idp_client.get(ROWS, headers=bearer(idp_token(roles=["council-staff"],
                                                                 council_district=claim)))
        assert response.status_code == 403
        assert "'district'" in response.json()["error_description"]
