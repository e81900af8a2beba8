"""The API against the published 311 dataset: OAuth2, 401/403, masking, paging, audit."""

from __future__ import annotations

import base64
import json
import time

import psycopg
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.conftest import bearer, count, refused, token_for

ROWS = "/datasets/public_works.service_requests/rows"


def audit_rows(url: str, request_id: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select decision, status_code, client_id, role, dataset, rows_returned, columns"
            " from audit.events where request_id = %s", [request_id]).fetchall()


# ---------- OAuth2 token endpoint


def test_token_is_a_signed_es256_jwt_with_role_claims(app_client, credentials, settings):
    token = token_for(app_client, credentials, "transport_analyst")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = app_client.app.state.hub  # the app's own key set verifies it
    decoded = jwt.decode(token, claims.keys, algorithms=["ES256"])
    assert header["alg"] == "ES256" and header["kid"] == claims.signing_key.kid
    assert decoded.claims["role"] == "transport_analyst"
    assert decoded.claims["department"] == "transport"
    assert decoded.claims["scope"] == "datasets:read"
    assert decoded.claims["exp"] - decoded.claims["iat"] == settings.token_ttl_seconds


def test_token_accepts_client_secret_post(app_client, credentials):
    client_id, secret = credentials["transport_analyst"]
    response = app_client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


