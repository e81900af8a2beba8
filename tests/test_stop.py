"""Stopping like a service: `hub serve` ends on SIGTERM or SIGINT to its whole process group
(what systemd's stop, `timeout` and Ctrl+C send) within a grace period, with one line and no
traceback, and every audit record written before the signal is sealed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from api.metrics import UNSEALED
from hub import embedded, ledger
from hub.audit import AuditEvent, record
from hub.retention import verify_database
from hub_cli.stopping import Stopped, stop_signals_raise
from hub_cli.warehouse import EXTERNAL, describe
from tests.conftest import REPO, clock_env, free_port, own_warehouse


def start_serve(env: dict[str, str], port: int) -> subprocess.Popen:
    """`hub serve` as a shell or service manager starts it: leader of its own process group."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    return subprocess.Popen([sys.executable, "-m", "hub_cli", "serve", "--port", str(port)],
                            cwd=REPO, env=clean | clock_env() | env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_ready(server: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, f"`hub serve` ended: {server.communicate()[0]}"
        try:
            if httpx.get(f"{base}/.well-known/jwks.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"`hub serve` not answering at {base} in 60 s"
        time.sleep(0.1)


def stop_group(server: subprocess.Popen, sig: signal.Signals | None) -> str:
    """Signal every process of the group at once (unless done already); its output, once it
    has ended (10 s at most: beyond that it is killed and the test fails)."""
    if sig is not None:
        os.killpg(server.pid, sig)
    try:
        output, _ = server.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        output, _ = server.communicate()
        pytest.fail(f"`hub serve` still running 10 s after the signal to its group:\n{output}")
    return output


def stop_with_a_request_in_flight(server: subprocess.Popen, sig: signal.Signals, url: str,
                                  port: int) -> tuple[str, httpx.Response]:
    """Signal the group while a /metrics request waits on a lock the test holds; let it go
    once the server has stopped listening (it is shutting down). (output, its answer)"""
    holder = psycopg.connect(url)
    holder.execute("lock table audit.events in access exclusive mode")
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(httpx.get, f"http://127.0.0.1:{port}/metrics", timeout=60)
        wait_for(lambda: count(url, "select count(*) from pg_stat_activity where"
                               " wait_event_type = 'Lock' and query like %s", [UNSEALED])
                 > 0, "the request waiting on the lock")
        os.killpg(server.pid, sig)
        wait_for(lambda: not listening(port), "the server to stop listening")
        holder.close()  # the request in flight goes on
        return stop_group(server, None), asked.result()


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def count(url: str, query: str, params: list | None = None) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"waited 30 s for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_on_a_signal_to_its_whole_group_and_seals(sig, server_url, tmp_path):
    port = free_port()
    with own_warehouse(server_url, "hub_test_stop") as url:
        server = start_serve({"HUB_HOME": str(tmp_path), "HUB_DATABASE_URL": url,
                              "HUB_AUDIT_SEAL_SECONDS": "0.2"}, port)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(server, base)
            assert httpx.get(f"{base}/datasets").status_code == 401  # a denial, on record
            # The sealer child is in its loop (it has sealed): the state the hang needed.
            wait_for(lambda: count(url, "select count(*) from audit.chain") > 0, "a seal")
            with psycopg.connect(url) as conn:
                for i in range(50):
                    record(conn, AuditEvent(kind="test.stop", request_id=f"before-{i}"))
            output, in_flight = stop_with_a_request_in_flight(server, sig, url, port)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        assert "Traceback" not in output, output
        assert output.strip().splitlines() == [f"hub serve stopped on {sig.name}"]
        assert server.returncode == 0
        assert in_flight.status_code == 200  # answered although the stop came first
        with psycopg.connect(url) as conn:
            verified = verify_database(conn, ledger.load_signing_key(
                tmp_path / "keys").public_key())
        assert verified.ok and verified.unsealed == 0, verified
        assert verified.entries == count(url, "select count(*) from audit.events")


# ---------- the embedded warehouse: running while a hub process uses it, then stopped

HOLD = ("import sys; from pathlib import Path; from hub.warehouse import start_embedded;"
        " start_embedded(Path(sys.argv[1])); print('up', flush=True); sys.stdin.read()")


def hub(*args: str, home) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    return subprocess.run([sys.executable, "-m", "hub_cli", *args], cwd=REPO, text=True,
                          env=clean | clock_env() | {"HUB_HOME": str(home)},
                          capture_output=True, timeout=120)


def test_the_embedded_warehouse_stops_with_its_last_user_even_after_a_kill(tmp_path):
    data_dir = tmp_path / "pg"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(data_dir)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "up\n"
        assert embedded.state(data_dir).users == [holder.pid]
        refused = hub("warehouse", "stop", home=tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            f"error: the embedded warehouse in {data_dir} is in use by hub process(es)"
            f" {holder.pid}: stop them first (it then stops by itself), or give --force")
    finally:
        holder.kill()  # killed outright: it never takes itself off the list of users
        holder.wait()
    assert "used by no hub process" in describe(embedded.state(data_dir))
    assert embedded.stop(data_dir)  # what `hub warehouse stop` does
    assert describe(embedded.state(data_dir)) == (
        f"embedded warehouse in {data_dir}: not running (the next hub command starts it)")
    # The killed one is still listed: without taking it off, no later process was ever the
    # last user, and every later command left the server running.
    assert holder.pid in json.loads((data_dir / embedded.USERS_FILE).read_text())
    assert hub("clients", "list", home=tmp_path).returncode == 0
    assert embedded.state(data_dir).postmaster is None


@pytest.fixture
def hub_in_process(monkeypatch, tmp_path):
    """`hub` run in this process with HUB_HOME and HUB_DATABASE_URL of the test's own."""
    from hub.settings import get_settings
    from hub_cli.main import main

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://hub@warehouse.example/hub")
    get_settings.cache_clear()
    yield main
    get_settings.cache_clear()


def test_warehouse_commands_leave_a_server_of_hub_database_url_alone(hub_in_process, capsys):
    assert hub_in_process(["warehouse", "status"]) == 0
    assert capsys.readouterr().out.strip() == EXTERNAL
    assert hub_in_process(["warehouse", "stop"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {EXTERNAL}; stop that server with its own tools")


def test_a_stop_signal_unwinds_a_command_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as stopped, stop_signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    assert stopped.value.name == "SIGTERM" and stopped.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
