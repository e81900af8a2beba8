"""The pipeline flow: ingest -> build (dbt) -> validate (GX, SQL rules) -> publish.

Thin wrappers: the work lives in plain modules (ingest, build, validate, publish), each
stage is a flow of its own (flows/stages.py) and this one chains them: ingest per dataset,
one dbt build for all the datasets with something new (dbt's start is paid once per pass,
not per dataset), then validate and publish per dataset. A dataset is published only when
every stage passed; otherwise the run records which rules failed. Each dataset fails on
its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from prefect import flow

from access_policies import Policy, load_policies
from contracts import Contract, ContractError, load_each
from contracts.diff import semver
from flows import build
from flows.checks import Failure, StepResult
from flows.heartbeat import alive
from flows.problems import explain_build, problems_of
from flows.report import gate_counts, store_report
from flows.stages import (
    StandIn,
    build_flow,
    ingest_flow,
    publish_flow,
    source_system,
    use_stand_ins,
    validate_flow,
)
from hub.audit import AuditEvent, record, record_file_changes
from hub.bootstrap import bootstrap
from hub.catalog import in_force, retired_on
from hub.notifications import notify
from hub.registry import RegistrationRefused, latest_version, register
from hub.settings import Settings, get_settings
from hub.warehouse import resolve_url

T = TypeVar("T")

@dataclass
class RunReport:
    """How one dataset's pass ended; `hub run` prints these."""

    dataset: str
    status: str = "failed"  # published | failed | not run
    rows_loaded: int = 0
    version: int | None = None
    row_count: int | None = None
    quarantined: int | None = None
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # reported, not blocking: a changed file


@dataclass
class Pass:
    """One dataset's pass through the run's phases."""

    contract: Contract
    report: RunReport
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    to_build: bool = False  # ingested, and the served version does not hold it all
    built: StepResult | None = None  # this dataset's part of the run's dbt build
    done: bool = False  # its run is on record


@flow(name="pipeline-pass", log_prints=False)
def pipeline_pass(contracts: list[Contract], warehouse_url: str,
                  settings: Settings) -> list[RunReport]:
    """One pass over `contracts`: ingest each, ONE dbt build of every dataset with something
    new, then validate and publish each. Each dataset fails on its own: what one raises
    ends only its pass (never raises for a contract failure, reports it instead)."""
    passes = [Pass(c, RunReport(c.dataset_id)) for c in contracts]
    for one in passes:
        _guarded(one, _ingest, warehouse_url, settings)
    _build([p for p in passes if p.to_build], warehouse_url, settings)
    for one in passes:
        _guarded(one, _finish, warehouse_url, settings)
    return [p.report for p in passes]


def _guarded(one: Pass, phase: Callable[[Pass, str, Settings], None], warehouse_url: str,
             settings: Settings) -> None:
    if one.done:
        return
    try:
        phase(one, warehouse_url, settings)
    except Exception as exc:  # outside the stages (its bookkeeping): this dataset only
        one.report = RunReport(one.contract.dataset_id,
                               failures=problems_of(exc, "pipeline", one.contract.dataset_id))
        one.done, one.to_build = True, False


def _ingest(one: Pass, warehouse_url: str, settings: Settings) -> None:
    contract, report = one.contract, one.report
    if contract.source is None:
        report.failures = [Failure("contract", "registry", "the contract has no "
                                   "customProperties.hubSource: add one saying where the "
                                   "dataset's data comes from (kind: sql, rest, files, mqtt)")]
        return _close(one, warehouse_url, built=False)
    loaded = _attempt("ingest", report, ingest_flow, contract, warehouse_url, settings)
    if loaded is None:  # after its retries: the dataset fails, the others carry on
        return _close(one, warehouse_url, built=False)
    report.rows_loaded, report.warnings = loaded.rows, loaded.warnings
    current = _current_version(warehouse_url, contract)
    if report.rows_loaded == 0 and current is not None:
        # Nothing new and the same contract: the served version is still the right one.
        report.status, (report.version, report.row_count, report.quarantined) = (
            "published", current)
        return _close(one, warehouse_url, built=False)
    one.to_build = True
    return None


def _build(passes: list[Pass], warehouse_url: str, settings: Settings) -> None:
    """The run's one dbt build; a build that did not run fails each dataset in it."""
    if not passes:
        return
    try:
        built = build_flow([p.contract for p in passes], warehouse_url, settings)
    except Exception as exc:  # each dataset reports it, as if it had built alone
        for one in passes:
            one.report.failures += problems_of(exc, "build", one.report.dataset)
        return
    for one in passes:
        one.built = built[one.contract.dataset_id]