def test_token_wrong_secret_is_invalid_client(app_client, credentials):
    client_id, _ = credentials["transport_analyst"]
    response = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(client_id, "wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_without_credentials_is_invalid_client(app_client):
    response = app_client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_token_malformed_basic_header_is_invalid_request(app_client):
    response = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                               headers={"Authorization": "Basic %%%"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_token_other_grant_type_is_refused(app_client, credentials):
    response = app_client.post("/oauth/token", data={"grant_type": "password"},
                               auth=credentials["transport_analyst"])
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_scope_beyond_role_is_refused(app_client, credentials):
    response = app_client.post("/oauth/token", auth=credentials["transport_analyst"],
                               data={"grant_type": "client_credentials", "scope": "audit:read"})
    assert response.status_code == 400
    assert "audit:read" in response.json()["error_description"]


# ---------- 401 and 403, each audited


def test_rows_without_token_is_401_and_audited(app_client, url):
    response = app_client.get(ROWS, headers={"X-Request-Id": "no-token-1"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "invalid_token"
    assert refused(url, "no-token-1") == [
        ("deny", 401, None, None, "public_works.service_requests", 0, [])]


def test_rows_with_forged_token_is_401(app_client, settings):
    other_key = ECKey.generate_key("P-256", auto_kid=True)
    claims = {"iss": settings.token_issuer, "aud": settings.audience, "sub": "x", "role": "x",
              "scope": "datasets:read", "jti": "j1", "exp": int(time.time()) + 60}
    forged = jwt.encode({"alg": "ES256", "kid": other_key.kid}, claims, other_key)
    assert app_client.get(ROWS, headers=bearer(forged)).status_code == 401


def test_rows_with_expired_token_is_401(app_client, settings):
    key = app_client.app.state.hub.signing_key
    claims = {"iss": settings.token_issuer, "aud": settings.audience, "sub": "x", "role": "x",
              "scope": "datasets:read", "jti": "j2", "exp": int(time.time()) - 60}
    expired = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)
    response = app_client.get(ROWS, headers=bearer(expired))
    assert response.status_code == 401 and "exp" in response.json()["error_description"]


def test_rows_without_grant_is_403_and_audited(app_client, credentials, url):
    token = token_for(app_client, credentials, "health_inspector")
    response = app_client.get(ROWS, headers={**bearer(token), "X-Request-Id": "no-grant-1"})
    assert response.status_code == 403 and response.json()["error"] == "access_denied"
    [(decision, status, client_id, role, *_)] = refused(url, "no-grant-1")
    assert (decision, status, role) == ("deny", 403, "health_inspector")
    assert client_id == credentials["health_inspector"][0]


def test_auditor_token_cannot_read_rows(app_client, credentials):
    token = token_for(app_client, credentials, "auditor")
    response = app_client.get(ROWS, headers=bearer(token))
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


def test_unknown_dataset_looks_like_no_grant(app_client, credentials):
    token = token_for(app_client, credentials, "transport_analyst")
    response = app_client.get("/datasets/health.secret/rows", headers=bearer(token))
    assert response.status_code == 403


# ---------- masking


def _first_rows(app_client, credentials, role: str, limit: int = 50) -> list[dict]:
    token = token_for(app_client, credentials, role)
    response = app_client.get(ROWS, params={"limit": limit}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def test_transport_analyst_sees_personal_columns_masked(app_client, credentials, url):
    rows = _first_rows(app_client, credentials, "transport_analyst")
    with psycopg.connect(url) as conn:
        real = dict(conn.execute("select sr_number, address from "
                                 "shared.public_works__service_requests").fetchall())
    with_address = [r for r in rows if real[r["sr_number"]]]
    assert with_address, "the sample has addresses"
    for row in with_address:
        assert row["address"] != real[row["sr_number"]]  # keyed pseudonym, not the address
        assert len(row["address"]) == 16
        assert row["latitude"] is None and row["longitude"] is None
        assert row["street_name"] in (None, "[redacted]")
    assert all(r["request_type"] for r in rows)  # non-personal columns as stored


def test_pseudonyms_link_repeated_addresses(app_client, credentials, url):
    rows = _first_rows(app_client, credentials, "transport_analyst", limit=1000)
    with psycopg.connect(url) as conn:
        real = dict(conn.execute("select sr_number, address from "
                                 "shared.public_works__service_requests").fetchall())
    by_address: dict[str, set[str]] = {}
    for row in rows:
        if real[row["sr_number"]]:
            by_address.setdefault(real[row["sr_number"]], set()).add(row["address"])
    assert all(len(pseudonyms) == 1 for pseudonyms in by_address.values())
    assert len({p for ps in by_address.values() for p in ps}) == len(by_address)


def test_owner_grant_unmasks_addresses(app_client, credentials, url):
    rows = _first_rows(app_client, credentials, "public_works_engineer")
    with psycopg.connect(url) as conn:
        real = dict(conn.execute("select sr_number, address from "
                                 "shared.public_works__service_requests").fetchall())
    assert all(row["address"] == real[row["sr_number"]] for row in rows)


# ---------- paging and catalog


def test_cursor_pages_continue_without_overlap(app_client, credentials):
    headers = bearer(token_for(app_client, credentials, "transport_analyst"))
    first = app_client.get(ROWS, params={"limit": 5}, headers=headers).json()
    second = app_client.get(ROWS, params={"limit": 5, "cursor": first["next_cursor"]},
                            headers=headers).json()
    by_offset = app_client.get(ROWS, params={"limit": 5, "offset": 5}, headers=headers).json()
    keys = [r["sr_number"] for r in first["rows"] + second["rows"]]
    assert len(set(keys)) == 10 and keys == sorted(keys)
    assert second["rows"] == by_offset["rows"]


@pytest.mark.parametrize("role, dataset, key", [
    ("social_services_analyst", "social_services.shelter_census", "census_date"),  # a date
    ("transport_analyst", "transport.bike_counts", "counted_at"),  # a timestamp
])
def test_cursor_pages_continue_on_date_and_timestamp_keys(app_client, credentials, role,
                                                          dataset, key):
    headers = bearer(token_for(app_client, credentials, role))
    rows = f"/datasets/{dataset}/rows"
    first = app_client.get(rows, params={"limit": 5}, headers=headers)
    assert first.status_code == 200, first.text
    second = app_client.get(rows, params={"limit": 5, "cursor": first.json()["next_cursor"]},
                            headers=headers).json()
    by_offset = app_client.get(rows, params={"limit": 5, "offset": 5}, headers=headers).json()
    assert [r[key] for r in second["rows"]] == [r[key] for r in by_offset["rows"]]


@pytest.mark.parametrize("params, fragment", [
    ({"limit": 100000}, "limit: at most 1000"),
    ({"limit": 0}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor: not a cursor"),
    ({"offset": "-1"}, "offset"),
])
def test_bad_paging_parameters_are_400(app_client, credentials, params, fragment):
    headers = bearer(token_for(app_client, credentials, "transport_analyst"))
    response = app_client.get(ROWS, params=params, headers=headers)
    assert response.status_code == 400
    assert fragment in response.json()["error_description"]


def test_catalog_lists_only_granted_datasets(app_client, credentials):
    analyst = app_client.get("/datasets", headers=bearer(
        token_for(app_client, credentials, "transport_analyst"))).json()
    inspector = app_client.get("/datasets", headers=bearer(
        token_for(app_client, credentials, "health_inspector"))).json()
    assert [d["id"] for d in analyst["datasets"]] == ["public_works.service_requests",
                                                      "transport.bike_counts"]
    assert analyst["datasets"][0]["owner"] == "public-works-data"
    # The health inspector sees health's own dataset, and none of public works'.
    assert [d["id"] for d in inspector["datasets"]] == ["health.restaurant_inspections"]


def test_dataset_detail_shows_masks(app_client, credentials):
    headers = bearer(token_for(app_client, credentials, "transport_analyst"))
    detail = app_client.get("/datasets/public_works.service_requests", headers=headers).json()
    masks = {c["name"]: c["mask"] for c in detail["columns"]}
    assert masks["address"] == "hash" and masks["latitude"] == "null"
    assert masks["status"] is None


# ---------- audit


def test_every_data_request_is_on_record_bad_parameters_included(app_client, credentials, url):
    headers = bearer(token_for(app_client, credentials, "transport_analyst"))
    statuses = []
    for i in range(6):
        params = {"limit": 7} if i % 2 == 0 else {"limit": 0}
        statuses.append(app_client.get(ROWS, params=params, headers={
            **headers, "X-Request-Id": f"every-{i}"}).status_code)
    app_client.get(ROWS, headers={"X-Request-Id": "every-6"})  # no token
    assert statuses == [200, 400, 200, 400, 200, 400]
    assert count(url, "select count(*) from audit.events where request_id like %s"
                      " and decision = 'allow' and rows_returned = 7", ["every-%"]) == 3
    # A 400 for a bad parameter is a refusal like any other (issue 19): on record, with
    # the client its token names although the route never authenticated it.
    client_id = credentials["transport_analyst"][0]
    for i in (1, 3, 5):
        assert refused(url, f"every-{i}", "kind, status_code, client_id, reason") == [
            ("data.denied", 400, client_id, "query.limit: Input should be greater than or "
             "equal to 1")]
    assert refused(url, "every-6", "status_code, client_id") == [(401, None)]


def test_allowed_read_records_columns_and_rows(app_client, credentials, url):
    headers = {**bearer(token_for(app_client, credentials, "transport_analyst")),
               "X-Request-Id": "read-7"}
    app_client.get(ROWS, params={"limit": 7}, headers=headers)
    [(decision, status, _, role, dataset, rows, columns)] = audit_rows(url, "read-7")
    assert (decision, status, role, dataset, rows) == (
        "allow", 200, "transport_analyst", "public_works.service_requests", 7)
    assert "address" in columns and len(columns) == 33
