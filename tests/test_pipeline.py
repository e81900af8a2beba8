"""The full path on real parts: departmental DB -> Prefect -> COPY -> dbt -> GX -> shared.

The first two tests read the session's first run. Each later one makes its own successive
passes on a warehouse and a 311 system of its own (`passed`), so no test builds on
another's leftovers and any order passes.
"""

from __future__ import annotations

import shutil

import psycopg
import pytest
from pydantic import SecretStr

from contracts import load_all
from flows.pipeline import run_all
from tests.conftest import REPO, cloned, count, own_public_works, report_of

SHARED = "select count(*) from shared.public_works__service_requests"
RAW = "select count(*) from raw_public_works.service_requests"
DATASET = "public_works.service_requests"
CONTRACT = load_all(REPO / "contracts")[DATASET]


@pytest.fixture(scope="module")
def first_pass(server_url, settings, prefect_harness, tmp_path_factory):
    """A warehouse and a 311 system of this module's own after a first pass (version 1):
    the template each test's `passed` copies. Nothing runs on it after this pass."""
    home = tmp_path_factory.mktemp("pipeline-template")
    with pytest.MonkeyPatch.context() as patch, \
            own_public_works(server_url, settings, home, patch) as (ours, source):
        [report] = run_all(DATASET, ours)
        assert (report.status, report.version) == ("published", 1), report
        patch.undo()  # the session's own 311 system again, while other tests of the module run
        yield ours, source


@pytest.fixture
def passed(server_url, first_pass, tmp_path, monkeypatch):
    """(settings, warehouse, source) of this test's own, copies of the first pass's: the
    passes a test makes and the source rows it edits touch nothing another test reads."""
    template, template_source = first_pass
    with cloned(server_url, template.database_url.get_secret_value(), "hub_own") as url, \
            cloned(server_url, template_source, "hub_src") as source:
        monkeypatch.setenv(CONTRACT.source.connection_env, source)
        home = tmp_path / "home"
        shutil.copytree(template.home, home)  # its keys and dbt state, as if it had run here
        ours = template.model_copy(update={"database_url": SecretStr(url), "home": home})
        yield ours, url, source


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
    report = report_of(first_run, DATASET)
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


def test_second_run_loads_nothing_twice(passed):
    settings, url, _ = passed
    [report] = run_all(DATASET, settings)
    assert (report.status, report.rows_loaded, report.version) == ("published", 0, 1)
    assert count(url, RAW) == 9999


def test_updated_source_row_replaces_its_old_version(passed):
    settings, url, source_url = passed
    with psycopg.connect(source_url) as conn:
        conn.execute("update service_requests set status = 'Open',"
                     " updated_date = '2019-06-01 00:00:00' where sr_number = '1-870694601'")
    [report] = run_all(DATASET, settings)
    assert (report.status, report.rows_loaded, report.version) == ("published", 1, 2)
    assert count(url, RAW) == 10000  # raw keeps both versions of the row
    assert count(url, SHARED) == 9999  # shared keeps the latest one
    assert count(url, "select count(*) from shared.public_works__service_requests"
                      " where sr_number = '1-870694601' and status = 'Open'") == 1


QUARANTINE = "select count(*) from quarantine.public_works__service_requests"
SOURCE = "select count(*) from service_requests"


def _accounted_for(url: str, source_url: str) -> None:
    """Every source record is either published or quarantined, exactly once."""
    assert count(source_url, SOURCE) == count(url, SHARED) + count(url, QUARANTINE)


def _lost_in_transit(settings, source_url: str) -> None:
    """A pass over one new row whose status is outside the accepted set: version 2."""
    _insert_source_row(source_url, "1-999999001", "Lost In Transit", "2020-01-01")
    [report] = run_all(DATASET, settings)
    assert (report.status, report.version, report.quarantined) == ("published", 2, 1)


def test_row_outside_allowed_set_is_quarantined_not_published(passed):
    settings, url, source_url = passed
    _lost_in_transit(settings, source_url)
    assert count(url, SHARED) == 9999
    with psycopg.connect(url) as conn:
        held = conn.execute("select sr_number, failed_rules, reasons"
                            " from quarantine.public_works__service_requests").fetchall()
    assert held == [("1-999999001", ["accepted_values(status)"],
                     ["status = 'Lost In Transit' is not an accepted value"])]
    _accounted_for(url, source_url)
    _validation_report_counts_the_gate(url)


def _validation_report_counts_the_gate(url: str) -> None:
    with psycopg.connect(url) as conn:
        passed, rows_in, rows_passed, held, rules = conn.execute(
            "select passed, rows_in, rows_passed, rows_quarantined, rules"
            " from hub.validation_reports order by created_at desc limit 1").fetchone()
    assert (passed, rows_in, rows_passed, held) == (True, 10000, 9999, 1)
    by_rule = {r["rule"]: r for r in rules}
    assert by_rule["accepted_values(status)"]["quarantined"] == 1
    assert by_rule["unique(sr_number)"] == {**by_rule["unique(sr_number)"], "passed": True,
                                            "level": "dataset"}


def test_fixed_source_row_leaves_quarantine(passed):
    settings, url, source_url = passed
    _lost_in_transit(settings, source_url)
    with psycopg.connect(source_url) as conn:
        conn.execute("update service_requests set status = 'Closed',"
                     " updated_date = '2020-02-01 00:00:00' where sr_number = '1-999999001'")
    [report] = run_all(DATASET, settings)
    assert (report.status, report.version, report.quarantined) == ("published", 3, 0)
    assert (count(url, SHARED), count(url, QUARANTINE)) == (10000, 0)


def test_rows_without_key_are_all_quarantined(passed):
    settings, url, source_url = passed
    _insert_source_row(source_url, None, "Closed", "2020-03-01")
    _insert_source_row(source_url, None, "Nonsense", "2020-03-02")
    [report] = run_all(DATASET, settings)
    assert (report.status, report.quarantined) == ("published", 2)
    with psycopg.connect(url) as conn:
        rules = sorted(r[0] for r in conn.execute(
            "select failed_rules from quarantine.public_works__service_requests"))
    assert rules == [["not_null(sr_number)"],
                     ["not_null(sr_number)", "accepted_values(status)"]]
    _accounted_for(url, source_url)


def test_unknown_dataset_is_refused_before_anything_runs(settings):
    with pytest.raises(KeyError, match="unknown dataset 'transport.nope'"):
        run_all("transport.nope", settings)
