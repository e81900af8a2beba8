"""`hub worker` stops like a service (flows/worker.py): on SIGTERM or SIGINT to its whole
process group it takes no more runs, lets the runs in flight end within
HUB_WORKER_GRACE_SECONDS, hands back (Crashed) what is still going, and prints one line.
A real Prefect server and real flow runs (tests/worker_flows.py), on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.deployments import Spec, register
from tests.conftest import REPO, clock_env, free_port
from tests.topology_support import Api, kill_group, prefect_server, run_process, wait_for

STARTED = "hub worker: taking runs from pool"


def prefect_env(home: Path, api: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    env |= {"PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1"}  # a worker asks for runs every second
    return env | ({"PREFECT_API_URL": api} if api else {})


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server on its default SQLite database: Prefect's state is its own business."""
    logs = tmp_path_factory.mktemp("prefect-server")
    with prefect_server(None, prefect_env(logs), logs) as (api, ready, _):
        ready()
        yield api


class HubWorker:
    """`hub worker` as a service manager starts it: leader of its own process group."""

    def __init__(self, api: str, tmp_path: Path, pool: str, grace: float,
                 limit: int = 1) -> None:
        self.log = tmp_path / f"{pool}.log"
        env = prefect_env(tmp_path, api) | clock_env() | {
            "HUB_HOME": str(tmp_path / "home"), "HUB_WORKER_GRACE_SECONDS": str(grace)}
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub_cli", "worker", "--pool", pool, "--limit", str(limit)],
                cwd=REPO, env=env, start_new_session=True, stdout=out,
                stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def wait_started(self) -> None:
        def started() -> bool:
            assert self.proc.poll() is None, f"`hub worker` ended: {self.output()}"
            return STARTED in self.output()
        wait_for(started, 60, "`hub worker` to start")

    def signal_group(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def ended_within(self, seconds: float, prefect_may_report: bool = False) -> list[str]:
        """Its lines after the start line, once it has ended (else killed, and the test
        fails). No traceback, unless `prefect_may_report` its server's loss (Prefect logs
        that warning with the exception)."""
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"`hub worker` still running {seconds} s after the signal:\n"
                        f"{self.output()}")
        text = self.output()
        assert prefect_may_report or "Traceback" not in text, text
        # (A run's process shares the output; Prefect may leave a line of its unfinished.)
        return [line[line.index("hub worker"):] for line
                in text.split(STARTED, 1)[1].splitlines()[1:] if "hub worker" in line]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def deploy_waiting_flow(api: str, pool: str, release: Path) -> str:
    """A deployment whose runs last until `release` exists; its `flow/deployment` name."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spec = Spec(name=pool, entrypoint="tests/worker_flows.py:wait_for_file",
                parameters={"path": str(release)}, pool=pool)
    with temporary_settings({PREFECT_API_URL: api}):
        [name] = register([spec], REPO, None, False)
    return name


def wait_running(api: Api, runs: list[str]) -> str:
    """The first of `runs` to be running (its process has started)."""
    return wait_for(lambda: next((r for r in runs if api.state(r) == "RUNNING"), None), 90,
                    "a run to start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_idle_worker_stops_on_a_signal_to_its_group(sig, prefect_api, tmp_path):
    worker = HubWorker(prefect_api, tmp_path, f"idle-{sig.name.lower()}", grace=60)
    try:
        worker.wait_started()
        worker.signal_group(sig)
        lines = worker.ended_within(10)
    finally:
        worker.kill()
    assert lines == [f"hub worker stopped on {sig.name}: no run in flight"]
    assert worker.proc.returncode == 0


def test_a_run_in_flight_finishes_in_the_grace_period_and_no_new_run_is_taken(
        prefect_api, tmp_path):
    api, release = Api(prefect_api), tmp_path / "release"
    deployment = deploy_waiting_flow(prefect_api, "finish", release)
    first = api.trigger(deployment)
    worker = HubWorker(prefect_api, tmp_path, "finish", grace=60, limit=2)  # room for two
    try:
        wait_running(api, [first])
        worker.signal_group(signal.SIGTERM)
        time.sleep(1)  # a poll under way at the signal belongs before it
        later = api.trigger(deployment)
        time.sleep(3)  # three polls: a worker still taking runs has taken it by now
        assert worker.proc.poll() is None, "the worker waits for its run"
        release.touch()
        lines = worker.ended_within(30)
    finally:
        worker.kill()
    assert lines == ["hub worker stopped on SIGTERM: 1 run finished"], worker.output()
    assert (api.state(first), api.state(later)) == ("COMPLETED", "SCHEDULED"), worker.output()


@pytest.mark.parametrize("grace, signals", [(1, [signal.SIGTERM]),
                                            (60, [signal.SIGINT, signal.SIGINT])],
                         ids=["grace-over", "second-ctrl-c"])
def test_a_run_still_going_is_handed_back_crashed(grace, signals, prefect_api, tmp_path):
    """At the end of the grace period, or at once on a second Ctrl+C."""
    api, pool = Api(prefect_api), f"handback-{grace}"
    run = api.trigger(deploy_waiting_flow(prefect_api, pool, tmp_path / "never"))
    worker = HubWorker(prefect_api, tmp_path, pool, grace=grace)
    try:
        wait_running(api, [run])
        for sig in signals:
            worker.signal_group(sig)
            time.sleep(0.5)
        lines = worker.ended_within(10)
    finally:
        worker.kill()
    assert lines == [f"hub worker stopped on {signals[0].name}: 1 run handed back (Crashed; "
                     "the hub's automation runs each again on another worker)"]
    state = api.http.get(f"/flow_runs/{run}").json()["state"]
    assert state["type"] == "CRASHED"
    assert "termination signal" in state["message"]  # it was told, not just killed
    assert run_process(run) is None  # nothing of it left running


def test_a_worker_whose_prefect_server_stopped_first_still_stops_and_ends_its_run(tmp_path):
    """As in `docker compose down`, where every service stops at once."""
    with prefect_server(None, prefect_env(tmp_path), tmp_path) as (url, ready, server):
        ready()
        api = Api(url)
        run = api.trigger(deploy_waiting_flow(url, "orphaned", tmp_path / "never"))
        worker = HubWorker(url, tmp_path, "orphaned", grace=1)
        try:
            wait_running(api, [run])
            kill_group(server)
            worker.signal_group(signal.SIGTERM)
            lines = worker.ended_within(20, prefect_may_report=True)
        finally:
            worker.kill()
    assert worker.proc.returncode == 0  # the hub's own stop raised nothing
    assert lines == ["hub worker stopped on SIGTERM: 1 run handed back (Crashed; the hub's "
                     "automation runs each again on another worker)"]
    assert run_process(run) is None


@pytest.mark.parametrize("api, says", [
    (None, "error: hub worker needs a Prefect server: set PREFECT_API_URL, e.g. "
           "http://127.0.0.1:4200/api (see docs/workers.md)"),
    ("nobody", "error: no Prefect server answers at PREFECT_API_URL=")])
def test_without_a_prefect_server_it_says_what_to_set(api, says, tmp_path):
    address = f"http://127.0.0.1:{free_port()}/api" if api else None
    env = prefect_env(tmp_path, address) | {"HUB_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "hub_cli", "worker"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(says), line


def test_a_server_that_is_not_prefects_is_named_in_one_line(tmp_path):
    """An address that answers /health but is no Prefect API (a wrong port, say)."""
    import http.server
    import threading

    class HealthOnly(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            found = self.path.rstrip("/").endswith("/health")
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(b"true" if found else b"{}")
        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{server.server_port}/api"
    try:
        env = prefect_env(tmp_path, address) | {"HUB_HOME": str(tmp_path / "home")}
        done = subprocess.run([sys.executable, "-m", "hub_cli", "worker"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after Prefect's own warning of it
    assert line.startswith(f"error: the Prefect server at PREFECT_API_URL={address} did not "
                           "take the worker (")
    assert line.endswith("is it a Prefect server's API?")
