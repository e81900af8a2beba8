"""Row filters through the API: the truth table's row dimension, widening attempts, a missing
attribute, and what the caller is told (explain, audit, validation reports, introspection).

Each expected set of rows is read here by hand-written SQL on the warehouse, not built by the
code under test; every route (rows page, cursor pages, export) is compared with it.
"""

from __future__ import annotations

import base64
import json
import uuid

import orjson
import psycopg
import pytest

from hub import clients
from tests.conftest import bearer, refused

DATASET = "public_works.service_requests"
ROUTED = ("select sr_number from shared.public_works__service_requests where request_type in"
          " (select request_type from shared.public_works__request_routing where department = %s)")
BY_DISTRICT = "select sr_number from shared.public_works__service_requests where cd = %s"
DISPATCHERS = {"sanitation_dispatcher": "sanitation",
               "beautification_dispatcher": "community_beautification",
               "street_lighting_dispatcher": "street_lighting",
               "water_power_dispatcher": "water_and_power",
               "service_desk_dispatcher": "service_desk"}
DISTRICTS = ["1", "9", "13", "15", "99"]  # 99: no such district, so no rows at all
# (role, attributes of its client, the SQL that lists the rows it may see, its parameter)
CALLERS = ([(role, {}, ROUTED, dept) for role, dept in DISPATCHERS.items()]
           + [("council_office", {"district": d}, BY_DISTRICT, int(d)) for d in DISTRICTS])


def allowed(url: str, query: str, param) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(query, [param]).fetchall()}


@pytest.fixture(scope="module")
def token_of(app_client, url, first_run):
    """A token for a fresh client of `role` carrying `attributes` (made once per pair)."""
    made: dict[str, str] = {}

    def token(role: str, attributes: dict[str, str]) -> str:
        label = f"{role}:{sorted(attributes.items())}"
        if label not in made:
            with psycopg.connect(url) as conn:
                client, secret = clients.add_client(
                    conn, name=f"rows-{uuid.uuid4().hex[:8]}", role=role, attributes=attributes)
            response = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                       auth=(client.client_id, secret))
            assert response.status_code == 200, response.text
            made[label] = response.json()["access_token"]
        return made[label]

    return token


def all_pages(app_client, token: str, limit: int = 1000, **params) -> list[dict]:
    """Every row, following next_cursor page by page."""
    found, cursor = [], None
    while True:
        query = {"limit": limit, "select": "sr_number,request_type,cd", **params}
        if cursor:
            query["cursor"] = cursor
        response = app_client.get(f"/datasets/{DATASET}/rows", params=query,
                                  headers=bearer(token))
        assert response.status_code == 200, response.text[:300]
        body = response.json()
        found += body["rows"]
        cursor = body["next_cursor"]
        if not cursor:
            return found


def exported(app_client, token: str, **params) -> list[dict]:
    response = app_client.get(f"/datasets/{DATASET}/export",
                              params={"select": "sr_number", **params}, headers=bearer(token))
    assert response.status_code == 200, response.text[:300]
    return [orjson.loads(line) for line in response.content.splitlines()]


@pytest.mark.parametrize("role, attributes, query, param", CALLERS,
                         ids=[f"{c[0]}-{c[3]}" for c in CALLERS])
def test_every_route_serves_exactly_the_rows_the_filter_allows(
        app_client, url, token_of, role, attributes, query, param):
    expected = allowed(url, query, param)
    token = token_of(role, attributes)
    paged = [r["sr_number"] for r in all_pages(app_client, token, limit=700)]
    assert len(paged) == len(set(paged))  # no row twice across cursor pages
    assert set(paged) == expected
    assert {r["sr_number"] for r in exported(app_client, token)} == expected
    offset = app_client.get(f"/datasets/{DATASET}/rows", params={
        "limit": 1000, "offset": 0, "order": "created_date.desc", "select": "sr_number"},
        headers=bearer(token)).json()["rows"]
    assert {r["sr_number"] for r in offset} <= expected
    assert len(offset) == min(1000, len(expected))


def test_the_routing_covers_every_request_exactly_once(app_client, url, token_of):
    seen: dict[str, str] = {}
    for role, department in DISPATCHERS.items():
        mine = {r["sr_number"] for r in all_pages(app_client, token_of(role, {}))}
        assert mine == allowed(url, ROUTED, department)
        assert mine, f"{department} has no requests routed to it in the sample"
        assert not mine & seen.keys()  # no request reaches two departments
        seen |= dict.fromkeys(mine, department)
    with psycopg.connect(url) as conn:
        total, = conn.execute("select count(*) from shared.public_works__service_requests"
                              ).fetchone()
    assert len(seen) == total  # every request type of the sample is routed


WIDENING = [
    {"or": "(cd.eq.1,cd.neq.1)"},                     # PostgREST's or=: not a column here
    {"not.request_type": "eq.Bulky Items"},
    {"request_type": "not.eq.Graffiti Removal"},
    {"request_type": "neq.Bulky Items"},               # narrows: still inside the filter
    {"request_type": "like.*"},
    {"request_type": "in.(Graffiti Removal,Bulky Items,Other)"},
    {"request_type": "is.null"},
    {"cd": "gte.0"},
    {"select": "sr_number,request_type", "order": "request_type.desc"},
]


