"""The gate: a dataset-level failure keeps the last good version served; SQL rules run in a
sandbox that refuses at run time what lint would have refused. Runs after test_pipeline."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import timedelta

import psycopg
import pytest

from contracts import load_all
from flows.pipeline import run_all
from flows.sql_rules import run_sql_rules
from hub import clock
from tests.conftest import REPO, count

DATASET = "public_works.service_requests"
LATEST = "select max(version) from hub.dataset_versions where dataset = %s"


@pytest.fixture(scope="module")
def stricter(tmp_path_factory, settings):
    """Settings whose contract (2.0.0: a new rule is a breaking change) adds a table rule
    the real data cannot meet."""
    root = tmp_path_factory.mktemp("stricter")
    shutil.copytree(REPO / "contracts", root / "contracts")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project",
                    ignore=shutil.ignore_patterns("target"))
    path = root / "contracts" / "public_works" / "service_requests.odcs.yaml"
    text = path.read_text().replace("version: 1.0.0", "version: 2.0.0", 1)
    text = text.replace("""        dimension: completeness
""", """        dimension: completeness
      - type: sql
        query: select count(*) from service_requests where status = 'Closed'
        mustBeLessThan: 10
""", 1)
    path.write_text(text)
    return settings.model_copy(update={"contracts_dir": root / "contracts",
                                       "dbt_project_dir": root / "dbt_project"})


def test_dataset_level_failure_keeps_the_last_good_version(first_run, stricter, url):
    served, rows = count(url, LATEST, [DATASET]), count(url, "select count(*) from "
                                                        "shared.public_works__service_requests")
    [report] = run_all(DATASET, stricter)
    assert report.status == "failed"
    [failure] = report.failures
    assert (failure.rule, failure.engine) == ("sql(#0)", "sandbox")
    assert "expected < 10" in failure.message
    assert count(url, LATEST, [DATASET]) == served
    assert count(url, "select count(*) from shared.public_works__service_requests") == rows


def test_the_failure_is_reported_and_the_owner_notified(first_run, url):
    with psycopg.connect(url) as conn:
        passed, rules = conn.execute(
            "select passed, rules from hub.validation_reports where contract_version = '2.0.0'"
        ).fetchone()
        notice = conn.execute("select department, kind, message from hub.notifications"
                              " order by notification_id desc limit 1").fetchone()
    assert passed is False
    assert [r["passed"] for r in rules if r["rule"] == "sql(#0)"] == [False]
    assert notice[:2] == ("public_works", "validation.failed") and "sql(#0)" in notice[2]


def test_the_breaking_version_was_registered_and_consumers_told(first_run, url):
    with psycopg.connect(url) as conn:
        versions = conn.execute("select version, deprecated_after is not null, breaking_changes"
                                " from hub.contracts where dataset = %s order by version",
                                [DATASET]).fetchall()
        # This version's notices only: test_registry writes one of the same kind by hand
        # into the shared warehouse, and may run first.
        notices = conn.execute("select department from hub.notifications"
                               " where kind = 'contract.breaking_change'"
                               " and detail->>'version' = '2.0.0'").fetchall()
    assert versions == [("1.0.0", True, []), ("2.0.0", False, ["rule sql(#0) added"])]
    assert notices == [("transport",)]  # transport holds a grant; the owner is not notified


@pytest.fixture(scope="module")
def next_major(tmp_path_factory, stricter):
    """2.1.0: the failing rule dropped again (a loosening), so 2.x publishes."""
    path = stricter.contracts_dir / "public_works" / "service_requests.odcs.yaml"
    text = path.read_text().replace("version: 2.0.0", "version: 2.1.0", 1)
    path.write_text(text.replace("""      - type: sql
        query: select count(*) from service_requests where status = 'Closed'
        mustBeLessThan: 10
""", ""))
    return stricter


def test_new_major_publishes_and_the_old_one_stays_readable(first_run, next_major, url,
                                                           credentials):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.conftest import bearer, token_for

    before = count(url, LATEST, [DATASET])
    [report] = run_all(DATASET, next_major)
    assert (report.status, report.version) == ("published", before + 1)
    rows = "/datasets/public_works.service_requests/rows"
    with TestClient(create_app(next_major, url)) as client:
        headers = bearer(token_for(client, credentials, "transport_analyst"))
        current = client.get(rows, params={"limit": 5}, headers=headers).json()
        old = client.get(rows, params={"limit": 5, "major": 1}, headers=headers)
        assert old.status_code == 200, old.text
        assert (current["version"], old.json()["version"]) == (before + 1, before)
        assert old.json()["rows"] == current["rows"]  # same data, kept under the old contract
        missing = client.get(rows, params={"major": 7}, headers=headers)
        assert missing.status_code == 404 and "no older major version 7" in missing.text
        with psycopg.connect(url) as conn:
            conn.execute("update hub.contracts set deprecated_after = %s"
                         " where dataset = %s and major = 1",
                         [clock.today() - timedelta(days=1), DATASET])
        gone = client.get(rows, params={"major": 1}, headers=headers)
        assert gone.status_code == 410 and "move to the current major" in gone.text


def _with_rule(settings, query: str):
    contract = load_all(settings.contracts_dir)[DATASET]
    return dataclasses.replace(contract, sql_checks=((query, "=", 0),))


@pytest.mark.parametrize("query, message", [
    ("select count(*) from audit.events", "permission denied for schema audit"),
    ("select count(*) from hub.clients", "permission denied for schema hub"),
    ("select nextval('hub.notifications_notification_id_seq')", "permission denied"),
    ("select count(*) from {object}, pg_sleep(2)", "statement timeout"),
    ("select 'zero'", "returned 'zero', not a number"),
])
def test_sandbox_refuses_at_run_time_what_lint_missed(first_run, settings, url, query, message):
    # Contracts built by hand, bypassing lint, as a hostile registry entry would be.
    result = run_sql_rules(url, _with_rule(settings, query), schema="shared", timeout_ms=200)
    assert not result.success
    assert message in result.failures[0].message


def test_sandbox_runs_a_well_behaved_rule(first_run, settings, url):
    query = "select count(*) from {object} where sr_number is null"
    assert run_sql_rules(url, _with_rule(settings, query), schema="shared").success
