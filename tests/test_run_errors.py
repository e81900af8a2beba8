"""`hub run` when something is wrong: one line per problem naming the dataset, the step and
what to fix, the summary table, no traceback on the terminal.

Real subprocesses on a warehouse of the tests' own, with contracts, policies and a dbt
project copied to a temporary folder (HUB_CONTRACTS_DIR...): the checkout is not written.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from prefect.states import Failed

from contracts import ContractError, load_contract, load_each
from flows.checks import Failure
from flows.ingest import _secret, ingest
from flows.pipeline import Pass, RunReport, _build, _one, _pass
from flows.problems import MissingSetting, explain_build, kind_of, problems_of, worth_retrying
from flows.sources.base import SchemaDrift
from hub.settings import Settings
from hub.warehouse import drop_database, ensure_database
from tests.conftest import REPO, count, own_warehouse
from tests.test_cli import hub

SHELTER = REPO / "contracts" / "social_services" / "shelter_census.odcs.yaml"
HEALTH = REPO / "contracts" / "health" / "restaurant_inspections.odcs.yaml"
WORKS = REPO / "contracts" / "public_works" / "service_requests.odcs.yaml"
CENSUS = REPO / "data" / "nyc_dhs_shelter_census" / "DHS_Daily_Report.csv"
SCORES = REPO / "data" / "sf_restaurant_inspections" / "restaurant_scores.csv"
POLICY = """roles:
  auditor: {department: audit_office, scopes: ["audit:read"], description: reads the log}
grants: []
"""
HEADER = "dataset                            status"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HUB_HOME for the module's runs: Prefect's database is made once."""
    return tmp_path_factory.mktemp("hub-home")


def layout(root: Path, home: Path, url: str, contracts: list[Path]) -> dict[str, str]:
    """Contracts, policies and dbt project of the run's own; the environment naming them."""
    (root / "contracts").mkdir(parents=True)
    for path in contracts:
        shutil.copy(path, root / "contracts")
    (root / "policies").mkdir()
    (root / "policies" / "city.yaml").write_text(POLICY)
    shutil.copytree(REPO / "dbt_project", root / "dbt_project",
                    ignore=shutil.ignore_patterns("target", "logs"))
    return {"HUB_HOME": str(home), "HUB_DATABASE_URL": url,
            "HUB_CONTRACTS_DIR": str(root / "contracts"),
            "HUB_POLICIES_DIR": str(root / "policies"),
            "HUB_DBT_PROJECT_DIR": str(root / "dbt_project"), "HUB_DEMO_SOURCES": "false"}


def drop(folder: Path, sample: Path, edit: tuple[str, str] = ("", ""), rows: int = 5) -> str:
    """A drop folder holding the first rows of a real sample, with one edit made."""
    folder.mkdir(parents=True)
    lines = sample.read_text(encoding="utf-8").splitlines()[:rows + 1]
    text = "\n".join(lines) + "\n"
    (folder / sample.name).write_text(text.replace(*edit, 1) if edit[0] else text)
    return str(folder)


def one_line(result: subprocess.CompletedProcess, dataset: str, step: str) -> str:
    """The single line about `dataset`'s `step`, after checking what every run must show."""
    terminal = result.stdout + result.stderr
    assert "Traceback" not in terminal, terminal
    assert result.stdout.startswith(HEADER), terminal  # the summary table
    assert re.search(rf"^{re.escape(dataset)} +(failed|not run) ", result.stdout, re.M)
    found = [line.strip() for line in terminal.splitlines()
             if line.strip().startswith(f"{dataset} {step} ")]
    assert len(found) == 1, terminal
    return found[0]


# ---------- one pass over three datasets, each broken in its own way


