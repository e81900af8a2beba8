"""Every refused request to the data, contract, grant and audit routes is on record (issue
19): one audit row per refusal kind, a flood folded into a few counted rows, and bursts of
masked-column probes flagged. The API runs over a warehouse of this module's own, so no
other test's refusals share its records."""

from __future__ import annotations

import math
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from contracts.resolve import MAX_BYTES
from hub import clients, clock
from hub.settings import Settings
from tests.conftest import bearer, own_warehouse, refused

DATASET = "public_works.service_requests"
ROWS = f"/datasets/{DATASET}/rows"
SALARIES = "/datasets/human_resources.employee_salaries/rows"


@pytest.fixture(scope="module")
def ours(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The contracts with 311 at major 2, so that major 1 can be past its notice (410)."""
    root = tmp_path_factory.mktemp("refusals") / "contracts"
    shutil.copytree(settings.contracts_dir, root)
    path = root / "public_works" / "service_requests.odcs.yaml"
    path.write_text(path.read_text().replace("version: 1.0.0", "version: 2.0.0", 1))
    return settings.model_copy(update={"contracts_dir": root})


@pytest.fixture(scope="module")
def hub(server_url: str, ours: Settings, settings: Settings) -> Iterator[tuple[TestClient, str]]:
    v1 = (settings.contracts_dir / "public_works" / "service_requests.odcs.yaml").read_text()
    with own_warehouse(server_url, "hub_refusals") as url:
        v2 = (ours.contracts_dir / "public_works" / "service_requests.odcs.yaml").read_text()
        with psycopg.connect(url) as conn:  # major 1, served until yesterday; major 2 newest
            # The registry is what the API serves (as `hub run` would have registered 2.0.0).
            conn.execute(
                "insert into hub.contracts (dataset, version, major, department, source_text,"
                " checksum, registered_by, deprecated_after) values (%s, '1.0.0', 1,"
                " 'public_works', %s, 'registered earlier', 'test', %s),"
                " (%s, '2.0.0', 2, 'public_works', %s, 'registered later', 'test', null)",
                [DATASET, v1, clock.today() - timedelta(days=1), DATASET, v2])
        with TestClient(create_app(ours, url)) as client:
            yield client, url


def caller(client: TestClient, url: str, role: str) -> tuple[str, dict[str, str]]:
    """A new client of `role` (so no earlier refusal shares its records): id and headers."""
    with psycopg.connect(url) as conn:
        made, secret = clients.add_client(conn, name=f"t-{uuid.uuid4().hex[:8]}", role=role)
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(made.client_id, secret)).json()["access_token"]
    return made.client_id, bearer(token)


def _yaml(settings: Settings) -> str:
    return (settings.contracts_dir / "public_works" / "service_requests.odcs.yaml").read_text()


# (status, role or None for no token, method, path, request arguments, kind, reason part)
KINDS: list[tuple[int, str | None, str, str, dict[str, Any], str, str]] = [
    (400, "transport_analyst", "GET", ROWS, {"params": {"address": "eq.1 Main St"}},
     "data.denied", "column 'address' is masked for your role"),
    (401, None, "GET", ROWS, {}, "data.denied", "send an access token"),
    (403, "health_inspector", "GET", ROWS, {}, "data.denied", "no grant"),
    (404, "public_works_engineer", "GET", "/contracts/public_works.nope", {},
     "contract.denied", "no contract registered"),
    (404, "public_works_data_admin", "POST", f"/access-requests/{uuid.uuid4()}/approve", {},
     "access_request.denied", "no access request"),
    (403, "transport_analyst", "GET", "/audit/events", {}, "audit.denied", "audit:read"),
    (409, "public_works_engineer", "POST", "/contracts", {"content": "v2"},
     "contract.denied", "already registered with other content"),
    (410, "transport_analyst", "GET", ROWS, {"params": {"major": 1}}, "data.denied",
     "was served until"),
    (413, "public_works_engineer", "POST", "/contracts",
     {"content": "x: " + "y" * MAX_BYTES}, "contract.denied", "limited to"),
]


@pytest.mark.parametrize("status, role, method, path, arguments, kind, reason", KINDS,
                         ids=[f"{k[0]}-{k[5]}" for k in KINDS])
def test_each_kind_of_refusal_leaves_an_audit_row(hub, ours, status, role, method, path,
                                                  arguments, kind, reason):
    client, url = hub
    client_id, headers = caller(client, url, role) if role else (None, {})
    if arguments.get("content") == "v2":  # the registered 2.0.0, edited: a version conflict
        arguments = {"content": _yaml(ours).replace("Citizens'", "Residents'", 1)}
    request_id = f"kind-{uuid.uuid4().hex}"
    response = client.request(method, path, headers={**headers, "X-Request-Id": request_id},
                              **arguments)
    assert response.status_code == status, response.text
    assert response.json()["request_id"] == request_id
    [row] = refused(url, request_id, "kind, status_code, client_id, role, reason,"
                    " (detail->>'count')::int, request_id, source_address")
    assert row[:4] == (kind, status, client_id, role)
    assert reason in row[4]
    assert row[5:] == (1, request_id, "testclient")


def test_rate_limited_refusal_leaves_an_audit_row(hub, ours):
    _, url = hub
    tight = ours.model_copy(update={"rate_limit_per_minute": 2})
    with TestClient(create_app(tight, url)) as client:
        client_id, headers = caller(client, url, "transport_analyst")
        codes = [client.get("/datasets", headers={**headers, "X-Request-Id": f"tight-{i}"})
                 .status_code for i in range(3)]
    assert codes == [200, 200, 429]
    assert refused(url, "tight-2", "kind, status_code, client_id, reason") == [
        ("data.denied", 429, client_id, "over the rate limit")]


def test_a_flood_of_identical_refusals_leaves_a_few_rows_counting_them_all(hub):
    client, url = hub
    client_id, headers = caller(client, url, "transport_analyst")
    start = time.monotonic()
    for i in range(200):
        response = client.get(ROWS, params={"address": "eq.1 Main St"},
                              headers={**headers, "X-Request-Id": f"flood-{i}"})
        assert response.status_code == 400
    took = time.monotonic() - start
    found = _counts_reaching(url, client_id, 200)
    assert sum(found) == 200
    # One record a second at most: the first at once, then one per second that had more.
    assert len(found) <= math.ceil(took) + 1, (took, found)
    assert found[0] == 1


def _counts_reaching(url: str, client_id: str, total: int, seconds: float = 5.0) -> list[int]:
    """The counts of a client's refusal records, once they add up to `total` (the last
    second's are written when it ends) or the deadline passes."""
    deadline = time.monotonic() + seconds
    while True:
        with psycopg.connect(url) as conn:
            found = [n for (n,) in conn.execute(
                "select (detail->>'count')::int from audit.events where client_id = %s"
                " and decision = 'deny' order by event_id", [client_id])]
        if sum(found) >= total or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def flags_of(client: TestClient, url: str, client_id: str) -> dict[str, dict]:
    _, auditor = caller(client, url, "auditor")
    response = client.get("/audit/anomalies", headers=auditor)
    assert response.status_code == 200, response.text
    return {f["rule"]: f["detail"] for f in response.json()["flags"]
            if f["client_id"] == client_id}


def test_a_burst_of_masked_column_probes_is_flagged(hub):
    client, url = hub
    client_id, headers = caller(client, url, "transport_analyst")
    for value in ("1 Main St", "2 Main St", "3 Main St"):  # a search for one address
        client.get(ROWS, params={"address": f"eq.{value}"}, headers=headers)
    client.get(ROWS, params={"order": "address.desc"}, headers=headers)
    client.get(ROWS, params={"latitude": "gt.34"}, headers=headers)
    _counts_reaching(url, client_id, 5)
    flags = flags_of(client, url, client_id)
    assert flags["column_probes"]["probes_in_a_minute"] == 5
    assert flags["column_probes"]["columns"] == ["address", "latitude"]


def test_probes_of_hidden_columns_are_told_from_unknown_ones(hub):
    client, url = hub
    client_id, headers = caller(client, url, "public_works_data_admin")
    for i in range(5):  # typical_hours exists; this grant leaves it out
        client.get(SALARIES, params={"typical_hours": f"eq.{i}"},
                   headers={**headers, "X-Request-Id": f"hidden-{client_id}-{i}"})
    client.get(SALARIES, params={"shoe_size": "eq.9"},
               headers={**headers, "X-Request-Id": f"unknown-{client_id}"})
    assert refused(url, f"hidden-{client_id}-0", "detail->>'probe', detail->>'at'") == [
        ("hidden_column", "filter")]
    assert refused(url, f"unknown-{client_id}", "detail->>'probe'") == [("unknown_column",)]
    _counts_reaching(url, client_id, 6)
    probes = flags_of(client, url, client_id)["column_probes"]
    assert (probes["probes_in_a_minute"], probes["columns"]) == (5, ["typical_hours"])


def test_a_few_probes_are_not_a_burst(hub):
    client, url = hub
    client_id, headers = caller(client, url, "transport_analyst")
    for value in ("1 Main St", "2 Main St"):
        client.get(ROWS, params={"address": f"eq.{value}"}, headers=headers)
    _counts_reaching(url, client_id, 2)
    assert "column_probes" not in flags_of(client, url, client_id)


def test_allowed_requests_and_other_routes_write_no_refusal(hub):
    client, url = hub
    client_id, headers = caller(client, url, "transport_analyst")
    assert client.get("/datasets", headers=headers).status_code == 200
    assert client.get("/transparency/nope").status_code == 404  # not an audited route
    with psycopg.connect(url) as conn:
        denied = conn.execute("select count(*) from audit.events where decision = 'deny' and"
                              " (client_id = %s or detail->>'path' = '/transparency/nope')",
                              [client_id]).fetchone()
    assert denied == (0,)
