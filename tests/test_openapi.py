"""The API's contract in /openapi.json: every route's body, its errors, and which routes
need a token with which scopes, each held against what the running API does."""

from __future__ import annotations

import json
import time
import uuid

import jsonschema
import psycopg
import pytest
from joserfc import jwt

from access_policies.model import KNOWN_SCOPES
from api.openapi import BEARER
from tests.conftest import bearer
from tests.test_oauth_security import PUBLIC

DATASET = "public_works.service_requests"
ROWS = f"/datasets/{DATASET}/rows"


@pytest.fixture(scope="module")
def document(app_client) -> dict:
    response = app_client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, operation)
            for path, item in document["paths"].items() for method, operation in item.items()]


def resolved(document: dict, schema: dict) -> dict:
    ref = schema.get("$ref", "")
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def conforms(document: dict, body: object, schema: dict) -> None:
    """Raise unless `body` fits `schema` (its $refs point into the document's components)."""
    jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]}).validate(body)


def test_every_route_documents_its_2xx_body(document):
    assert len(operations(document)) >= 20
    for method, path, operation in operations(document):
        bodies = {status: answer for status, answer in operation["responses"].items()
                  if status.startswith("2")}
        assert bodies, (method, path)
        for answer in bodies.values():
            assert answer.get("content"), (method, path, "no media type")
            for media, content in answer["content"].items():
                schema = resolved(document, content.get("schema", {}))
                assert schema.get("type") or schema.get("anyOf"), (method, path, media)


def test_errors_are_documented_with_the_body_they_have(app_client, document):
    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], (method, path)  # bad parameters are 400
        error = operation["responses"]["4XX"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    refused = app_client.get(ROWS)
    assert refused.status_code == 401
    conforms(document, refused.json(), {"$ref": "#/components/schemas/ErrorBody"})


def test_the_bearer_scheme_is_declared_with_the_hubs_scopes_and_endpoints(document):
    scheme = document["components"]["securitySchemes"][BEARER]
    assert scheme["type"] == "oauth2"
    for flow in scheme["flows"].values():
        assert set(flow["scopes"]) == KNOWN_SCOPES
        assert flow["tokenUrl"] in document["paths"]
    assert scheme["flows"]["authorizationCode"]["authorizationUrl"] in document["paths"]


def test_data_routes_need_the_bearer_scheme_and_public_routes_do_not(document):
    for method, path, operation in operations(document):
        requirements = operation.get("security", [])
        if path in PUBLIC:
            assert not any(BEARER in r for r in requirements), (method, path)
        else:
            assert requirements, (method, path)
            for requirement in requirements:  # one scope each: any one of them will do
                assert list(requirement) == [BEARER], (method, path)
                assert len(requirement[BEARER]) == 1, (method, path)
                assert set(requirement[BEARER]) <= KNOWN_SCOPES, (method, path)
    public = {path for _, path, _ in operations(document)} & PUBLIC
    assert {"/.well-known/jwks.json", "/oauth/token", "/transparency/report"} <= public


@pytest.fixture(scope="module")
def owner(url) -> str:
    """A client of public works' engineers: its department owns DATASET."""
    from hub import clients

    with psycopg.connect(url) as conn:
        client, _ = clients.add_client(conn, name=f"openapi-{uuid.uuid4().hex[:6]}",
                                       role="public_works_engineer")
    return client.client_id


def with_scope(app_client, settings, client_id: str, scope: str) -> dict[str, str]:
    """Its token holding just `scope`, signed by the hub as the token endpoint would."""
    now = int(time.time())
    claims = {"iss": settings.token_issuer, "aud": settings.audience, "sub": client_id,
              "client_id": client_id, "iat": now, "nbf": now, "exp": now + 300,
              "jti": uuid.uuid4().hex, "scope": scope, "role": "public_works_engineer",
              "department": "public_works"}
    key = app_client.app.state.hub.signing_key
    return bearer(jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key))


def test_each_route_accepts_exactly_the_scopes_it_documents(app_client, document, settings,
                                                            owner):
    for method, path, operation in operations(document):
        if path in PUBLIC:
            continue
        documented = {r[BEARER][0] for r in operation["security"]}
        concrete = path.replace("{dataset_id}", DATASET).replace(
            "{request_id}", str(uuid.uuid4()))
        for scope in sorted(KNOWN_SCOPES):
            response = app_client.request(method, concrete, params={"limit": 1},
                                          headers=with_scope(app_client, settings, owner, scope))
            if scope in documented:  # past the token check: served, or a 400/404 for the call
                assert response.status_code not in (401, 403), (method, path, scope,
                                                                 response.text)
            else:
                assert response.status_code == 403, (method, path, scope, response.text)


def test_a_rows_page_as_served_fits_its_documented_schema(app_client, document, settings,
                                                          owner):
    # The page is built by hand (api/rows.py), so FastAPI checks nothing: this test does.
    headers = with_scope(app_client, settings, owner, "datasets:read")
    page = app_client.get(ROWS, params={"limit": 3}, headers=headers)
    assert page.status_code == 200 and len(page.json()["rows"]) == 3
    documented = document["paths"]["/datasets/{dataset_id}/rows"]["get"]["responses"]["200"]
    conforms(document, page.json(), documented["content"]["application/json"]["schema"])
    lines = app_client.get(ROWS, params={"limit": 3, "format": "ndjson"}, headers=headers)
    assert "application/x-ndjson" in documented["content"]
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in lines.text.splitlines()] == page.json()["rows"]
    export = app_client.get(f"/datasets/{DATASET}/export", params={"limit": 2, "format": "csv"},
                            headers=headers)
    exported = document["paths"]["/datasets/{dataset_id}/export"]["get"]["responses"]["200"]
    assert export.headers["content-type"].startswith("text/csv")
    assert set(exported["content"]) == {"application/x-ndjson", "text/csv"}
