"""Claims the docs make, each shown against the real thing: the API's connections work as the
application role; no data leaves when its audit record cannot be written; every error body
carries the request id that the audit record carries; tokens and pipeline passes are on
the audit record."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from hub import clients
from tests.conftest import bearer, count, own_warehouse, refused, token_for

ROWS = "/datasets/public_works.service_requests/rows"
EXPORT = "/datasets/public_works.service_requests/export"
RELATION = "public_works__service_requests"
ERROR_KEYS = {"error", "error_description", "request_id"}


# ---------- the API's connections work as the application role


@pytest.fixture
def api_connection(app_client) -> Iterator[psycopg.Connection]:
    """A connection from the API's own pool: the options, role and timeout it serves with."""
    with app_client.app.state.hub.pool.connection() as conn:
        yield conn


def test_api_connections_work_as_the_application_role(api_connection, settings):
    user, = api_connection.execute("select current_user").fetchone()
    assert user == settings.app_role == "hub_app"


@pytest.mark.parametrize("statement", [
    "update audit.events set rows_returned = 0",
    "delete from audit.events",
    "truncate audit.events",
    "update audit.chain set hash = 'x'",
    "delete from audit.checkpoints",
    "select * from raw_public_works.service_requests limit 1",
    "select * from raw_transport.bike_counts limit 1",
    # The quarantine is read by GET /datasets/{id}/quarantine (owning engineers only), but
    # never written by the API.
    "delete from quarantine.public_works__service_requests",
    "select * from staging.stg_public_works__service_requests limit 1",
    "select * from candidate.public_works__service_requests limit 1",
    "select payload from hub.rejected_records limit 1",
    "select * from hub.ingest_cursors limit 1",
    "insert into hub.clients (client_id, name, role, secret_hash) values ('x', 'x', 'x', 'x')",
    "update hub.clients set role = 'auditor'",
    "update hub.users set role = 'auditor'",
    "delete from shared.public_works__service_requests",
    "update hub.dataset_versions set row_count = 0",
    "create table shared.planted (x int)",
])
def test_the_application_role_is_refused(api_connection, first_run, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api_connection.execute(statement)


def test_the_application_role_reads_every_published_dataset(api_connection, first_run, url):
    published = [r for r in first_run if r.status == "published"]
    assert len(published) == 7
    for report in published:
        relation = report.dataset.replace(".", "__")
        served, = api_connection.execute(f"select count(*) from shared.{relation}").fetchone()
        assert served == count(url, f"select count(*) from shared.{relation}") > 0


def test_the_application_role_sees_client_secrets_only_as_scrypt_hashes(api_connection,
                                                                        credentials):
    # It must read the hashes (the token endpoint verifies secrets with them); the secrets
    # themselves are in no table it, or anyone, can read.
    stored = dict(api_connection.execute("select client_id, secret_hash from hub.clients"))
    for client_id, secret in credentials.values():
        assert stored[client_id].startswith("scrypt$") and secret not in stored[client_id]


# ---------- no data leaves when the audit record cannot be written


def _copy_published(source_url: str, target_url: str, rows: int = 50) -> list[str]:
    """Publish the first `rows` of the shared 311 table in another warehouse, as version 1;
    return their keys."""
    with psycopg.connect(source_url) as src:
        columns = src.execute(
            "select quote_ident(attname) || ' ' || format_type(atttypid, atttypmod)"
            " from pg_attribute where attrelid = %s::regclass and attnum > 0"
            " and not attisdropped order by attnum", [f"shared.{RELATION}"]).fetchall()
        with src.cursor().copy(f"copy (select * from shared.{RELATION} order by sr_number"
                               f" limit {rows}) to stdout") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        keys = [k for (k,) in src.execute(f"select sr_number from shared.{RELATION}"
                                          f" order by sr_number limit {rows}")]
    with psycopg.connect(target_url) as dst:
        dst.execute(f"create table shared.{RELATION} ({', '.join(c for (c,) in columns)})")
        with dst.cursor().copy(f"copy shared.{RELATION} from stdin") as copy:
            copy.write(data)
        dst.execute("insert into hub.dataset_versions (dataset, version, contract_version,"
                    " row_count, run_id) values ('public_works.service_requests', 1, '1.0.0',"
                    " %s, %s)", [rows, uuid.uuid4()])
    return keys


@pytest.fixture
def unrecorded(server_url, url, settings, first_run):
    """An API over a warehouse of its own holding 50 published rows, with a reader's and
    an auditor's token; `break_audit()` takes the app role's INSERT on audit.events away."""
    with own_warehouse(server_url, "hub_claims_audit") as own:
        keys = _copy_published(url, own)
        with psycopg.connect(own) as conn:
            made = {role: clients.add_client(conn, name=f"claims-{role}", role=role)
                    for role in ("transport_analyst", "auditor")}
        app = create_app(settings, own)
        with TestClient(app, raise_server_exceptions=False) as client:
            tokens = {role: token_for(client, {role: (c.client_id, secret)}, role)
                      for role, (c, secret) in made.items()}

            def break_audit(broken: bool = True) -> None:
                verb = "revoke insert on audit.events from" if broken else \
                    "grant insert on audit.events to"
                with psycopg.connect(own) as conn:
                    conn.execute(f"{verb} {settings.app_role}")

            yield client, own, keys, tokens, break_audit


def _leaks(text: str, keys: list[str]) -> list[str]:
    return [k for k in keys if k in text]


@pytest.mark.parametrize("route", [ROWS, EXPORT])
def test_no_row_leaves_when_its_audit_record_cannot_be_written(unrecorded, route):
    client, own, keys, tokens, break_audit = unrecorded
    rid = f"unrecorded-{uuid.uuid4().hex}"
    headers = {**bearer(tokens["transport_analyst"]), "X-Request-Id": rid}
    break_audit()
    refused = client.get(route, params={"limit": 50}, headers=headers)
    assert refused.status_code == 503, refused.text
    assert refused.json() == {"error": "audit_unavailable",
                              "error_description": refused.json()["error_description"],
                              "request_id": rid}
    assert "sent nothing" in refused.json()["error_description"]
    assert _leaks(refused.text, keys) == []
    assert count(own, "select count(*) from audit.events where request_id = %s", [rid]) == 0
    # The same request, once the record can be written: the rows it would have sent.
    break_audit(False)
    served = client.get(route, params={"limit": 50}, headers=headers)
    assert served.status_code == 200 and _leaks(served.text, keys) == keys
    assert count(own, "select count(*) from audit.events where request_id = %s"
                      " and kind like 'data.%%' and decision = 'allow'", [rid]) >= 1


def test_an_audit_search_that_cannot_be_recorded_answers_500_with_its_request_id(unrecorded):
    # A failure no handler knows still answers in the one error shape, with the id to quote.
    client, own, _, tokens, break_audit = unrecorded
    rid = f"unrecorded-{uuid.uuid4().hex}"
    break_audit()
    response = client.get("/audit/events", headers={**bearer(tokens["auditor"]),
                                                    "X-Request-Id": rid})
    assert response.status_code == 500
    body = response.json()
    assert set(body) == ERROR_KEYS and body["error"] == "server_error"
    assert body["request_id"] == rid and rid in body["error_description"]
    assert "events" not in body and "Traceback" not in response.text


# ---------- every error carries its request id, and so does its audit record


def _role(role: str):
    def headers(app_client, credentials) -> dict[str, str]:
        return bearer(token_for(app_client, credentials, role))

    return headers


ANALYST = _role("transport_analyst")
# (method, path, request arguments, who asks, status, the audit record's kind if one is
# written today: refusals outside the dataset, audit and token routes are not yet recorded)
ERRORS = [
    ("get", ROWS, {}, None, 401, "data.denied"),
    ("get", ROWS, {"params": {"status": "bogus"}}, ANALYST, 400, None),
    ("get", ROWS, {"params": {"limit": "many"}}, ANALYST, 400, None),
    ("get", "/datasets/health.restaurant_inspections/rows", {}, ANALYST, 403, "data.denied"),
    ("get", "/audit/events", {}, ANALYST, 403, "audit.denied"),
    ("get", "/notifications", {}, None, 401, None),
    ("get", "/access-requests", {}, None, 401, None),
    ("post", "/access-requests/not-a-uuid/approve", {}, None, 401, None),
    ("get", "/contracts/public_works.service_requests", {}, None, 401, None),
    ("get", "/no/such/route", {}, None, 404, None),
    ("delete", "/datasets", {}, None, 405, None),
    ("post", "/oauth/token", {"data": {"grant_type": "password"}}, None, 400, None),
    ("post", "/oauth/token", {"data": {"grant_type": "client_credentials"},
                              "auth": ("cdh_nobody", "guess")}, None, 401, "token.denied"),
]


@pytest.mark.parametrize("method, path, extra, who, status, kind", ERRORS)
def test_every_error_body_carries_the_request_id_and_so_does_its_audit_record(
        app_client, credentials, url, method, path, extra, who, status, kind):
    rid = f"err-{uuid.uuid4().hex}"
    headers = {"X-Request-Id": rid, **(who(app_client, credentials) if who else {})}
    response = getattr(app_client, method)(path, headers=headers, **extra)
    assert response.status_code == status, response.text
    assert set(response.json()) == ERROR_KEYS and response.json()["request_id"] == rid
    if kind is not None:
        # Its own record, or the folded one listing its id: an anonymous refusal of the same
        # reason within the second (another test's) shares one record (hub/refusals.py).
        assert refused(url, rid, "kind, status_code") == [(kind, status)]


def test_without_a_request_id_header_each_error_gets_its_own_id_and_its_record_the_same(
        app_client, url):
    ids = [app_client.get(path).json()["request_id"] for path in (ROWS, ROWS, "/notifications")]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == 3
    # Its own record, or (a refusal of the same reason within the second) the folded record
    # listing its id: the refusal log's rate limit (hub/refusals.py).
    assert ("data.denied", 401) in refused(url, ids[0], "kind, status_code")


# ---------- tokens issued and refused are on the audit record


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _events(url: str, rid: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select kind, decision, status_code, client_id, role, department, detail"
            " from audit.events where request_id = %s", [rid]).fetchall()


def test_a_token_issued_is_audited_with_its_jti(app_client, credentials, url):
    client_id, secret = credentials["transport_analyst"]
    rid = f"tok-{uuid.uuid4().hex}"
    response = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(client_id, secret), headers={"X-Request-Id": rid})
    claims = _claims(response.json()["access_token"])
    [(kind, decision, status, who, role, department, detail)] = _events(url, rid)
    assert (kind, decision, status, who, role, department) == (
        "token.issued", "allow", 200, client_id, "transport_analyst", "transport")
    assert detail == {"jti": claims["jti"], "scope": "datasets:read", "exp": claims["exp"]}


