"""One `dbt build` for every dataset of a pass (flows/build.py: run_dbt_many): each dataset
gets the results of its own nodes, so one dataset's failing test or broken model fails
that dataset only. And validation leaves no connection open behind it.

Three datasets onboarded the way bench/onboard.py makes them, in a warehouse of this
module's own: one clean, one whose dataset-level rule (a row count) fails, and one whose
raw table was never loaded, so its staging model cannot be built.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import yaml

from bench import onboard
from contracts import Contract, load_contract_text
from flows import build
from flows.ingest import ingest
from flows.validate import validate
from hub.settings import Settings
from tests.conftest import own_warehouse


def _contract(index: int, quality: list[dict] | None = None) -> Contract:
    document = onboard.contract(index)
    if quality:
        document["schema"][0]["quality"] = quality
    return load_contract_text(yaml.safe_dump(document), f"{index}.odcs.yaml")


CLEAN = _contract(1)
TOO_FEW = _contract(2, [{"metric": "rowCount", "mustBeGreaterOrEqualTo": 1000}])
NEVER_LOADED = _contract(3)


@pytest.fixture(scope="module")
def warehouse(server_url: str, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[tuple[str, Settings]]:
    """The three datasets' project in place; the first two loaded with 20 rows each."""
    with own_warehouse(server_url, "hub_test_shared_build") as url:
        settings = Settings(home=tmp_path_factory.mktemp("shared-build"), database_url=url,
                            demo_sources=False, _env_file=None)
        for contract in (CLEAN, TOO_FEW):
            folder = settings.drop_root() / contract.entity
            folder.mkdir(parents=True)
            (folder / "2024-01.csv").write_text(onboard.csv_text(20))
            assert ingest(url, contract, folder.as_uri(), settings).rows == 20
        build.prepare_project([CLEAN, TOO_FEW, NEVER_LOADED], settings)
        yield url, settings


@pytest.fixture(scope="module")
def built(warehouse):
    url, settings = warehouse
    return build.run_dbt_many(url, [CLEAN, TOO_FEW, NEVER_LOADED], settings,
                              build.project_dir(settings))


def test_a_clean_dataset_builds_whatever_the_others_in_its_build_do(built, warehouse):
    result = built[CLEAN.dataset_id]
    assert (result.success, result.failures) == (True, ())
    assert result.details["candidate_built"]
    with psycopg.connect(warehouse[0]) as conn:
        rows = conn.execute(f"select count(*) from candidate.{CLEAN.relation_name}").fetchone()
    assert rows == (20,)


def test_a_failing_dataset_rule_fails_its_own_dataset_only(built):
    result = built[TOO_FEW.dataset_id]
    assert not result.success
    assert result.details["candidate_built"]  # a test failed, no model: validate still runs
    assert [(f.rule, f.engine) for f in result.failures] == [("row_count_at_least(1000)", "dbt")]


def test_a_model_that_cannot_build_leaves_its_dataset_without_a_candidate(built):
    result = built[NEVER_LOADED.dataset_id]
    assert not result.success and not result.details["candidate_built"]
    [failure] = result.failures
    assert failure.rule == f"model stg_{NEVER_LOADED.relation_name}"
    assert f"raw_bench.{NEVER_LOADED.entity}" in failure.message


def test_validation_leaves_no_connection_open(built, warehouse):
    url, _ = warehouse
    assert validate(url, CLEAN).success
    with psycopg.connect(url) as conn:
        others = conn.execute("select count(*) from pg_stat_activity where datname ="
                              " current_database() and pid <> pg_backend_pid()").fetchone()
    assert others == (0,)
