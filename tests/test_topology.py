"""The production topology on loopback: a Prefect server on its own PostgreSQL database, a
process work pool with two workers, the deployments `hub deploy` registered (one of them
for a dataset onboarded only through the registry). Both workers take runs; a worker killed
mid-run (its process group and its run's, with SIGKILL) leaves a run that the server marks
Crashed and runs again on the other worker, which loads only what the first did not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from access_policies import load_policies
from contracts import load_all, load_contract_text
from flows.deployments import specs
from hub.registry import register
from tests.conftest import REPO, count, free_port, own_warehouse
from tests.topology_support import (
    GATED,
    Api,
    gated_contract_text,
    gated_drop,
    kill_group,
    open_gate,
    prefect_server,
    process_group,
    run_process,
    runner_of,
    taker,
    wait_for,
)

SHELTER_RUN = "scheduled-pipeline/social-services-shelter-census"
GATED_RUN = "scheduled-pipeline/social-services-shelter-gated"  # made by `hub deploy`


def hub_env(tmp_path: Path, warehouse: str, api: str | None) -> dict[str, str]:
    """What a worker's machine sets: the warehouse, its sources, the Prefect server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_SOURCE_")}
    env.update({
        "HUB_DATABASE_URL": warehouse, "HUB_DEMO_SOURCES": "false",
        "HUB_PSEUDONYM_KEY": "topology-test-key", "HUB_RUN_HEARTBEAT_SECONDS": "2",
        "HUB_SOURCE_SOCIAL_SERVICES_DROP": str(tmp_path / "shelter"),
        "HUB_SOURCE_SOCIAL_SERVICES_GATED": str(tmp_path / "gated"),
        # A worker asks for runs every second (default 10): runs start sooner.
        # INFO: each run's steps, timed, in the worker's log (worker-a.log, worker-b.log).
        "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_HOME": str(tmp_path / "prefect")})
    if api:
        env["PREFECT_API_URL"] = api
    return env


def onboard_gated(warehouse: str, settings) -> None:
    """The dataset as the onboarding API registers it: in the registry only."""
    text = gated_contract_text()
    contract = load_contract_text(text, "shelter_gated.odcs.yaml")
    policy = load_policies(settings.policies_dir,
                           {**load_all(settings.contracts_dir), GATED: contract})
    with psycopg.connect(warehouse) as conn:
        register(conn, contract, text, "test onboarding", policy)


