"""The quarantine's pages cost the same however many rows are held back (issue 18's flat
cost growth): the total is the count taken at publish, not one per page; the rows are
ordered through an index on the key (held-back rows may repeat a key or lack one, so it is
not unique); an offset past HUB_MAX_OFFSET is refused, saying what to do, and audited.

A publish of human resources' salaries (owned by the hr_analyst role) whose candidate holds
nine held-back rows, in a warehouse of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from api.main import create_app
from contracts import load_all
from contracts.mapping import pg_type
from flows.publish import publish
from hub import clients
from tests.conftest import bearer, own_warehouse, refused

DATASET = "human_resources.employee_salaries"
HELD = [3, 1, 2, 2, None, 7, 5, 4, 6]  # their keys: one repeated, one missing
ROUTE = f"/datasets/{DATASET}/quarantine"


def candidate(conn: psycopg.Connection, contract) -> None:
    """An empty candidate and a candidate quarantine of HELD, as a dbt build leaves them."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name),
                                sql.SQL(pg_type(c.physical_type, c.logical_type)))
        for c in contract.columns)
    table = sql.Identifier("candidate", contract.relation_name)
    held = sql.Identifier("candidate", f"{contract.relation_name}__quarantine")
    conn.execute("create schema if not exists candidate")
    conn.execute(sql.SQL("create table {} ({})").format(table, columns))
    conn.execute(sql.SQL("create table {} ({}, failed_rules text[], reasons text[])").format(
        held, columns))
    for key in HELD:
        conn.execute(sql.SQL("insert into {} (employee_id, name, failed_rules, reasons) values"
                             " (%s, 'x', array['not_null(employee_id)'], array['why'])"
                             ).format(held), [key])


@pytest.fixture
def api(server_url, settings) -> Iterator[tuple[TestClient, str, str]]:
    """(the API on the warehouse, a token of the owning department's engineer, its URL)"""
    contract = load_all(settings.contracts_dir)[DATASET]
    with own_warehouse(server_url, "hub_test_qpages") as url:
        with psycopg.connect(url) as conn:
            candidate(conn, contract)
            client, secret = clients.add_client(conn, name="hr-engineer", role="hr_analyst")
        publish(url, contract, uuid.uuid4())
        with TestClient(create_app(settings, url)) as app:
            token = app.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(client.client_id, secret)).json()["access_token"]
            yield app, token, url


def test_pages_follow_the_key_and_the_total_is_the_count_taken_at_publish(api):
    app, token, url = api
    served, totals = [], set()
    for offset in range(0, len(HELD), 2):
        page = app.get(ROUTE, params={"limit": 2, "offset": offset}, headers=bearer(token))
        assert page.status_code == 200, page.text
        served += [row["employee_id"] for row in page.json()["rows"]]
        totals.add(page.json()["total"])
    assert served == sorted(k for k in HELD if k is not None) + [None]  # nulls last
    assert totals == {len(HELD)}
    with psycopg.connect(url) as conn:  # the count the publish recorded: no count per page
        conn.execute("update hub.dataset_versions set quarantined = 99 where dataset = %s",
                     [DATASET])
    assert app.get(ROUTE, headers=bearer(token)).json()["total"] == 99


def test_the_quarantine_is_indexed_on_the_key(api):
    _, _, url = api
    with psycopg.connect(url) as conn:
        definitions = [d for (d,) in conn.execute(
            "select indexdef from pg_indexes where schemaname = 'quarantine'"
            " and tablename = 'human_resources__employee_salaries'")]
    assert [d.split(" USING ")[1] for d in definitions] == ["btree (employee_id)"]


def test_an_offset_past_the_cap_is_refused_saying_what_to_do(api, settings):
    app, token, url = api
    deep = app.get(ROUTE, params={"offset": settings.max_offset + 1}, headers=bearer(token))
    assert deep.status_code == 400
    body = deep.json()
    assert body["error_description"] == (
        f"offset: at most {settings.max_offset}; the quarantine pages by offset only (its "
        "rows may repeat a key): fix the rules the first rows break and publish again")
    assert refused(url, body["request_id"], "status_code, dataset") == [(400, DATASET)]
    at_cap = app.get(ROUTE, params={"offset": settings.max_offset}, headers=bearer(token))
    assert at_cap.status_code == 200 and at_cap.json()["rows"] == []
