"""The full path on real parts: departmental DB -> Prefect -> COPY -> dbt -> GX -> shared.

These tests run in file order on one warehouse: each builds on the state the previous
one left, as successive pipeline passes do in production.
"""

from __future__ import annotations

import psycopg
import pytest

from flows.pipeline import run_all
from tests.conftest import count

SHARED = "select count(*) from shared.public_works__service_requests"
RAW = "select count(*) from raw_public_works.service_requests"
DATASET = "public_works.service_requests"


def _insert_source_row(source_url: str, sr_number: str | None, status: str, when: str) -> None:
    """Copy a real row under a new key, updated at `when` (after the cursor so far)."""
    with psycopg.connect(source_url) as conn:
        conn.execute(
            "insert into service_requests select * from service_requests"
            " where sr_number = '1-870704831'")
        conn.execute(
            "update service_requests set sr_number = %s, status = %s,"
            " updated_date = %s"
            " where ctid = (select max(ctid) from service_requests"
            "               where sr_number = '1-870704831')",
            [sr_number, status, when])


def test_first_run_publishes_every_source_row(first_run, settings, source_url):
    [report] = first_run
    source_rows = count(source_url, "select count(*) from service_requests")
    assert source_rows == 9999  # the real LA 311 sample
    assert (report.status, report.rows_loaded, report.version) == ("published", source_rows, 1)
    assert count(settings.database_url.get_secret_value(), SHARED) == source_rows


def test_published_table_has_the_contract_types(first_run, settings):
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        types = dict(conn.execute(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = 'shared' and table_name = 'public_works__service_requests'"
        ).fetchall())
    assert types["created_date"] == "timestamp without time zone"
    assert types["anonymous"] == "boolean"
    assert types["latitude"] == "double precision"
    assert types["cd"] == "integer"


def test_second_run_loads_nothing_twice(first_run, settings):
    url = settings.database_url.get_secret_value()
    [report] = run_all(DATASET, settings)
    assert (report.status, report.rows_loaded, report.version) == ("published", 0, 1)
    assert count(url, RAW) == 9999


def test_updated_source_row_replaces_its_old_version(first_run, settings, source_url):
    url = settings.database_url.get_secret_value()
    with psycopg.connect(source_url) as conn:
        conn.execute("update service_requests set status = 'Open',"
                     " updated_date = '2019-06-01 00:00:00' where sr_number = '1-870694601'")
    [report] = run_all(DATASET, settings)
    assert (report.status, report.rows_loaded, report.version) == ("published", 1, 2)
    assert count(url, RAW) == 10000  # raw keeps both versions of the row
    assert count(url, SHARED) == 9999  # shared keeps the latest one
    assert count(url, "select count(*) from shared.public_works__service_requests"
                      " where sr_number = '1-870694601' and status = 'Open'") == 1


def test_value_outside_allowed_set_is_kept_out_of_shared(first_run, settings, source_url):
    url = settings.database_url.get_secret_value()
    _insert_source_row(source_url, "1-999999001", "Lost In Transit", "2020-01-01")
    [report] = run_all(DATASET, settings)
    assert report.status == "failed"
    rules = {(f.rule, f.engine) for f in report.failures}
    assert ("accepted_values(status)", "dbt") in rules
    assert ("accepted_values(status)", "great_expectations") in rules
    gx_message = next(f.message for f in report.failures if f.engine == "great_expectations")
    assert "1 row(s)" in gx_message and "Lost In Transit" in gx_message
    # The last good version is still the one served, without the bad row.
    assert count(url, "select max(version) from hub.dataset_versions") == 2
    assert count(url, "select count(*) from shared.public_works__service_requests"
                      " where sr_number = '1-999999001'") == 0
    assert count(url, "select count(*) from hub.runs where status = 'failed'") == 1


def test_rerun_without_a_fix_still_fails(first_run, settings):
    [report] = run_all(DATASET, settings)
    assert report.status == "failed" and report.rows_loaded == 0


def test_fixed_source_row_publishes_again(first_run, settings, source_url):
    url = settings.database_url.get_secret_value()
    with psycopg.connect(source_url) as conn:
        conn.execute("update service_requests set status = 'Closed',"
                     " updated_date = '2020-02-01 00:00:00' where sr_number = '1-999999001'")
    [report] = run_all(DATASET, settings)
    assert (report.status, report.version) == ("published", 3)
    assert count(url, SHARED) == 10000


def test_null_key_is_kept_out_of_shared_and_named(first_run, settings, source_url):
    url = settings.database_url.get_secret_value()
    _insert_source_row(source_url, None, "Closed", "2020-03-01")
    [report] = run_all(DATASET, settings)
    assert report.status == "failed"
    assert [f.rule for f in report.failures] == ["not_null(sr_number)"]
    assert "violates not-null constraint" in report.failures[0].message
    assert count(url, SHARED) == 10000


def test_unknown_dataset_is_refused_before_anything_runs(settings):
    with pytest.raises(KeyError, match="unknown dataset 'transport.nope'"):
        run_all("transport.nope", settings)
