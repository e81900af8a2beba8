"""Streamed exports: every matching row, masked, audited before and after."""

from __future__ import annotations

import csv
import io
import json
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.conftest import bearer, count, token_for

EXPORT = "/datasets/public_works.service_requests/export"


def test_ndjson_export_streams_every_matching_row_masked(app_client, credentials, url):
    headers = bearer(token_for(app_client, credentials, "transport_analyst"))
    response = app_client.get(EXPORT, params={"select": "sr_number,status,address,latitude",
                                              "status": "eq.Closed"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    expected = count(url, "select count(*) from shared.public_works__service_requests"
                          " where status = 'Closed'")
    assert len(rows) == expected > 1000  # more than one page's cap
    assert {r["status"] for r in rows} == {"Closed"}
    assert all(r["latitude"] is None for r in rows)  # masked: null for this grant
    with psycopg.connect(url) as conn:  # addresses are keyed pseudonyms, never the address
        real = dict(conn.execute("select sr_number, address from"
                                 " shared.public_works__service_requests").fetchall())
    assert all(r["address"] != real[r["sr_number"]] for r in rows if real[r["sr_number"]])


def test_csv_export_has_a_header_and_the_limit(app_client, credentials):
    headers = bearer(token_for(app_client, credentials, "public_works_engineer"))
    response = app_client.get(EXPORT, params={"format": "csv", "select": "sr_number,status",
                                              "limit": 25, "order": "sr_number.asc"},
                              headers=headers)
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == ["sr_number", "status"] and len(table) == 26
    assert [r[0] for r in table[1:]] == sorted(r[0] for r in table[1:])


def test_export_is_audited_before_and_after(app_client, credentials, url):
    headers = bearer(token_for(app_client, credentials, "public_works_engineer"))
    app_client.get(EXPORT, params={"select": "sr_number", "limit": 7}, headers=headers)
    with psycopg.connect(url) as conn:
        started, finished = conn.execute(
            "select kind, rows_returned, detail from audit.events where kind like 'data.export%'"
            " order by event_id desc limit 2").fetchall()[::-1]
    assert started[0] == "data.export" and started[1] == 0
    assert finished[0] == "data.export.completed" and finished[1] == 7
    assert finished[2]["outcome"] == "complete" and finished[2]["bytes"] > 0


def test_export_refuses_bad_input_before_streaming(app_client, credentials):
    headers = bearer(token_for(app_client, credentials, "transport_analyst"))
    bad = app_client.get(EXPORT, params={"created_date": "gt.not-a-date"}, headers=headers)
    assert bad.status_code == 400 and "does not fit its column" in bad.text
    over = app_client.get(EXPORT, params={"limit": 10_000_001}, headers=headers)
    assert over.status_code == 400 and "rows per export" in over.text
    outsider = bearer(token_for(app_client, credentials, "health_inspector"))
    assert app_client.get(EXPORT, headers=outsider).status_code == 403


def _longest_prefix(lines: list[bytes], room: int) -> list[bytes]:
    taken, used = [], 0
    for line in lines:
        if used + len(line) > room:
            break
        taken.append(line)
        used += len(line)
    return taken


# Where the cap falls in the rows' bytes: past the first 5,000-row chunk the export fetches;
# half-way through the second row.
CAPS = [lambda rows: int(sum(map(len, rows)) * 0.7), lambda rows: len(rows[0]) + len(rows[1]) // 2]


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
@pytest.mark.parametrize("cap_of", CAPS)
def test_an_export_over_the_byte_cap_ends_after_the_last_whole_row_that_fits(
        app_client, credentials, settings, url, fmt, cap_of):
    params = {"select": "sr_number,status,created_date", "format": fmt}
    headers = bearer(token_for(app_client, credentials, "public_works_engineer"))
    lines = app_client.get(EXPORT, params=params, headers=headers).content.splitlines(
        keepends=True)
    head, body = (lines[:1], lines[1:]) if fmt == "csv" else ([], lines)
    cap = len(b"".join(head)) + cap_of(body)
    rid = f"capped-{uuid.uuid4().hex}"
    capped = settings.model_copy(update={"max_export_bytes": cap})
    with TestClient(create_app(capped, url)) as client:
        cut = client.get(EXPORT, params=params, headers={
            **bearer(token_for(client, credentials, "public_works_engineer")),
            "X-Request-Id": rid})
    rows = _longest_prefix(body, cap_of(body))
    assert cut.status_code == 200 and len(cut.content) <= cap
    assert cut.content == b"".join(head + rows) and 0 < len(rows) < len(body)
    with psycopg.connect(url) as conn:
        done = conn.execute("select rows_returned, detail from audit.events where request_id"
                            " = %s and kind = 'data.export.completed'", [rid]).fetchone()
    assert done[0] == len(rows)
    assert (done[1]["outcome"], done[1]["bytes"]) == ("byte_cap", len(cut.content))
