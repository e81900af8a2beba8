"""The rows query grammar against the real published 311 data, formats and resource limits."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time

import psycopg
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from access_policies.decide import ColumnAccess, Decision
from access_policies.masking import MASKS
from api import rows
from api.errors import ApiError
from api.main import create_app
from contracts import load_all
from tests.conftest import bearer, count, refused, token_for

ROWS = "/datasets/public_works.service_requests/rows"
TABLE = "shared.public_works__service_requests"


@pytest.fixture(scope="module")
def analyst(app_client, credentials):
    return bearer(token_for(app_client, credentials, "transport_analyst"))


def get(app_client, headers, **params):
    return app_client.get(ROWS, params={"limit": 1000, **params}, headers=headers)


def test_select_returns_only_those_columns(app_client, analyst):
    body = get(app_client, analyst, select="sr_number,status", limit=3).json()
    assert body["columns"] == ["sr_number", "status"]
    assert all(set(r) == {"sr_number", "status"} for r in body["rows"])


@pytest.mark.parametrize("params, sql_where", [
    ({"status": "eq.Cancelled"}, "status = 'Cancelled'"),
    ({"status": "neq.Closed"}, "status <> 'Closed'"),
    ({"request_type": "in.(Dead Animal Removal,Feedback)"},
     "request_type in ('Dead Animal Removal', 'Feedback')"),
    ({"cd": "gte.15"}, "cd >= 15"),
    ({"created_date": "gt.2017-12-31 23:00:00"}, "created_date > '2017-12-31 23:00'"),
    ({"nc_name": "like.*ECHO PARK*"}, "nc_name like '%%ECHO PARK%%'"),
    ({"closed_date": "is.null"}, "closed_date is null"),
    ({"anonymous": "is.true", "owner": "eq.BOS"}, "anonymous and owner = 'BOS'"),
])
def test_filters_match_the_same_sql(app_client, analyst, url, params, sql_where):
    body = get(app_client, analyst, **params).json()
    expected = count(url, f"select count(*) from {TABLE} where {sql_where}")
    assert 0 < expected <= 1000 and len(body["rows"]) == expected


def test_order_by_a_column(app_client, analyst):
    rows = get(app_client, analyst, order="created_date.desc", limit=50).json()["rows"]
    dates = [r["created_date"] for r in rows]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize("params, fragment", [
    ({"select": "sr_number,ssn"}, "select: unknown column 'ssn'"),
    ({"ssn": "eq.1"}, "ssn: unknown column 'ssn'"),
    ({"status": "equals.Closed"}, "status: unknown operator"),
    ({"status": "Closed"}, "status: unknown operator"),
    ({"closed_date": "is.maybe"}, "is. takes null, true or false"),
    ({"cd": "in.13,14"}, "in. takes a list in parentheses"),
    ({"address": "eq.2111 W BELLEVUE AVE, 90026"}, "'address' is masked for your role"),
    ({"order": "latitude.desc"}, "'latitude' is masked for your role"),
    ({"order": "status.sideways"}, "direction must be asc or desc"),
    ({"created_date": "gt.not-a-date"}, "does not fit its column's type"),
    ({"order": "status", "cursor": "WyIxLTEiXQ=="}, "cursor: pages by the primary key"),
    ({"format": "xml"}, "format"),
])
def test_bad_queries_are_400_naming_the_problem(app_client, analyst, params, fragment):
    response = get(app_client, analyst, **params)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error_description"]


def test_owner_may_filter_on_columns_it_sees_unmasked(app_client, credentials, url):
    owner = bearer(token_for(app_client, credentials, "public_works_engineer"))
    body = get(app_client, owner, zip_code="eq.90026").json()
    assert len(body["rows"]) == count(url, f"select count(*) from {TABLE}"
                                           " where zip_code = '90026'") > 0


def test_ndjson_and_csv_carry_the_same_masked_rows(app_client, analyst):
    params = {"select": "sr_number,address,status", "limit": 20}
    as_json = get(app_client, analyst, **params).json()["rows"]
    ndjson = get(app_client, analyst, format="ndjson", **params)
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in ndjson.text.splitlines()] == as_json
    as_csv = list(csv.DictReader(io.StringIO(get(app_client, analyst, format="csv",
                                                 **params).text)))
    assert [r["address"] for r in as_csv] == [r["address"] or "" for r in as_json]
    assert all(len(r["address"]) == 16 for r in as_csv if r["address"])  # pseudonyms


INJECTIONS = ["'; drop table shared.public_works__service_requests; --", "1 or 1=1",
              "Closed' or '1'='1", "\") or true --", "Closed','Open",
              "status;select pg_sleep(5)", "'||pg_sleep(5)||'", "1) or pg_sleep(5) is null--"]
# A statement that ran the payload's pg_sleep(5) would take 5 s (or hit the 5 s statement
# timeout): every answer must come well before that.
WELL_UNDER_5_S = 2.5


def _sr_numbers(url: str, where: str, value: object) -> list[str]:
    """The first page the API should serve (ordered by key), from a bound-parameter query."""
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(f"select sr_number from {TABLE} where {where}"
                                           " order by sr_number limit 1000", [value])]


def _rows_are(expected: list[str]):
    def check(body: dict) -> None:
        assert [r["sr_number"] for r in body["rows"]] == expected

    return check


def _says(fragment: str):
    def check(body: dict) -> None:
        assert fragment in body["error_description"], body

    return check


def _attack_positions(url: str, attack: str) -> list[tuple[dict | str, int, object]]:
    """Each place a payload can go: (query parameters or path, expected status, check)."""
    listed = [v.strip() for v in f"{attack},Closed".split(",")]
    return [
        ({"status": f"eq.{attack}"}, 200, _rows_are(_sr_numbers(url, "status = %s", attack))),
        ({"status": f"in.({attack},Closed)"}, 200,
         _rows_are(_sr_numbers(url, "status = any(%s)", listed))),
        ({"nc_name": f"like.{attack}"}, 200,
         _rows_are(_sr_numbers(url, "nc_name like %s", attack))),
        ({attack: "eq.1"}, 400, _says(f"{attack}: unknown column {attack!r}")),
        ({"select": attack}, 400, _says("select: unknown column")),
        ({"order": attack}, 400, _says("order: unknown column")),
        ({"cursor": attack}, 400, _says("cursor: not a cursor this API returned")),
        ({"limit": attack}, 400, _says("limit")),
        ({"offset": attack}, 400, _says("offset")),
        ({"format": attack}, 400, _says("format")),
        (f"/datasets/{attack}/rows", 403,
         _says(f"no grant lets role transport_analyst read dataset {attack!r}")),
    ]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_strings_in_every_parameter_are_refused_or_plain_values(
        app_client, analyst, url, attack):
    assert "*" not in attack  # like's wildcard: the expected rows take the payload as is
    before = count(url, f"select count(*) from {TABLE}")
    for where, status, check in _attack_positions(url, attack):
        started = time.monotonic()
        if isinstance(where, str):
            response = app_client.get(where, headers=analyst)
        else:
            response = get(app_client, analyst, **where)
        took = time.monotonic() - started
        assert (response.status_code, where) == (status, where), response.text
        check(response.json())
        assert took < WELL_UNDER_5_S, (where, took)
    assert count(url, f"select count(*) from {TABLE}") == before


def test_a_plain_value_filter_still_matches(app_client, analyst, url):
    # The positions above expect empty pages for most payloads: this one shows the
    # same three filters do return rows when the value is in the data.
    for where, status, check in _attack_positions(url, "Closed")[:2]:
        response = get(app_client, analyst, **where)
        assert response.status_code == status and len(response.json()["rows"]) == 1000
        check(response.json())


# ---------- resource limits


def test_rate_limit_answers_429_with_retry_after_and_is_audited(settings, url, credentials):
    tight = settings.model_copy(update={"rate_limit_per_minute": 3})
    with TestClient(create_app(tight, url)) as client:
        headers = {**bearer(token_for(client, credentials, "transport_analyst")),
                   "X-Request-Id": "limited"}
        codes = [client.get(ROWS, params={"limit": 1}, headers=headers) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1
    assert codes[-1].json()["error"] == "rate_limited"
    assert refused(url, "limited", "status_code, reason") == [(429, "over the rate limit")]


def test_api_queries_run_under_a_statement_timeout(app_client, settings):
    with app_client.app.state.hub.pool.connection() as conn:
        shown = conn.execute("show statement_timeout").fetchone()[0]
    assert shown == f"{settings.statement_timeout_ms // 1000}s"


def test_a_masked_primary_key_gives_no_cursor_and_takes_none(settings):
    # A cursor is a filter on the key (key > value): on a masked key it would let a caller
    # search out hidden values, and the cursor handed out would carry the raw key.
    contract = load_all(settings.contracts_dir)["public_works.service_requests"]
    masked = Decision(True, "test", None, (ColumnAccess("sr_number", "hash"),
                                           ColumnAccess("status", None)))
    with pytest.raises(ApiError, match="primary key 'sr_number' is masked"):
        rows.Page.parse(_request("cursor=WyIxLTEiXQ%3D%3D"), settings, masked, "sr_number",
                        10, 0, "WyIxLTEiXQ==")
    page = rows.Page.parse(_request(""), settings, masked, "sr_number", 1, 0, None)
    records = [{"sr_number": "4f1c2a", "status": "Closed"}]
    assert rows.render("json", contract.dataset_id, 1, page, records, contract).body.find(
        b'"next_cursor":null') > 0
    unmasked = Decision(True, "test", None, (ColumnAccess("sr_number", None),))
    page = rows.Page.parse(_request(""), settings, unmasked, "sr_number", 1, 0, None)
    assert rows.decode_cursor(rows._next_cursor(contract, page, records)) == ["4f1c2a"]


def test_redact_and_null_applied_by_the_warehouse_match_the_python_masks(settings, url,
                                                                         first_run):
    # redact and null run in SQL (api/rows.IN_SQL): the hidden values never reach the API.
    contract = load_all(settings.contracts_dir)["public_works.service_requests"]
    decision = Decision(True, "test", None, (
        ColumnAccess("sr_number", None), ColumnAccess("mobile_os", "redact"),
        ColumnAccess("latitude", "null"), ColumnAccess("address", "hash")))
    page = rows.Page.parse(_request(""), settings, decision, "sr_number", 200, 0, None)
    assert page.python_masks == [None, None, None, "hash"]

    async def fetch() -> list[tuple]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return (await rows.fetch(conn, contract, page))[1]

    found = asyncio.run(fetch())
    with psycopg.connect(url) as conn:
        raw = conn.execute("select sr_number, mobile_os, latitude, address from"
                           f" {TABLE} order by sr_number limit 200").fetchall()
    assert None in {r[1] for r in raw} and len({r[1] for r in raw}) > 2  # nulls and values
    assert [r[:3] for r in found] == [
        (r[0], MASKS["redact"](r[1], b""), MASKS["null"](r[2], b"")) for r in raw]
    assert [r[3] for r in found] == [r[3] for r in raw]  # the keyed hash is Python's


def _request(query: str) -> Request:
    return Request({"type": "http", "query_string": query.encode(), "headers": []})