@pytest.mark.parametrize("known", [True, False])
def test_a_token_refused_is_audited_with_the_client_it_claimed(app_client, credentials, url,
                                                                known):
    client_id = credentials["transport_analyst"][0] if known else f"cdh_{uuid.uuid4().hex[:16]}"
    rid = f"tok-{uuid.uuid4().hex}"
    response = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(client_id, "not-the-secret"), headers={"X-Request-Id": rid})
    assert response.status_code == 401 and "access_token" not in response.json()
    [(kind, decision, status, who, role, _, _)] = _events(url, rid)
    assert (kind, decision, status, who, role) == ("token.denied", "deny", 401, client_id, None)


# ---------- pipeline passes are on the audit record (a failed one: tests/test_cli.py)


def test_each_published_pass_is_audited_with_its_version_and_run(first_run, url):
    with psycopg.connect(url) as conn:
        for report in first_run:
            # The first record of this version is this pass's: later passes that load
            # nothing new record the same version again.
            found = conn.execute(
                "select e.dataset_version, e.rows_returned, r.status, r.rows_loaded"
                " from audit.events e join hub.runs r on r.run_id = (e.detail->>'run_id')::uuid"
                " where e.kind = 'pipeline.published' and e.dataset = %s"
                " and e.dataset_version = %s order by e.event_id limit 1",
                [report.dataset, report.version]).fetchone()
            assert found == (report.version, report.row_count, "published",
                             report.rows_loaded), report.dataset