@pytest.fixture(scope="module")
def broken_pass(server_url: str, home: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("broken-pass")
    with own_warehouse(server_url, "hub_test_runerr") as url:
        env = layout(root, home, url, [SHELTER, HEALTH, WORKS])
        # Social services renamed a column; health delivered a date that is no date;
        # public works' database was never configured (and no demo stand-in).
        env["HUB_SOURCE_SOCIAL_SERVICES_DROP"] = drop(
            root / "census", CENSUS, ("Total Adults in Shelter", "Adults in Shelter"))
        env["HUB_SOURCE_HEALTH_DROP"] = drop(root / "scores", SCORES, ("9/12/2016", "13/45/2016"))
        yield hub("run", env=env)


def test_a_missing_source_setting_names_the_variable_to_set(broken_pass):
    line = one_line(broken_pass, "public_works.service_requests", "ingest")
    assert "HUB_SOURCE_PUBLIC_WORKS_URL is not set: set it to the department database's " \
           "SQLAlchemy URL" in line
    assert broken_pass.returncode == 1


def test_drift_names_the_column_and_how_to_map_it(broken_pass):
    line = one_line(broken_pass, "social_services.shelter_census", "ingest")
    assert "column 'Total Adults in Shelter' is missing and 'Adults in Shelter' is new" in line
    assert "map it in hubSource.columns or update the contract" in line
    assert broken_pass.returncode == 1


def test_an_unparseable_date_names_the_value_and_its_column(broken_pass):
    line = one_line(broken_pass, "health.restaurant_inspections", "build")
    assert 'value "13/45/2016" in column inspection_date does not parse as date' in line
    assert "logicalTypeOptions.format" in line
    # The mart and its quarantine both met it: said once.
    assert (broken_pass.stdout + broken_pass.stderr).count("13/45/2016") == 1
    assert "3 of 3 dataset(s) not published" in broken_pass.stdout


def test_a_contract_that_cannot_be_compiled_is_refused_at_registration(server_url, tmp_path,
                                                                       home):
    # It lints (lint checks a physicalType's shape, offline), but the models compiled from it
    # would name a type the warehouse does not have: registering it (here, `hub run`
    # registering the contracts folder's file) refuses it, naming the field and the fix.
    text = SHELTER.read_text().replace(" shelter_census\n", " shelter_census_typo\n")
    with own_warehouse(server_url, "hub_test_runtypo") as url:
        env = layout(tmp_path, home, url, [])
        typo = tmp_path / "contracts" / "typo.odcs.yaml"
        typo.write_text(text.replace("physicalType: integer", "physicalType: integr", 1))
        env["HUB_SOURCE_SOCIAL_SERVICES_DROP"] = drop(tmp_path / "census", CENSUS)
        linted = hub("contracts", "lint", str(typo), env=env)
        result = hub("run", env=env)
        registered = count(url, "select count(*) from hub.contracts"
                                " where dataset = 'social_services.shelter_census_typo'")
    assert linted.returncode == 0, linted.stderr
    line = one_line(result, "social_services.shelter_census_typo", "contract")
    assert line == (f"social_services.shelter_census_typo contract [registry]: {typo}: "
                    "schema.0.properties.1.physicalType: 'integr' is no type the warehouse "
                    "has, so the dataset's models cannot be compiled; write one such as text, "
                    "integer, bigint, numeric(10,2), date or timestamp, or leave physicalType "
                    "out (the logicalType's type is used)")
    assert registered == 0
    assert "1 of 1 dataset(s) not published" in result.stdout
    assert result.returncode == 1  # as for every refused registration


def test_a_registered_contract_that_cannot_be_compiled_names_the_column():
    # Registered before the registry checked types: dbt's words for the generated model
    # become a contract problem naming the column (a hand-written model's stay its own).
    contract = load_contract(SHELTER)
    typo = dataclasses.replace(contract, columns=(
        contract.columns[0], dataclasses.replace(contract.columns[1], physical_type="integr"),
        *contract.columns[2:]))
    said = Failure("model stg_social_services__shelter_census", "dbt",
                   'type "integr" does not exist LINE 27: ...ullif(trim("total_adults"), \'\'),'
                   " null::integr) as... ^")
    [explained] = explain_build((said,), typo, "postgresql://unused", "/h/dbt.log")
    assert (explained.rule, explained.engine) == ("build", "contract")
    assert explained.message.startswith("the models cannot be compiled: column total_adults "
                                        "has physicalType 'integr', which is no PostgreSQL type")
    [kept] = explain_build((said,), contract, "postgresql://unused", "/h/dbt.log")
    assert (kept.rule, kept.engine) == (said.rule, "dbt") and "fix the model's SQL" in kept.message


# ---------- runs stopped before any dataset, or by the hub itself


def test_a_contract_that_does_not_lint_stops_the_run_with_exit_2(tmp_path, home):
    env = layout(tmp_path, home, "postgresql://unused@127.0.0.1:1/none", [SHELTER, HEALTH])
    bad = tmp_path / "contracts" / SHELTER.name
    bad.write_text(bad.read_text().replace("logicalType: integer", "logicalType: integr", 1))
    result = hub("run", env=env)
    line = one_line(result, "social_services.shelter_census", "lint")
    assert f"{bad}: schema.0.properties.1.logicalType: got 'integr'; write one of" in line
    assert re.search(r"^health\.restaurant_inspections +not run ", result.stdout, re.M)
    assert "nothing ran; fix the contract file(s) above" in result.stdout
    assert result.returncode == 2


def test_an_unreachable_warehouse_is_said_for_each_dataset(tmp_path, home):
    env = layout(tmp_path, home, "postgresql://postgres@127.0.0.1:1/none", [SHELTER])
    result = hub("run", env=env)
    line = one_line(result, "social_services.shelter_census", "start")
    assert "cannot reach the warehouse" in line and "check HUB_DATABASE_URL" in line
    assert result.returncode == 1


def test_an_internal_error_leaves_its_traceback_in_the_run_log(server_url, tmp_path, home):
    with own_warehouse(server_url, "hub_test_runbug") as url:
        with psycopg.connect(url) as conn:  # the hub's own bookkeeping, broken
            conn.execute("drop table hub.ingest_files")
        env = layout(tmp_path, home, url, [SHELTER])
        env["HUB_SOURCE_SOCIAL_SERVICES_DROP"] = drop(tmp_path / "census", CENSUS)
        result = hub("run", env=env)
    line = one_line(result, "social_services.shelter_census", "ingest")
    assert "internal error in the hub" in line and "UndefinedTable" in line
    [pointer] = [ln for ln in result.stderr.splitlines() if "its traceback is in" in ln]
    log_file = Path(re.search(r"is in (\S+);", pointer)[1])
    assert log_file.parent == home.resolve() / "logs"
    assert "Traceback" in log_file.read_text() and "hub.ingest_files" in log_file.read_text()
    assert result.returncode == 1


def test_verbose_shows_prefects_log_on_the_terminal(server_url, tmp_path, home):
    with own_warehouse(server_url, "hub_test_runverbose") as url:
        result = hub("run", "--verbose", env=layout(tmp_path, home, url, [SHELTER]))
    # Prefect's own lines about the failed task, and the summary's line all the same.
    assert "Task run" in result.stderr and "MissingSetting" in result.stderr
    assert "ingest [source]: HUB_SOURCE_SOCIAL_SERVICES_DROP is not set" in result.stdout
    assert result.returncode == 1


# ---------- the pieces, in process


def test_load_each_sets_broken_files_aside_under_their_dataset(tmp_path):
    shutil.copy(HEALTH, tmp_path)
    (tmp_path / "bad.odcs.yaml").write_text(SHELTER.read_text().replace("kind: DataContract",
                                                                        "kind: Contract"))
    found, broken = load_each(tmp_path)
    assert list(found) == ["health.restaurant_inspections"]
    assert list(broken) == ["social_services.shelter_census"]
    assert "write kind: DataContract" in str(broken["social_services.shelter_census"])
    (tmp_path / "twice.odcs.yaml").write_text(HEALTH.read_text())
    found, broken = load_each(tmp_path)
    assert found == {} and "already defined" in str(broken["health.restaurant_inspections"])


@pytest.mark.parametrize(("exc", "step", "kind"), [
    (ContractError("x.yaml", [("kind", "write kind: DataContract")]), "lint", "contract"),
    (MissingSetting("HUB_SOURCE_X_URL is not set"), "ingest", "source"),
    (SchemaDrift("column 'a' was removed"), "ingest", "source"),
    (ConnectionRefusedError("refused"), "ingest", "source"),
    (psycopg.OperationalError("server closed the connection"), "validate", "warehouse"),
    (psycopg.errors.InvalidDatetimeFormat("invalid input syntax"), "publish", "data"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "ingest", "source"),
    (ConnectionRefusedError("refused"), "build", None),  # not the warehouse's words: a bug
    (KeyError("census_date"), "build", None),
])
def test_each_exception_is_someones_to_fix(exc, step, kind):
    assert kind_of(exc, step) == kind


def test_a_bug_is_logged_with_its_traceback(caplog):
    try:
        {}["census_date"]
    except KeyError as exc:
        [failure] = problems_of(exc, "build", "social_services.shelter_census")
    assert (failure.rule, failure.engine) == ("build", "hub")
    assert "KeyError: 'census_date'" in failure.message
    [record] = caplog.records
    assert record.levelname == "ERROR" and record.exc_info[0] is KeyError


def test_a_problem_to_fix_is_not_retried_and_io_is():
    assert not worth_retrying(None, None, Failed(data=SchemaDrift("column 'a' was removed")))
    assert not worth_retrying(None, None, Failed(data=MissingSetting("set it")))
    assert worth_retrying(None, None, Failed(data=ConnectionResetError("reset")))


def test_a_contract_without_a_source_says_to_add_one():
    bare = dataclasses.replace(load_contract(SHELTER), source=None)
    with pytest.raises(ContractError, match="customProperties.hubSource: missing: add it"):
        ingest("postgresql://unused@127.0.0.1:1/none", bare, "", Settings(_env_file=None))


def test_a_missing_credential_names_its_variable(monkeypatch):
    monkeypatch.delenv("HUB_SOURCE_NOPE_KEY", raising=False)
    with pytest.raises(MissingSetting, match="HUB_SOURCE_NOPE_KEY is not set"):
        _secret("HUB_SOURCE_NOPE_KEY")


def test_a_bug_outside_the_stages_fails_only_its_dataset(server_url, settings, prefect_harness):
    # The pass's bookkeeping around the stages, failing: here the run's record, written to a
    # database the hub never set up. The dataset reports it, and the pass (here, the
    # caller) carries on.
    name = f"hub_test_nobooks_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    try:
        report = _one(dataclasses.replace(load_contract(SHELTER), source=None), url, settings)
    finally:
        drop_database(server_url, name)
    [failure] = report.failures
    assert (report.dataset, report.status) == ("social_services.shelter_census", "failed")
    assert (failure.rule, failure.engine) == ("pipeline", "hub")
    assert "UndefinedTable" in failure.message, failure.message


def test_a_model_that_breaks_otherwise_points_to_its_sql_and_dbts_log():
    contract = load_contract(SHELTER)
    broken = Failure("model stg_social_services__shelter_census", "dbt",
                     'syntax error at or near "form"')
    [said] = explain_build((broken, broken), contract, "postgresql://unused", "/h/dbt.log")
    assert (said.rule, said.engine) == (broken.rule, "dbt")
    assert said.message == ('syntax error at or near "form" (fix the model\'s SQL; '
                            "dbt's log: /h/dbt.log)")
    test_failure = Failure("not_null(census_date)", "dbt", "1 row(s) failed")
    assert explain_build((test_failure,), contract, "postgresql://unused", "x") == [test_failure]


def test_a_pass_that_cannot_start_is_said_for_each_of_its_datasets(settings, prefect_harness):
    # Prefect refuses the pass's parameters (no warehouse URL): its flow never runs, and
    # each dataset given to it reports that.
    reports = _pass([load_contract(SHELTER), load_contract(HEALTH)], None, settings)
    assert sorted(reports) == ["health.restaurant_inspections", "social_services.shelter_census"]
    for report in reports.values():
        [failure] = report.failures
        assert (report.status, failure.rule, failure.engine) == ("failed", "pipeline", "hub")


def test_a_build_that_cannot_run_fails_each_dataset_in_it(settings, prefect_harness):
    # The pass's one dbt build, given a warehouse URL that is no URL: it raises before dbt
    # starts, and every dataset it was to build has the build's failure.
    passes = [Pass(c, RunReport(c.dataset_id)) for c in (load_contract(SHELTER),
                                                         load_contract(HEALTH))]
    _build(passes, "not a url", settings)
    for one in passes:
        [failure] = one.report.failures
        assert (one.built, failure.rule, failure.engine) == (None, "build", "hub")
