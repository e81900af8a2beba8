"""The pipeline's stages, each a parameterised Prefect flow over one dataset (build: over
the datasets given).

Tasks carry the retries (on I/O: the source, the warehouse); the flows give each stage its
own run in Prefect, so a stage can be run or re-run on its own. `flows.pipeline` chains
them: ingest per dataset, one build for every dataset with something new, then validate
and publish per dataset.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from contracts import Contract
from contracts.source_config import SqlConfig
from flows import build, progress, validate
from flows.checks import Failure, StepResult
from flows.ingest import LoadResult, check_source, ingest
from flows.problems import MissingSetting, worth_retrying
from flows.publish import DEFAULT_KEPT, Published, publish
from flows.routing import routes_of
from flows.sql_rules import run_sql_rules
from hub.settings import Settings

# Stands up a department's system from its bundled sample (the demo's), given by whoever
# starts the pass (the CLI passes `demo.sources.stand_in`); production code has none.
StandIn = Callable[[str, Contract, Settings], str]
_stand_in: StandIn | None = None


def use_stand_ins(stand_in: StandIn | None) -> None:
    global _stand_in
    _stand_in = stand_in


def source_url(contract: Contract, settings: Settings, warehouse_url: str) -> str:
    """The department's system: the URL in the contract's variable or the contract itself,
    or, in demo mode, a stand-in filled from the bundled sample."""
    src = contract.source
    configured = os.environ.get(src.connection_env) if src.connection_env else None
    if configured:
        return configured
    if _stand_in is not None and settings.demo_sources and src.sample:
        return _stand_in(warehouse_url, contract, settings)
    if not isinstance(src, SqlConfig) and src.url:  # a database's URL is always secret
        return src.url
    demo = " (or HUB_DEMO_SOURCES=true to use the bundled sample)" if src.sample else ""
    raise MissingSetting(f"{src.connection_env} is not set: set it to {WHAT_URL[src.kind]}"
                         f"{demo}")


# What a source's variable holds, by kind, for the message when it is missing.
WHAT_URL = {"sql": "the department database's SQLAlchemy URL",
            "files": "the drop folder (a path, or a URL such as s3://bucket/folder)",
            "rest": "the API's URL", "mqtt": "the broker's URL (mqtt://host:1883)"}


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=worth_retrying,
      cache_policy=NO_CACHE)
def ingest_task(warehouse_url: str, contract: Contract, settings: Settings) -> LoadResult:
    logger = get_run_logger()
    progress.stage(contract.dataset_id, "ingest")
    check_source(contract)  # before its source system's limit is looked up
    # One slot of the source system's limit: a department's system is not hammered by
    # every dataset (and every deployment) reading it at once.
    # Its lease is Prefect's shortest: a run killed with its worker holds the slot a minute,
    # not the default five, before the server takes it back for the run's retry.
    with concurrency(source_system(contract), occupy=1, lease_duration=60):
        loaded = ingest(warehouse_url, contract, source_url(contract, settings, warehouse_url),
                        settings, lambda n: progress.rows(contract.dataset_id, n))
    logger.info("%s: loaded %d rows in %d batches", contract.dataset_id, loaded.rows,
                loaded.batches)
    for warning in loaded.warnings:
        logger.warning("%s: %s", contract.dataset_id, warning)
    return loaded


@task(cache_policy=NO_CACHE)
def build_task(warehouse_url: str, contracts: list[Contract], settings: Settings,
               ) -> dict[str, StepResult]:
    for contract in contracts:
        progress.stage(contract.dataset_id, "build (dbt)")
    results = build.run_dbt_many(warehouse_url, contracts, settings, build.project_dir(settings))
    for dataset, result in results.items():
        get_run_logger().info("%s: dbt build %s", dataset,
                              "passed" if result.success else "failed")
    return results


@task(retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def validate_task(warehouse_url: str, contract: Contract) -> list[Failure]:
    progress.stage(contract.dataset_id, "validate (GX)")
    result = validate.validate(warehouse_url, contract)
    get_run_logger().info("%s: validation %s", contract.dataset_id,
                          "passed" if result.success else "failed")
    return list(result.failures)


@task(retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def sql_rules_task(warehouse_url: str, contract: Contract, settings: Settings) -> list[Failure]:
    result = run_sql_rules(warehouse_url, contract, timeout_ms=settings.statement_timeout_ms)
    if result.details["sql_rules"]:
        get_run_logger().info("%s: sql rules %s", contract.dataset_id,
                              "passed" if result.success else "failed")
    return list(result.failures)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def publish_task(warehouse_url: str, contract: Contract, run_id: uuid.UUID,
                 settings: Settings | None = None) -> Published:
    progress.stage(contract.dataset_id, "publish")
    kept = settings.change_feed_versions if settings else DEFAULT_KEPT
    routes = routes_of(warehouse_url, contract, settings) if settings else None
    done = publish(warehouse_url, contract, run_id, kept, routes)
    get_run_logger().info("%s: published version %d (%d rows, %d quarantined)",
                          contract.dataset_id, done.version, done.rows, done.quarantined)
    return done


def source_system(contract: Contract) -> str:
    """The name of the source system's concurrency limit (hubSource.system, or kind and
    department)."""
    src = contract.source
    return f"source-{src.system or f'{src.kind}-{contract.department}'}"


@flow(name="ingest")
def ingest_flow(contract: Contract, warehouse_url: str, settings: Settings) -> LoadResult:
    """Land what is new in the dataset's source in raw_<department>."""
    return ingest_task(warehouse_url, contract, settings)


@flow(name="build")
def build_flow(contracts: list[Contract], warehouse_url: str, settings: Settings,
               ) -> dict[str, StepResult]:
    """dbt build, once for the datasets given: staging, each candidate mart and its
    quarantine, with dbt's tests; each dataset's result, by dataset id."""
    return build_task(warehouse_url, contracts, settings)


@flow(name="validate")
def validate_flow(contract: Contract, warehouse_url: str, settings: Settings) -> list[Failure]:
    """The GX suite and the sandboxed SQL rules on the candidate."""
    return (validate_task(warehouse_url, contract)
            + sql_rules_task(warehouse_url, contract, settings))


@flow(name="publish")
def publish_flow(contract: Contract, warehouse_url: str, run_id: uuid.UUID,
                 settings: Settings | None = None) -> Published:
    """Swap the candidate (and its quarantine) in as the dataset's next version; keep the
    versions before it for change feeds (HUB_CHANGE_FEED_VERSIONS); tell the departments
    responsible for new or changed rows (flows/routing.py)."""
    return publish_task(warehouse_url, contract, run_id, settings)