def _finish(one: Pass, warehouse_url: str, settings: Settings) -> None:
    """Validate and publish what was built; a dataset is published only when every stage
    passed, otherwise the run records which rules failed."""
    contract, report = one.contract, one.report
    candidate = one.built is not None and one.built.details["candidate_built"]
    if one.built is not None:
        report.failures += explain_build(one.built.failures, contract, warehouse_url,
                                         str(settings.home / "dbt" / "logs" / "dbt.log"))
    if candidate:  # a model that failed leaves nothing to validate
        report.failures += _attempt("validate", report, validate_flow, contract,
                                    warehouse_url, settings) or []
    if not report.failures:  # row-level breaks were quarantined; the rest is the gate
        done = _attempt("publish", report, publish_flow, contract, warehouse_url, one.run_id,
                        settings)
        if done is not None:
            report.version, report.row_count, report.quarantined = (
                done.version, done.rows, done.quarantined)
            report.status = "published"
    _close(one, warehouse_url, built=candidate)


def _close(one: Pass, warehouse_url: str, built: bool) -> None:
    _record(warehouse_url, one.run_id, one.started, one.report, one.contract, built)
    one.done = True


def _attempt(step: str, report: RunReport, stage: Callable[..., T], *args: Any) -> T | None:
    """Run one stage's flow; what it raised becomes the report's failures (None returned)."""
    try:
        return stage(*args)
    except Exception as exc:  # the dataset fails with what to fix; the others carry on
        report.failures += problems_of(exc, step, report.dataset)
        return None


def _current_version(warehouse_url: str, contract: Contract) -> tuple[int, int, int] | None:
    """The served version, if it already holds every loaded batch under this contract."""
    with psycopg.connect(warehouse_url) as conn:
        row = conn.execute(
            "select v.version, v.row_count, v.quarantined from hub.dataset_versions v"
            " where v.dataset = %s and v.contract_version = %s"
            " and not exists (select 1 from hub.load_batches b"
            "                 where b.dataset = v.dataset and b.loaded_at > v.published_at)"
            " order by v.version desc limit 1",
            [contract.dataset_id, contract.version]).fetchone()
    return (row[0], row[1], row[2]) if row else None


def _record(warehouse_url: str, run_id: uuid.UUID, started: datetime, report: RunReport,
            contract: Contract, built: bool) -> None:
    """The run, its validation report and its audit event, in one transaction."""
    with psycopg.connect(warehouse_url) as conn:
        if built:
            store_report(conn, run_id, contract, report.failures, gate_counts(conn, contract))
        for warning in report.warnings:
            notify(conn, contract.department, contract.dataset_id, "ingest.warning", warning,
                   {"run_id": str(run_id)})
        record(conn, AuditEvent(
            kind=f"pipeline.{report.status}", dataset=report.dataset,
            dataset_version=report.version, rows_returned=report.row_count or 0,
            reason="; ".join(f"{f.rule}: {f.message}" for f in report.failures)[:2000],
            detail={"run_id": str(run_id), "rows_loaded": report.rows_loaded,
                    "quarantined": report.quarantined,
                    "failed_rules": sorted({f.rule for f in report.failures})}))
        conn.execute(
            "insert into hub.runs (run_id, dataset, started_at, status, rows_loaded, report)"
            " values (%s, %s, %s, %s, %s, %s)",
            [run_id, report.dataset, started, report.status, report.rows_loaded,
             json.dumps(asdict(report), default=str)],
        )


def run_all(dataset_id: str | None = None, settings: Settings | None = None,
            stand_in: StandIn | None = None) -> list[RunReport]:
    """One pipeline pass over every dataset the registry holds in force (or one); each
    dataset fails on its own. The repository's contract files are registered first, when
    newer than the registry. `stand_in` provides demo systems for sources with a sample and
    no URL."""
    settings = settings or get_settings()
    use_stand_ins(stand_in)
    files, broken = load_each(settings.contracts_dir)
    if broken:  # policies and compiled files need every contract: nothing runs
        return not_run(broken, [dataset_id] if dataset_id else sorted(files))
    try:
        warehouse_url, active, wanted, refused = _prepare(files, dataset_id, settings)
    except KeyError:
        raise  # an unknown or retired dataset asked for: the caller says which exist
    except Exception as exc:  # no warehouse, say: every dataset asked for reports it
        names = [dataset_id] if dataset_id else sorted(files)
        failures = problems_of(exc, "start", ", ".join(names))
        return [RunReport(d, failures=failures) for d in names]
    done = _pass([active[d] for d in wanted if d not in refused], warehouse_url, settings)
    return [RunReport(d, failures=[Failure("contract", "registry", refused[d])]) if d in refused
            else done[d] for d in wanted]


def _pass(contracts: list[Contract], warehouse_url: str, settings: Settings,
          ) -> dict[str, RunReport]:
    """The pass's reports by dataset; if the pass itself broke (its flow could not start,
    say), each of its datasets reports that."""
    if not contracts:
        return {}
    try:
        reports = _quiet_heartbeats(pipeline_pass, contracts, warehouse_url, settings)
    except Exception as exc:
        reports = [RunReport(c.dataset_id, failures=problems_of(exc, "pipeline", c.dataset_id))
                   for c in contracts]
    return {r.dataset: r for r in reports}


