"""Loopback processes for tests/test_topology.py: a Prefect server on its own PostgreSQL
database, Prefect workers, and the gated drop folder that holds a run mid-ingest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psycopg

from tests.conftest import REPO, RUN_TAG, free_port

PREFECT = str(Path(sys.executable).parent / "prefect")
SHELTER = REPO / "contracts" / "social_services" / "shelter_census.odcs.yaml"
SHELTER_CSV = REPO / "data" / "nyc_dhs_shelter_census" / "DHS_Daily_Report.csv"
GATED = "social_services.shelter_gated"


def asyncpg_url(server_url: str, database: str) -> str:
    """Prefect's own database on the tests' PostgreSQL server, as SQLAlchemy's asyncpg URL."""
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    host, user = info.get("host") or "127.0.0.1", info.get("user") or "postgres"
    if host.startswith("/"):  # the embedded server: a Unix socket
        return f"postgresql+asyncpg://{user}@/{database}?host={host}"
    return f"postgresql+asyncpg://{user}@{host}:{info.get('port') or 5432}/{database}"


@contextmanager
def process_group(command: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    """`command` in a process group of its own (its output in `log`); the whole group is
    killed when the block ends, if still there. Yields its pid (= its group id)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc.pid
    finally:  # its flow runs too: each is a process group of its own
        for child in descendants(proc.pid):
            kill_group(child)
        kill_group(proc.pid)
        proc.wait(timeout=30)


def kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@contextmanager
def prefect_server(server_url: str | None, env: dict[str, str], logs: Path) -> Iterator[tuple]:
    """`prefect server start` on a free port, on its own database (with `server_url` None,
    Prefect's default: SQLite in PREFECT_HOME). Yields its API URL at once, a function that
    waits until it answers (the caller works meanwhile), and its process group."""
    from hub.warehouse import drop_database, ensure_database

    database = f"hub_test_{RUN_TAG}_prefect"
    if server_url:
        ensure_database(server_url, database)
        env = {**env, "PREFECT_API_DATABASE_CONNECTION_URL": asyncpg_url(server_url, database)}
    port = free_port()
    try:
        with process_group([PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                            str(port)], env, logs / "server.log") as pid:
            api = f"http://127.0.0.1:{port}/api"
            yield api, lambda: wait_for(lambda: _healthy(api, pid, logs / "server.log"), 120,
                                        f"the Prefect server at {api} to answer"), pid
    finally:
        if server_url:
            drop_database(server_url, database)


def _healthy(api: str, pid: int, log: Path) -> bool:
    # An embedded test server (no HUB_TEST_DATABASE_URL) lacks pg_trgm, which Prefect needs.
    gone = os.waitpid(pid, os.WNOHANG)[0] == pid
    assert not gone, f"the Prefect server stopped: {log.read_text().strip().splitlines()[-3:]}"
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check, seconds: float, what: str):
    """Poll `check` until it returns something truthy; fail naming `what` after `seconds`
    (a guard against hanging, not a speed check)."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.3)
    return found


def gated_contract_text() -> str:
    """A copy of the shelter census contract as another dataset, onboarded only through the
    registry (no file in contracts/, no entry in deploy/prefect.yaml)."""
    text = SHELTER.read_text().replace("shelter_census", "shelter_gated")
    text = text.replace("HUB_SOURCE_SOCIAL_SERVICES_DROP", "HUB_SOURCE_SOCIAL_SERVICES_GATED")
    text = text.replace("sheltercensus", "sheltergated")
    return "\n".join(line for line in text.splitlines() if "sample:" not in line) + "\n"


def gated_drop(folder: Path) -> int:
    """A drop folder of two files: `a.csv`, and `b.csv` a named pipe, whose reading blocks
    until it is replaced by a file (`open_gate`). Returns the rows both files hold."""
    header, *rows = SHELTER_CSV.read_text().splitlines()
    half = len(rows) // 2
    (folder / "a.csv").write_text("\n".join([header, *rows[:half]]) + "\n")
    (folder / "b.rows").write_text("\n".join([header, *rows[half:]]) + "\n")
    os.mkfifo(folder / "b.csv")
    return len(rows)


def open_gate(folder: Path) -> None:
    (folder / "b.csv").unlink()
    (folder / "b.rows").rename(folder / "b.csv")


def run_process(flow_run_id: str) -> int | None:
    """The process running `flow_run_id` on this machine now, if any."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:  # gone, or not ours to read
            continue
    return None


def runner_of(flow_run_id: str, workers: dict[str, int]) -> str | None:
    """The worker whose child process runs `flow_run_id` now, if any."""
    pid = run_process(flow_run_id)
    return next((name for name, worker in workers.items() if pid in descendants(worker)),
                None)


def descendants(pid: int) -> set[int]:
    """Every process under `pid`, found by their parent ids in /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():  # "pid (name) state ppid ...": the name may hold spaces
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, up in parents.items() if up == parent]
        found.update(children)
        todo += children
    return found


def taker(flow_run_id: str, logs: Path) -> list[str]:
    """The workers whose log says they started `flow_run_id` (and did not give it up)."""
    found = []
    for log in sorted(logs.glob("worker-*.log")):
        text = log.read_text(errors="replace")
        if (f"submitting flow run '{flow_run_id}'" in text
                and f"Aborted submission of flow run '{flow_run_id}'" not in text):
            found.append(log.stem.removeprefix("worker-"))
    return found


class Api:
    """The few Prefect REST calls the test makes."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def trigger(self, deployment: str) -> str:
        found = self.http.get(f"/deployments/name/{deployment}")
        found.raise_for_status()
        made = self.http.post(f"/deployments/{found.json()['id']}/create_flow_run", json={})
        made.raise_for_status()
        return made.json()["id"]

    def state(self, flow_run_id: str) -> str:
        return self.http.get(f"/flow_runs/{flow_run_id}").json()["state"]["type"]

    def runs_of(self, deployment: str) -> list[dict]:
        found = self.http.get(f"/deployments/name/{deployment}").json()["id"]
        runs = self.http.post("/flow_runs/filter", json={
            "deployments": {"id": {"any_": [found]}}, "sort": "EXPECTED_START_TIME_ASC"})
        runs.raise_for_status()
        return runs.json()
