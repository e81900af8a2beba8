"""dbt, Great Expectations, the quarantine SQL and the sandbox agree on every rule kind.

One contract (tests/data/every_rule.odcs.yaml) states a rule of each kind. Its compiled dbt
tests, GX suite and row-level SQL run for real on the same tables: a dirty one with one row
breaking each rule, and a tiny clean one that only misses the row count.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import psycopg
import pytest
import yaml

from contracts import load_contract, load_contract_text
from contracts.mapping import RULE_KINDS, rules
from contracts.targets import to_dbt_models
from flows.build import run_dbt
from flows.sql_rules import run_sql_rules
from flows.validate import validate
from tests.conftest import REPO

CONTRACT = load_contract(REPO / "tests" / "data" / "every_rule.odcs.yaml")
RECENT = datetime.now() - timedelta(hours=1)  # noqa: DTZ005 - the column is local time
GOOD = [(1, "north", "ABC", 10.0, RECENT, None),  # no serial: still unique
        (2, "south", "XYZ", 55.0, RECENT, None)]
# Every reading below is from 2024: too old for the contract's one-day latency.
DIRTY = [(1, "north", "ABC", 10.0, "2024-07-01 10:00", "s1"),
         (2, "south", "XYZ", 55.0, "2024-07-01 11:00", "s2"),
    (3, "nowhere", "ABC", 10.0, "2024-07-01 12:00", "s3"),  # accepted_values(station)
    (4, "north", "abc1", 10.0, "2024-07-01 13:00", "s4"),  # pattern(code)
    (5, "south", "ABC", -99999.992, "2024-07-01 14:00", "s5"),  # between(value)
    (6, "north", "ABC", 20.0, None, "s6"),  # not_null(taken_at)
    (7, "north", "ABC", 58.0, "2024-07-01 15:00", "s1"),  # unique(serial); 2nd value > 50
]


@pytest.fixture(scope="module")
def project(tmp_path_factory, settings):
    """A dbt project with the hub's macros and tests, and the contract's model as compiled,
    reading a plain table (contract enforcement off, so dbt's own tests see every row)."""
    root = tmp_path_factory.mktemp("agree") / "dbt_project"
    shutil.copytree(REPO / "dbt_project", root, ignore=shutil.ignore_patterns("models", "target"))
    marts = root / "models" / "marts" / "environment"
    marts.mkdir(parents=True)
    models = to_dbt_models(CONTRACT)
    models["models"][0]["config"]["contract"] = {"enforced": False}
    for column in models["models"][0]["columns"]:
        column.pop("constraints", None)
    (marts / "_environment__readings.yml").write_text(yaml.safe_dump(models))
    (marts / "environment__readings.sql").write_text(
        "select reading_id, station, code, value, taken_at, serial from agree.readings")
    (marts / "environment__readings__quarantine.sql").write_text(
        "{{ quarantined_rows('agree.readings') }}")
    return settings.model_copy(update={"dbt_project_dir": root})


def _load(url: str, rows: list[tuple]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("drop schema if exists agree cascade; create schema agree")
        conn.execute("create table agree.readings (reading_id bigint, station text, code text,"
                     " value double precision, taken_at timestamp, serial text,"
                     " _key_copies int not null default 1)")  # as staging models add it
        with conn.cursor().copy("copy agree.readings (reading_id, station, code, value,"
                                " taken_at, serial) from stdin") as copy:
            for row in rows:
                copy.write_row(row)


def _failed(url: str, settings) -> dict[str, set[str]]:
    built = run_dbt(url, CONTRACT, settings)
    assert built.details["candidate_built"], built.failures
    with psycopg.connect(url) as conn:
        held = {r for (r,) in conn.execute(
            "select distinct unnest(failed_rules)"
            " from candidate.environment__readings__quarantine")}
    return {"dbt": {f.rule for f in built.failures},
            "gx": {f.rule for f in validate(url, CONTRACT).failures},
            "quarantine": held,
            "sandbox": {f.rule for f in run_sql_rules(url, CONTRACT).failures}}


def test_every_rule_kind_is_stated():
    assert {r.kind for r in rules(CONTRACT)} == set(RULE_KINDS)


def test_dirty_rows_fail_the_same_rules_everywhere(project, url):
    _load(url, DIRTY)
    failed = _failed(url, project)
    broken = {"accepted_values(station)", "pattern(code)", "between(value)",
              "not_null(taken_at)", "unique(serial)", "fresh_within(taken_at)"}
    assert failed["dbt"] == failed["gx"] == broken
    row_level = {r.name for r in rules(CONTRACT) if r.row_level}
    assert failed["quarantine"] == broken & row_level
    assert failed["sandbox"] == {"sql(#0)"}


def test_too_few_clean_rows_fail_only_the_row_count(project, url):
    _load(url, GOOD)
    failed = _failed(url, project)
    assert failed == {"dbt": {"row_count_at_least(3)"}, "gx": {"row_count_at_least(3)"},
                      "quarantine": set(), "sandbox": set()}


# ---------- a composite key: one unique(a, b) rule, which dbt and GX both run

KEYED_DOCUMENT = yaml.safe_load((REPO / "tests" / "data" / "every_rule.odcs.yaml").read_text())
for _position, _prop in enumerate(KEYED_DOCUMENT["schema"][0]["properties"][:2], 1):
    _prop.update(primaryKey=True, primaryKeyPosition=_position)  # reading_id, then station
KEYED = load_contract_text(yaml.safe_dump(KEYED_DOCUMENT), "keyed")


@pytest.fixture(scope="module")
def keyed_project(tmp_path_factory, settings):
    root = tmp_path_factory.mktemp("agree-keyed") / "dbt_project"
    shutil.copytree(REPO / "dbt_project", root, ignore=shutil.ignore_patterns("models", "target"))
    marts = root / "models" / "marts" / "environment"
    marts.mkdir(parents=True)
    models = to_dbt_models(KEYED)
    models["models"][0]["config"]["contract"] = {"enforced": False}
    models["models"][0].pop("constraints")
    for column in models["models"][0]["columns"]:
        column.pop("constraints", None)
    (marts / "_environment__readings.yml").write_text(yaml.safe_dump(models))
    (marts / "environment__readings.sql").write_text(
        "select reading_id, station, code, value, taken_at, serial from agree.readings")
    (marts / "environment__readings__quarantine.sql").write_text(
        "{{ quarantined_rows('agree.readings') }}")
    return settings.model_copy(update={"dbt_project_dir": root})


@pytest.mark.parametrize("rows, broken", [
    (GOOD + [(1, "south", "ABC", 1.0, RECENT, None)], False),  # reading 1 at two stations
    (GOOD + [(1, "north", "ABC", 1.0, RECENT, None)], True),  # reading 1 at north twice
])
def test_a_composite_key_is_unique_as_a_whole_for_dbt_and_gx(keyed_project, url, rows,
                                                            broken):
    assert KEYED.primary_key == ("reading_id", "station")
    _load(url, rows)
    built = run_dbt(url, KEYED, keyed_project)
    dbt_failed = {f.rule for f in built.failures}
    gx_failed = {f.rule for f in validate(url, KEYED).failures}
    assert ("unique(reading_id, station)" in dbt_failed) is broken
    assert ("unique(reading_id, station)" in gx_failed) is broken
    assert not {"unique(reading_id)", "unique(station)"} & (dbt_failed | gx_failed)
