"""Streamed exports: every matching row, masked, audited before and after."""

from __future__ import annotations

import csv
import io
import json

import psycopg

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