@pytest.mark.parametrize("params", WIDENING, ids=[json.dumps(p) for p in WIDENING])
def test_a_caller_cannot_widen_its_filter(app_client, url, token_of, params):
    token = token_of("sanitation_dispatcher", {})
    expected = allowed(url, ROUTED, "sanitation")
    response = app_client.get(f"/datasets/{DATASET}/rows", params={"limit": 1000, **params},
                              headers=bearer(token))
    assert response.status_code in (200, 400), response.text[:300]
    if response.status_code == 400:  # refused with what to fix, no rows
        assert "rows" not in response.json()
        return
    rows = response.json()["rows"]
    assert {r["sr_number"] for r in rows} <= expected
    other = exported(app_client, token, **{k: v for k, v in params.items() if k != "select"})
    assert {r["sr_number"] for r in other} <= expected


def test_a_cursor_from_another_callers_page_returns_nothing_outside_the_filter(
        app_client, url, token_of):
    graffiti = token_of("beautification_dispatcher", {})
    theirs = app_client.get(f"/datasets/{DATASET}/rows", params={"limit": 5},
                            headers=bearer(graffiti)).json()
    assert theirs["next_cursor"]
    sanitation = token_of("sanitation_dispatcher", {})
    expected = allowed(url, ROUTED, "sanitation")
    forged = base64.urlsafe_b64encode(json.dumps(["0"]).encode()).decode()
    for cursor in (theirs["next_cursor"], forged):
        rows = all_pages(app_client, sanitation, cursor=cursor)
        assert rows and {r["sr_number"] for r in rows} <= expected
        assert {r["request_type"] for r in rows} & {"Graffiti Removal"} == set()


def test_a_caller_lacking_the_filters_attribute_gets_403_naming_it(app_client, url, token_of):
    token = token_of("council_office", {})
    for route in ("rows", "export"):
        response = app_client.get(f"/datasets/{DATASET}/{route}", headers=bearer(token))
        assert response.status_code == 403
        body = response.json()
        assert body["error"] == "access_denied" and "'district'" in body["error_description"]
        assert "rows" not in body
        record = refused(url, body["request_id"], "reason")
        assert "district" in record[0][0]


def test_the_audit_record_names_the_grant_and_the_filter_applied(app_client, url, token_of):
    token = token_of("council_office", {"district": "9"})
    request_id = uuid.uuid4().hex
    response = app_client.get(f"/datasets/{DATASET}/rows", params={"limit": 3},
                              headers=bearer(token) | {"X-Request-Id": request_id})
    assert response.status_code == 200
    with psycopg.connect(url) as conn:  # committed before the response was built
        grant, applied = conn.execute(
            "select grant_id, detail->>'row_filter' from audit.events where request_id = %s",
            [request_id]).fetchone()
    assert grant == "council-reads-district-311"
    assert applied == "rows where cd equals the caller's attribute district (9)"


def test_the_dataset_page_explains_the_callers_grant_columns_and_rows(app_client, token_of):
    token = token_of("council_office", {"district": "9"})
    body = app_client.get(f"/datasets/{DATASET}", headers=bearer(token)).json()
    assert body["access"] == {
        "grant": "council-reads-district-311",
        "purpose": "Follow up residents' requests in the council member's own district.",
        "row_filter": "rows where cd equals the caller's attribute district (9)"}
    assert {"name": "address", "mask": "redact"} in body["columns"]
    assert "location" not in {c["name"] for c in body["columns"]}
    assert body["quality"]["rows_published"] is None  # a count over every row


def test_validation_reports_show_a_filtered_caller_no_counts_or_samples(app_client, token_of):
    token = token_of("sanitation_dispatcher", {})
    reports = app_client.get(f"/datasets/{DATASET}/validations",
                             headers=bearer(token)).json()["reports"]
    assert reports
    for report in reports:
        assert report["rows_in"] is None and report["rows_quarantined"] is None
        assert all("quarantined" not in rule and rule["observed"].startswith("not shown")
                   for rule in report["rules"])


def test_introspection_shows_the_attributes_the_token_carries(app_client, token_of, credentials):
    token = token_of("council_office", {"district": "15"})
    response = app_client.post("/oauth/introspect", data={"token": token},
                               auth=credentials["council_office"])
    assert response.json()["attributes"] == {"district": "15"}
    routed = token_of("street_lighting_dispatcher", {})
    response = app_client.post("/oauth/introspect", data={"token": routed},
                               auth=credentials["council_office"])
    assert response.json()["attributes"] == {"department": "street_lighting"}  # the role's


def test_published_versions_show_a_filtered_caller_no_counts(app_client, token_of, credentials):
    filtered = app_client.get(f"/datasets/{DATASET}/versions",
                              headers=bearer(token_of("council_office", {"district": "9"})))
    assert filtered.status_code == 200, filtered.text
    versions = filtered.json()["versions"]
    assert versions and all(v["rows"] is None and v["quarantined"] is None for v in versions)
    # The same route gives an unfiltered reader the counts: the withholding is the filter's.
    plain = app_client.get(f"/datasets/{DATASET}/versions",
                           headers=bearer(token_of("transport_analyst", {})))
    assert all(isinstance(v["rows"], int) for v in plain.json()["versions"])