def hub_deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub_cli", "deploy", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def deploy_here(monkeypatch, capsys, settings, tmp_path, api: str | None) -> tuple[int, str]:
    """`hub deploy` in this process (no interpreter to start): its exit code and stderr."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from hub.settings import get_settings
    from hub_cli.main import main

    monkeypatch.setenv("HUB_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        with temporary_settings({PREFECT_API_URL: api}):
            code = main(["deploy"])
    finally:
        get_settings.cache_clear()
    return code, capsys.readouterr().err


def test_deploy_without_a_prefect_server_says_what_to_set(monkeypatch, capsys, settings,
                                                         tmp_path):
    code, err = deploy_here(monkeypatch, capsys, settings, tmp_path, None)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: hub deploy needs a Prefect server: set PREFECT_API_URL, e.g. "
        "http://127.0.0.1:4200/api (see docs/workers.md)"]


def test_deploy_with_no_server_at_the_address_says_so(monkeypatch, capsys, settings, tmp_path):
    api = f"http://127.0.0.1:{free_port()}/api"
    code, err = deploy_here(monkeypatch, capsys, settings, tmp_path, api)
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: no Prefect server answers at PREFECT_API_URL={api} (")
    assert line.endswith("start one (`prefect server start`) or correct the address")


def test_a_dataset_onboarded_through_the_registry_gets_a_deployment(settings):
    contract = load_contract_text(gated_contract_text(), "shelter_gated.odcs.yaml")
    files = load_all(settings.contracts_dir)
    found = specs(settings.deployments_file, {**files, GATED: contract})
    by_dataset = {s.dataset: s for s in found if s.dataset}
    assert len(by_dataset) == len(files) + 1  # the file's own entries are not doubled
    made = by_dataset[GATED]
    assert (made.name, made.entrypoint, made.pool) == (
        "social-services-shelter-gated", "flows/pipeline.py:scheduled_pipeline", "civic-data-hub")
    assert made.schedules == [{"cron": "0 6 * * *", "timezone": "UTC"}]


def test_two_workers_share_runs_and_a_killed_run_finishes_on_the_other(
        server_url, settings, tmp_path):
    (tmp_path / "shelter").mkdir(), (tmp_path / "gated").mkdir(), (tmp_path / "prefect").mkdir()
    (tmp_path / "shelter" / "census.csv").write_bytes(
        (REPO / "data" / "nyc_dhs_shelter_census" / "DHS_Daily_Report.csv").read_bytes())
    rows = gated_drop(tmp_path / "gated")
    # The server migrates its new database while the warehouse is made.
    with prefect_server(server_url, hub_env(tmp_path, "", None), tmp_path) as (api, ready, _), \
            own_warehouse(server_url, "hub_topo") as warehouse:
        env = hub_env(tmp_path, warehouse, api)
        onboard_gated(warehouse, settings)
        ready()
        # The workers start while `hub deploy` registers the pool and the deployments.
        with process_group(*worker("a", env, tmp_path)) as a, \
                process_group(*worker("b", env, tmp_path)) as b:
            deployed = hub_deploy(env | {"HUB_HOME": str(tmp_path / "deployer")},
                                  "--no-schedules")
            assert deployed.returncode == 0, deployed.stderr
            assert f"deployment {GATED_RUN}" in deployed.stdout.splitlines()
            workers = {"a": a, "b": b}
            ran = take_and_kill(Api(api), workers, warehouse, tmp_path)
            check_outcome(Api(api), warehouse, rows, ran, tmp_path)


def worker(name: str, env: dict[str, str], tmp_path: Path) -> tuple:
    home = tmp_path / f"home-{name}"  # each worker's machine has its own HUB_HOME
    return ([sys.executable, "-m", "hub_cli", "worker", "--pool", "civic-data-hub", "--limit",
             "1", "--name", f"worker-{name}"], env | {"HUB_HOME": str(home)},
            tmp_path / f"worker-{name}.log")


def take_and_kill(api: Api, workers: dict[str, int], warehouse: str, tmp_path: Path,
                  ) -> tuple[str, str]:
    """The gated run and the shelter run triggered at once: each idle worker takes one
    (--limit 1). Once the gated run has committed its first file (it then waits on the
    second, a named pipe), its worker is killed with it and the second file put in place.
    Returns the two runs' ids."""
    gated, shelter = api.trigger(GATED_RUN), api.trigger(SHELTER_RUN)
    wait_for(lambda: count(warehouse, "select count(*) from hub.ingest_files where dataset"
                           " = %s and complete", [GATED]) == 1, 240, "the gated first file")
    holder = wait_for(lambda: runner_of(gated, workers), 30, "the gated run's process")
    kill_group(workers[holder])  # the worker's machine stops: its run goes with it
    kill_group(run_process(gated))  # (a flow run has a process group of its own)
    wait_for(lambda: run_process(gated) is None, 30, "the killed run's process to end")
    open_gate(tmp_path / "gated")
    return gated, shelter


def check_outcome(api: Api, warehouse: str, rows: int, ran: tuple[str, str],
                  logs: Path) -> None:
    def finished(deployment: str) -> list[dict] | None:
        runs = api.runs_of(deployment)
        return runs if any(r["state"]["type"] in ("COMPLETED", "FAILED") for r in runs) else None

    runs = wait_for(lambda: finished(GATED_RUN), 300, "a second gated run to finish")
    assert [(r["id"] == ran[0], r["state"]["type"]) for r in runs] == [
        (True, "CRASHED"), (False, "COMPLETED")], runs
    assert "no heartbeat" in runs[0]["state"]["message"]
    [shelter] = wait_for(lambda: finished(SHELTER_RUN), 120, "the shelter run to finish")
    assert shelter["state"]["type"] == "COMPLETED"
    [first], [other], [again] = (taker(r, logs) for r in (ran[0], ran[1], runs[1]["id"]))
    assert {first, other} == {"a", "b"}, "each worker takes a run (--limit 1)"
    assert again == other, "the crashed run is run again by the worker still alive"
    raw = "select count(*) from raw_social_services.shelter_gated"
    assert count(warehouse, raw) == rows  # every row once: none lost, none twice
    assert count(warehouse, "select sum(rows) from hub.load_batches where dataset = %s",
                 [GATED]) == rows
    published = "select count(*) from hub.dataset_versions where dataset = %s"
    assert count(warehouse, published, [GATED]) == 1
    assert count(warehouse, published, ["social_services.shelter_census"]) == 1


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    assert Path("/proc/self/task").exists(), "these tests read /proc (Linux)"


def test_a_second_ingest_of_a_dataset_waits_for_the_first_and_loads_nothing_twice(
        server_url, settings, tmp_path):
    """What keeps a run marked crashed while still alive (or a schedule beside its rerun)
    from loading rows twice: the dataset's ingest lock, held here by a stand-in run."""
    import threading

    from flows.ingest import ingest
    from tests.stand_ins import shelter_drop

    contract = load_all(settings.contracts_dir)["social_services.shelter_census"]
    source = shelter_drop(tmp_path)
    with own_warehouse(server_url, "hub_lock") as warehouse, \
            psycopg.connect(warehouse, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(hashtext('ingest ' || %s))",
                       [contract.dataset_id])
        loads: list[int] = []
        second = threading.Thread(target=lambda: loads.append(
            ingest(warehouse, contract, source, settings).rows))
        second.start()
        wait_for(lambda: count(warehouse, "select count(*) from pg_locks where not granted"
                               " and locktype = 'advisory' and database = (select oid from"
                               " pg_database where datname = current_database())"),
                 60, "the second ingest to wait for the first")
        assert loads == []
        holder.execute("select pg_advisory_unlock(hashtext('ingest ' || %s))",
                       [contract.dataset_id])
        second.join(timeout=120)
        again = ingest(warehouse, contract, source, settings).rows  # after it: nothing new
        assert (loads, again) == ([3728], 0)
        assert count(warehouse, "select count(*) from raw_social_services.shelter_census") \
            == 3728


HOLD_SLOT = ("import sys, time; from pathlib import Path;"
             " from prefect.concurrency.sync import concurrency\n"
             "with concurrency(sys.argv[1], occupy=1, lease_duration=60):\n"
             "    print('held', flush=True)\n"
             "    while not Path(sys.argv[2]).exists(): time.sleep(0.1)\n")


def test_a_source_systems_limit_holds_across_processes(settings, tmp_path):
    """What keeps the limit across workers: the Prefect server counts the slots. Two
    processes (as on two workers) each ask for the slot `hub deploy` limits to one."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.pipeline import ensure_source_limits
    from flows.stages import source_system

    contract = load_all(settings.contracts_dir)["social_services.shelter_census"]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    with prefect_server(None, env, tmp_path) as (api, ready, _):
        ready()
        with temporary_settings({PREFECT_API_URL: api}):
            ensure_source_limits([contract], settings.model_copy(
                update={"source_concurrency": 1}))
        holders = [subprocess.Popen(
            [sys.executable, "-c", HOLD_SLOT, source_system(contract), str(tmp_path / name)],
            env=env | {"PREFECT_API_URL": api}, cwd=REPO, stdout=subprocess.PIPE, text=True)
            for name in ("first-done", "second-done")]
        try:
            first = wait_for(lambda: next((h for h in holders if _said_held(h)), None), 60,
                             "one process to hold the slot")
            other = next(h for h in holders if h is not first)
            time.sleep(3)  # the slot's poll: the other would have it by now, were it free
            assert not _said_held(other), "both held the source system's one slot"
            (tmp_path / ("first-done" if first is holders[0] else "second-done")).touch()
            wait_for(lambda: _said_held(other), 60, "the other to get the slot once freed")
        finally:
            (tmp_path / "first-done").touch(), (tmp_path / "second-done").touch()
            for holder in holders:
                holder.wait(timeout=60)


def _said_held(process: subprocess.Popen) -> bool:
    """Whether `process` has printed `held` (read without blocking)."""
    import select

    if select.select([process.stdout], [], [], 0)[0]:
        process.said = getattr(process, "said", "") + process.stdout.readline()
    return "held" in getattr(process, "said", "")