def _quiet_heartbeats(action: Callable[..., T], *args: Any) -> T:
    """Run `action` without Prefect's flow-run heartbeats when the Prefect API is the
    temporary one this process starts (no PREFECT_API_URL). A heartbeat tells a server that
    a run is alive, so it can mark crashed ones; the temporary server dies with the process,
    so none is watching, and each flow run waited up to a second at its end for the
    heartbeat thread's sleep: about 4 of the 8 seconds a small dataset took."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if get_current_settings().api.url:
        return action(*args)
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return action(*args)


def _prepare(files: dict[str, Contract], dataset_id: str | None, settings: Settings,
             ) -> tuple[str, dict[str, Contract], list[str], dict[str, str]]:
    """The warehouse, the repository's files registered, the source limits and the dbt
    project in place. Returns the warehouse URL, the contracts in force, the datasets to
    run and why a dataset's file was refused."""
    warehouse_url = resolve_url(settings)
    bootstrap(warehouse_url)
    with psycopg.connect(warehouse_url) as conn:  # the contracts in force are on record
        record_file_changes(conn, "contract.changed", [c.path for c in files.values()],
                            settings.contracts_dir.parent)
        # Grants may name any dataset the registry knows, retired ones included.
        policy = load_policies(settings.policies_dir, {**in_force(conn, retired=True), **files})
    refused = register_files(warehouse_url, files, [d for d in files if dataset_id in (None, d)],
                             policy)
    with psycopg.connect(warehouse_url) as conn:
        active = in_force(conn)
        wanted = [] if dataset_id in refused else _wanted(conn, dataset_id, active, files)
    # A refused file's dataset is reported even if no version of it is in force (its first
    # version refused): a pass never leaves it out silently.
    wanted = sorted(set(wanted) | set(refused))
    ensure_source_limits([active[d] for d in wanted if d in active], settings)
    build.prepare_project(list(active.values()), settings)
    return warehouse_url, active, wanted, refused


def _wanted(conn: psycopg.Connection, dataset_id: str | None, active: dict[str, Contract],
            files: dict[str, Contract]) -> list[str]:
    """The datasets to run: every one in force, or the one asked for if it is."""
    if dataset_id is None or dataset_id in active:
        return [dataset_id] if dataset_id else sorted(active)
    retired = retired_on(conn, dataset_id)
    if retired is not None:
        raise KeyError(f"dataset {dataset_id!r} was retired on {retired}: it is no longer "
                       "built; register a new version with status: active to publish it again")
    raise KeyError(f"unknown dataset {dataset_id!r}; known: "
                   f"{', '.join(sorted(set(active) | set(files)))}")


def _one(contract: Contract, warehouse_url: str, settings: Settings) -> RunReport:
    """One dataset's pass on its own."""
    [report] = pipeline_pass([contract], warehouse_url, settings)
    return report


def not_run(broken: dict[str, ContractError], wanted: list[str]) -> list[RunReport]:
    """The reports of a pass stopped by contract files that do not lint: theirs say why."""
    reports = {d: RunReport(d, status="not run") for d in wanted}
    for dataset, error in broken.items():
        reports[dataset] = RunReport(dataset, failures=problems_of(error, "lint", dataset))
    return [reports[d] for d in sorted(reports)]


def ensure_source_limits(contracts: list[Contract], settings: Settings) -> None:
    """A Prefect global concurrency limit per source system, created when missing."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for name in sorted({source_system(c) for c in contracts if c.source}):
            client.upsert_global_concurrency_limit_by_name(name, settings.source_concurrency)


def register_files(warehouse_url: str, contracts: dict[str, Contract], wanted: list[str],
                   policy: Policy) -> dict[str, str]:
    """Register each wanted contract file newer than the registry's latest version of its
    dataset; return why a dataset's file was refused (a breaking change without a major
    bump)."""
    refused = {}
    for contract in (contracts[d] for d in wanted):
        with psycopg.connect(warehouse_url) as conn:
            latest = latest_version(conn, contract.dataset_id)
            if latest and semver(latest.version) > semver(contract.version):
                continue  # the registry is ahead: a department registered a newer version
            try:
                register(conn, contract, contract.path.read_text(), "hub run", policy)
            except RegistrationRefused as exc:
                refused[contract.dataset_id] = f"{contract.path}: {exc}"
    return refused


@flow(name="scheduled-pipeline")
def scheduled_pipeline(dataset_id: str) -> RunReport:
    """Entry point for deployments (deploy/prefect.yaml): settings come from HUB_* variables.
    Its heartbeat tells the Prefect server it is alive (flows/heartbeat.py)."""
    with alive(get_settings().run_heartbeat_seconds):
        [report] = run_all(dataset_id)
    if report.status != "published":
        raise RuntimeError(f"{dataset_id} not published: "
                           + "; ".join(f"{f.rule}: {f.message}" for f in report.failures))
    return report
