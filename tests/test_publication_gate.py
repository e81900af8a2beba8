"""The gate: a dataset-level failure keeps the last good version served; SQL rules run in a
sandbox that refuses at run time what lint would have refused. Each pipeline pass runs on
a warehouse of the test's own."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from pydantic import SecretStr

from contracts import load_all
from flows.pipeline import run_all
from flows.sql_rules import run_sql_rules
from hub import clients, clock
from hub.settings import Settings
from tests.conftest import REPO, bearer, cloned, count, own_public_works, token_for

DATASET = "public_works.service_requests"
LATEST = "select max(version) from hub.dataset_versions where dataset = %s"
SHARED = "select count(*) from shared.public_works__service_requests"
CONTRACT = load_all(REPO / "contracts")[DATASET]


RULE = """      - type: sql
        query: select count(*) from service_requests where status = 'Closed'
        mustBeLessThan: 10
"""


def _contract_copy(root: Path, settings: Settings, version: str, rule: bool) -> Settings:
    """`settings` with a copy of the contracts and dbt project whose 311 contract is
    `version`, with (or without) a table rule the real data cannot meet."""
    shutil.copytree(REPO / "contracts", root / "contracts")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project",
                    ignore=shutil.ignore_patterns("target"))
    path = root / "contracts" / "public_works" / "service_requests.odcs.yaml"
    text = path.read_text().replace("version: 1.0.0", f"version: {version}", 1)
    if rule:
        text = text.replace("        dimension: completeness\n",
                            "        dimension: completeness\n" + RULE, 1)
    path.write_text(text)
    return settings.model_copy(update={"contracts_dir": root / "contracts",
                                       "dbt_project_dir": root / "dbt_project"})


@pytest.fixture(scope="module")
def failed_once(server_url, settings, prefect_harness, tmp_path_factory):
    """On a warehouse of this module's own: version 1 published, then a pass under 2.0.0 (a
    major change) with a table rule the data fails. The template each test's `failed`
    copies; nothing runs on it after these passes."""
    home = tmp_path_factory.mktemp("gate-template")
    with pytest.MonkeyPatch.context() as patch, \
            own_public_works(server_url, settings, home / "home", patch) as (ours, source):
        url = ours.database_url.get_secret_value()
        assert run_all(DATASET, ours)[0].status == "published"
        before = count(url, LATEST, [DATASET]), count(url, SHARED)
        [report] = run_all(DATASET, _contract_copy(home / "2.0.0", ours, "2.0.0", True))
        patch.undo()  # the session's own 311 system again, while other tests of the module run
        yield ours, source, report, before


@pytest.fixture
def failed(server_url, failed_once, tmp_path, monkeypatch):
    """(settings, warehouse, report, (version, rows) before) of this test's own: copies
    of the template's warehouse and 311 system, so a later pass touches no other test's."""
    template, template_source, report, before = failed_once
    with cloned(server_url, template.database_url.get_secret_value(), "hub_own") as url, \
            cloned(server_url, template_source, "hub_src") as source:
        monkeypatch.setenv(CONTRACT.source.connection_env, source)
        shutil.copytree(template.home, tmp_path / "home")
        ours = template.model_copy(update={"database_url": SecretStr(url),
                                           "home": tmp_path / "home"})
        yield ours, url, report, before


def test_dataset_level_failure_keeps_the_last_good_version(failed):
    _, url, report, before = failed
    assert report.status == "failed"
    [failure] = report.failures
    assert (failure.rule, failure.engine) == ("sql(#0)", "sandbox")
    assert "expected < 10" in failure.message
    assert (count(url, LATEST, [DATASET]), count(url, SHARED)) == before


def test_the_failure_is_reported_and_the_owner_notified(failed):
    _, url, _, _ = failed
    with psycopg.connect(url) as conn:
        passed, rules = conn.execute(
            "select passed, rules from hub.validation_reports where contract_version = '2.0.0'"
        ).fetchone()
        notice = conn.execute("select department, kind, message from hub.notifications"
                              " order by notification_id desc limit 1").fetchone()
    assert passed is False
    assert [r["passed"] for r in rules if r["rule"] == "sql(#0)"] == [False]
    assert notice[:2] == ("public_works", "validation.failed") and "sql(#0)" in notice[2]


def test_the_breaking_version_was_registered_and_consumers_told(failed):
    _, url, _, _ = failed
    with psycopg.connect(url) as conn:
        versions = conn.execute("select version, deprecated_after is not null, breaking_changes"
                                " from hub.contracts where dataset = %s order by version",
                                [DATASET]).fetchall()
        notices = conn.execute("select department from hub.notifications"
                               " where kind = 'contract.breaking_change'"
                               " order by department").fetchall()
    assert versions == [("1.0.0", True, []), ("2.0.0", False, ["rule sql(#0) added"])]
    # Every department holding a grant in the shipped policy is told; the owner is not.
    assert notices == [(d,) for d in granted_departments(DATASET) if d != "public_works"]
    assert ("transport",) in notices


def granted_departments(dataset: str) -> list[str]:
    """Read from the policy file itself, apart from the registry's own reading of it."""
    policy = yaml.safe_load((REPO / "access_policies" / "city.yaml").read_text())
    return sorted({policy["roles"][role]["department"] for grant in policy["grants"]
                   if grant["dataset"] == dataset for role in grant["roles"]})


def test_new_major_publishes_and_the_old_one_stays_readable(failed, tmp_path):
    from fastapi.testclient import TestClient

    from api.main import create_app

    ours, url, _, _ = failed
    # 2.1.0: the failing rule dropped again (a loosening), so 2.x publishes.
    next_major = _contract_copy(tmp_path / "2.1.0", ours, "2.1.0", False)
    before = count(url, LATEST, [DATASET])
    [report] = run_all(DATASET, next_major)
    assert (report.status, report.version) == ("published", before + 1)
    with psycopg.connect(url) as conn:
        client, secret = clients.add_client(conn, name="analyst", role="transport_analyst")
    with TestClient(create_app(next_major, url)) as app:
        headers = bearer(token_for(app, {"a": (client.client_id, secret)}, "a"))
        _old_major_served_until_deprecated(app, headers, url, before)


def _old_major_served_until_deprecated(client, headers: dict, url: str, before: int) -> None:
    rows = "/datasets/public_works.service_requests/rows"
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
