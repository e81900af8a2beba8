"""The truth-table file and its check against the policy engine: every kind of
disagreement, every mistake in the file, and `hub policies test` as a user runs it."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from access_policies import load_policies
from access_policies.expectations import (
    EXPECTED_FILE,
    ExpectationError,
    compare,
    load_expectations,
)
from contracts import load_all
from tests.conftest import REPO, own_warehouse

SHIPPED = REPO / "access_policies" / EXPECTED_FILE
CONTRACTS = load_all(REPO / "contracts")
POLICY = load_policies(REPO / "access_policies", CONTRACTS)
TODAY = date(2026, 11, 23)  # inside every grant's validity window
SR, PAY = "public_works.service_requests", "human_resources.employee_salaries"


def doctored(tmp_path: Path, change) -> Path:
    """The shipped file with `change` applied to its parsed document."""
    document = copy.deepcopy(yaml.safe_load(SHIPPED.read_text()))
    change(document["datasets"])
    path = tmp_path / "expected.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def differences(path: Path, today: date = TODAY) -> list[str]:
    return [str(m) for m in compare(load_expectations(path), POLICY, CONTRACTS, today)]


def setter(dataset: str, role: str, value: Any, column: str | None = None):
    def change(datasets: dict) -> None:
        if column is None:
            datasets[dataset][role] = value
        else:
            datasets[dataset][role][column] = value
    return change


def test_the_shipped_file_agrees_with_the_policy():
    assert differences(SHIPPED) == []


@pytest.mark.parametrize("change, expected", [
    (setter(SR, "transport_analyst", "visible", "address"),
     "transport_analyst, public_works.service_requests, address: expected visible, "
     "policy gives masked:hash"),
    (setter(SR, "public_works_engineer", "masked:hash", "address"),
     "public_works_engineer, public_works.service_requests, address: expected masked:hash, "
     "policy gives visible"),
    (setter(PAY, "public_works_data_admin", "visible", "typical_hours"),
     "public_works_data_admin, human_resources.employee_salaries, typical_hours: expected "
     "visible, policy gives hidden"),
    (setter(SR, "auditor", {"sr_number": "visible"}),
     "auditor, public_works.service_requests: expected read access, policy gives denied "
     "(role auditor lacks the datasets:read scope)"),
    (setter(SR, "health_inspector", {"sr_number": "visible"}),
     "health_inspector, public_works.service_requests: expected read access, policy gives "
     "denied (no grant of public_works.service_requests to role health_inspector)"),
    (setter(PAY, "hr_analyst", "denied"),
     "hr_analyst, human_resources.employee_salaries: expected denied, policy gives read "
     "access (grant hr-own-salaries)"),
    (lambda d: d[SR]["transport_analyst"].pop("status"),
     "transport_analyst, public_works.service_requests, status: no expectation; policy "
     "gives visible"),
    (setter(SR, "transport_analyst", "visible", "ssn"),
     "transport_analyst, public_works.service_requests, ssn: the contract has no such "
     "column; remove it"),
    (lambda d: d[SR].pop("auditor"),
     "auditor, public_works.service_requests: no expectation; write denied or its columns "
     "(policy gives denied (role auditor lacks the datasets:read scope))"),
    (setter(SR, "mayor", "denied"),
     "mayor, public_works.service_requests: not a role of the policy; remove it or define "
     "the role"),
    (lambda d: d.pop("transport.bike_counts"),
     "transport.bike_counts: no expectations; list every role under it"),
    (lambda d: d.update({"health.nope": {"auditor": "denied"}}),
     "health.nope: not a dataset of the contracts; known: environment.beach_sensor_readings, "
     "health.restaurant_inspections, human_resources.employee_salaries, "
     "public_works.request_routing, public_works.service_requests, "
     "social_services.shelter_census, transport.bike_counts"),
])
def test_each_disagreement_names_its_cell(tmp_path, change, expected):
    assert differences(doctored(tmp_path, change)) == [expected]


def test_a_grant_out_of_its_window_is_a_disagreement():
    assert differences(SHIPPED, date(2028, 1, 1)) == [
        "public_works_data_admin, human_resources.employee_salaries: expected read access, "
        "policy gives denied (grant budget-reads-salaries is not valid on 2028-01-01)",
        "transport_analyst, public_works.service_requests: expected read access, policy "
        "gives denied (grant transport-reads-311 is not valid on 2028-01-01)"]


KINDS = "(kinds: bucket, hash, last4, null, redact, year_only)"


@pytest.mark.parametrize("text, message", [
    ("datasets: {t.b: {r: shown}}",
     "datasets > t.b > r: got 'shown'; write denied, or map each column of the dataset to "
     f"visible, hidden or masked:<kind> {KINDS}"),
    ("datasets: {t.b: {r: {}}}", "datasets > t.b > r: got {}; write denied"),
    ("datasets: {t.b: {r: {x: shown, y: masked:blur, z: visible}}}",
     f"datasets > t.b > r: x: got 'shown'; write visible, hidden or masked:<kind> {KINDS}; "
     f"y: unknown mask 'blur'; write visible, hidden or masked:<kind> {KINDS}"),
    ("datasets: {t.b: {r: {x: null}}}", "datasets > t.b > r: x: got None; write visible"),
    ("datasets: {t.b: 3}", "datasets > t.b: got 3; write a mapping (dataset id -> role ->"),
    ("datasets: {}\nroles: {}", "roles: unknown key; the file holds only datasets"),
    ("dataset: {}", "datasets: missing; write datasets: dataset id -> role -> denied"),
    ("- datasets", "write a mapping with one key, datasets"),
    ("", "write a mapping with one key, datasets"),
    ("datasets: [1", "not valid YAML: while parsing a flow sequence"),
])
def test_mistakes_in_the_file_say_where_and_what_to_write(tmp_path, text, message):
    path = tmp_path / "expected.yaml"
    path.write_text(text)
    with pytest.raises(ExpectationError) as raised:
        load_expectations(path)
    assert f"{path}: {message}" in str(raised.value)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(ExpectationError, match="cannot read it .No such file"):
        load_expectations(tmp_path / "nope.yaml")


# ---------- `hub policies test`, a real subprocess


def hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    # The shipped policies on TODAY, whatever the test clock: these tests are about the
    # shipped grant windows (a shifted copy would be valid on 2028-01-01).
    return subprocess.run([sys.executable, "-m", "hub_cli", *args], cwd=REPO,
                          env=clean | {"HUB_CLOCK": TODAY.isoformat()} | (env or {}),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(tmp_path) -> dict[str, str]:
    # The shipped policy on a fixed day inside its grants, whatever the real date.
    return {"HUB_HOME": str(tmp_path / "home"), "HUB_CLOCK": TODAY.isoformat()}


def test_cli_passes_the_shipped_file_with_a_summary(home):
    result = hub("policies", "test", env=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\n") == 1
    assert "the policy agrees on" in result.stdout
    assert "98 cells (20 readable, 78 denied)" in result.stdout


def test_cli_names_each_doctored_cell_and_exits_1(tmp_path, home):
    path = doctored(tmp_path, setter(SR, "public_works_engineer", "masked:hash", "address"))
    result = hub("policies", "test", str(path), env=home)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "public_works_engineer, public_works.service_requests, address: expected "
        "masked:hash, policy gives visible",
        f"{path}: 1 difference(s) from the policy on {TODAY}"]


def test_cli_checks_as_on_a_given_day(home):
    result = hub("policies", "test", "--on", "2028-01-01", env=home)
    assert result.returncode == 1
    assert "transport_analyst, public_works.service_requests: expected read access, policy " \
           "gives denied (grant transport-reads-311 is not valid on 2028-01-01)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--on", "2028-13-01"], "Invalid value for '--on'"),
    (["nope.yaml"], "error: nope.yaml: cannot read it (No such file or directory)"),
    (["{bad}"], "error: {bad}: datasets > t.b > r: got 'shown'; write denied"),
])
def test_cli_mistakes_exit_2_without_a_traceback(tmp_path, home, args, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {t.b: {r: shown}}")
    args, message = [a.format(bad=bad) for a in args], message.format(bad=bad)
    result = hub("policies", "test", *args, env=home)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_reports_a_broken_policy_file_and_exits_2(tmp_path, home):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text("roles: {r: {department: x, scopes: [rows:write]}}")
    result = hub("policies", "test", str(SHIPPED), env=home | {"HUB_POLICIES_DIR": str(policies)})
    assert result.returncode == 2
    assert "p.yaml: roles.r.scopes[0]: unknown scope 'rows:write'" in result.stderr


def test_cli_decides_on_the_hub_clock(home):
    result = hub("policies", "test", env=home | {"HUB_CLOCK": "2028-01-01"})
    assert result.returncode == 1
    assert "grant transport-reads-311 is not valid on 2028-01-01" in result.stdout


def test_cli_names_a_bad_hub_clock_in_one_line(home):
    result = hub("policies", "test", env=home | {"HUB_CLOCK": "2031-13-01"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: HUB_CLOCK='2031-13-01': ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def rows_doctored(tmp_path: Path, change) -> Path:
    """The shipped file with `change` applied to its `rows` section."""
    document = copy.deepcopy(yaml.safe_load(SHIPPED.read_text()))
    change(document["rows"])
    path = tmp_path / "expected.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


FILTER = "rows where cd equals the caller's attribute district"


@pytest.mark.parametrize("change, expected", [
    # A filtered cell written as reading every row: the filter would go unnoticed.
    (lambda r: r[SR].pop("council_office"),
     f'council_office, {SR}, (rows): expected "every row", policy gives "{FILTER}"; write it '
     f"under rows: {SR}: council_office:"),
    # A filter the policy does not have (or another one).
    (lambda r: r[SR].update({"transport_analyst": FILTER}),
     f'transport_analyst, {SR}, (rows): expected "{FILTER}", policy gives "every row"; write '
     f"it under rows: {SR}: transport_analyst:"),
    (lambda r: r[SR].update({"council_office": "rows where cd equals 7"}),
     f'council_office, {SR}, (rows): expected "rows where cd equals 7", policy gives '
     f'"{FILTER}"; write it under rows: {SR}: council_office:'),
])
def test_each_row_filter_disagreement_names_its_cell(tmp_path, change, expected):
    assert differences(rows_doctored(tmp_path, change)) == [expected]


def test_cli_counts_name_each_entry_it_cannot_count(tmp_path, home, server_url):
    # A warehouse where nothing is published: each entry says what is wrong with it.
    document = yaml.safe_load(SHIPPED.read_text())
    document["counts"] = {SR: [{"role": "nobody", "rows": 1},
                               {"role": "health_inspector", "rows": 1},
                               {"role": "sanitation_dispatcher", "rows": 1}],
                          "t.nope": [{"role": "hr_analyst", "rows": 1}]}
    (path := tmp_path / "counts.yaml").write_text(yaml.safe_dump(document))
    with own_warehouse(server_url, "hub_test_counts") as url:
        result = hub("policies", "test", str(path), "--warehouse",
                     env=home | {"HUB_DATABASE_URL": url})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[:4] == [
        f"counts: {SR}: nobody: not a role of the policy",
        f"counts: {SR}: health_inspector: denied (no grant of {SR} to role "
        "health_inspector); count only callers who read the dataset",
        f"counts: {SR}: sanitation_dispatcher: nothing published in this warehouse; run "
        "`hub run` first",
        "counts: t.nope: not a dataset of the contracts"]


@pytest.mark.parametrize("entry, message", [
    ({"role": "hr_analyst", "rows": -1}, "counts > t.b > 0 > rows: Input should be greater"),
    ({"role": "hr_analyst"}, "counts > t.b > 0 > rows: missing"),
    ({"role": "hr_analyst", "rows": 1, "atributes": {}}, "counts > t.b > 0 > atributes: "
     "unknown key"),
])
def test_count_entries_that_cannot_be_read_say_where(tmp_path, entry, message):
    (path := tmp_path / "bad.yaml").write_text(yaml.safe_dump(
        {"datasets": {}, "counts": {"t.b": [entry]}}))
    with pytest.raises(ExpectationError, match=re.escape(message)):
        load_expectations(path)
