"""The audit sealer's own process: it seals, it stops, and it never outlives its server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from hub import ledger
from hub.audit import AuditEvent, record
from hub.retention import verify_database
from hub.sealer import NICENESS, Sealer
from hub.settings import Settings
from tests.conftest import REPO, own_warehouse

LOCK = "select pg_advisory_lock(hashtext('civic-data-hub audit sealer'))"


@pytest.fixture
def url(server_url):
    with own_warehouse(server_url, "hub_sealer") as url:
        yield url


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path, audit_seal_seconds=0.1, _env_file=None)


def write_events(url: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        for i in range(n):
            record(conn, AuditEvent(kind="test.sealer", request_id=str(i)))


def chained(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from audit.chain").fetchone()[0]


def verified(url: str, settings: Settings) -> bool:
    with psycopg.connect(url) as conn:
        result = verify_database(conn, ledger.load_signing_key(settings.keys_dir).public_key())
    return result.ok and result.unsealed == 0


def test_the_sealer_process_chains_what_is_written(url, settings):
    sealer = Sealer(url, settings)
    sealer.start()
    write_events(url, 20)
    wait_for_chain(url, 20)  # sealed while running, not only at stop
    # It yields the CPU to the server's requests (hub.sealer.NICENESS above the server's).
    assert os.getpriority(os.PRIO_PROCESS, sealer._process.pid) == min(
        19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
    sealer.stop()
    assert verified(url, settings)


def test_the_sealer_reconnects_after_losing_its_connection(url, settings):
    sealer = Sealer(url, settings)
    sealer.start()
    write_events(url, 3)
    wait_for_chain(url, 3)
    with psycopg.connect(url, autocommit=True) as conn:  # the sealer's session is killed
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                     " where datname = current_database() and pid <> pg_backend_pid()")
    write_events(url, 3)
    wait_for_chain(url, 6)
    sealer.stop()
    assert verified(url, settings)


def wait_for_chain(url: str, n: int) -> None:
    deadline = time.monotonic() + 15
    while chained(url) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chained(url) == n


def test_stop_ends_a_sealer_stuck_on_the_database_and_still_seals(url, settings):
    write_events(url, 5)
    holder = psycopg.connect(url, autocommit=True)
    holder.execute(LOCK)  # the child's seal waits on this lock
    sealer = Sealer(url, settings)
    sealer.start()
    time.sleep(0.5)
    releaser = threading.Timer(2.0, holder.close)  # closing the session frees its lock
    releaser.start()
    started = time.monotonic()
    sealer.stop(timeout=0.5)  # the child is stuck: ended; the final seal waits for the lock
    assert not sealer._process.is_alive()
    assert time.monotonic() - started < 10
    assert verified(url, settings)


def test_a_sealer_whose_server_died_exits_by_itself(url, settings):
    # The server dies without stopping its sealer (os._exit skips every cleanup).
    helper = (f"import os; from pathlib import Path; from hub.sealer import Sealer;"
              f" from hub.settings import Settings;"
              f" s = Sealer({url!r}, Settings(home=Path({str(settings.home)!r}),"
              f" audit_seal_seconds=0.1, _env_file=None)); s.start();"
              f" print(s._process.pid, flush=True); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", helper], cwd=REPO, capture_output=True,
                          text=True, check=True, timeout=60)
    child = int(done.stdout.strip())
    deadline = time.monotonic() + 15
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(child)


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/stat")
    if not status.exists():
        return False
    return status.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited

