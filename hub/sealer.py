"""Background sealing for the API: chain and sign new audit rows every few seconds.

The sealer runs in a process of its own, on one connection it keeps. Hashing a few
seconds' worth of audit rows is a burst of pure-Python work; in a thread of an API worker
it held that worker's GIL while requests waited.

One sealer per warehouse, however many `hub serve` instances and workers start one: each
sealer process tries, every pass, to take a session-level advisory lock (ELECTION); the one
holding it seals, the others stand by on an idle connection. When the leader's process or
connection dies PostgreSQL releases its lock and a standby takes over on its next pass. The
election lock is not the one `ledger.seal` takes per pass: held for the leader's whole life,
that one would block `hub audit seal` and every stopping instance's last seal.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from multiprocessing.synchronize import Event
from pathlib import Path

import psycopg

from hub.ledger import LATE_COMMIT_WINDOW, load_signing_key, seal
from hub.settings import Settings

log = logging.getLogger(__name__)
# Late commits are looked for this far back on a routine pass (at 1,000 reads a second, ten
# seconds), and as far back as the ledger's own default on every WIDE_EVERY-th pass and at
# stop: a long transaction's records are sealed a little later, never missed.
ROUTINE_WINDOW = 10_000
WIDE_EVERY = 30
NICENESS = 10
ELECTION = "select pg_try_advisory_lock(hashtext('civic-data-hub audit sealer leader'))"
_SPAWN = multiprocessing.get_context("spawn")  # no fork of a server's threads and sockets


class Sealer:
    """A child process running `ledger.seal`; writers never wait for it."""

    def __init__(self, warehouse_url: str, settings: Settings) -> None:
        self.url, self.keys_dir = warehouse_url, settings.keys_dir
        load_signing_key(self.keys_dir)  # created here, once, not raced by child processes
        self._stop = _SPAWN.Event()
        self._process = _SPAWN.Process(
            target=_run, args=(self.url, self.keys_dir, settings.audit_seal_seconds, self._stop),
            name="audit-sealer", daemon=True)

    def start(self) -> None:
        self._process.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._process.join(timeout)
        if self._process.is_alive():  # stuck on the database: its transaction rolls back
            self._process.terminate()
            self._process.join()
        self.seal_once()  # what was written up to shutdown is sealed too

    def seal_once(self) -> int:
        return _seal_once(self.url, self.keys_dir)


def _run(url: str, keys_dir: Path, interval: float, stop: Event) -> None:
    # Sealing can wait a moment; requests cannot. At a lower priority its bursts of hashing
    # run in the gaps between requests rather than stretching their tail latency.
    os.nice(NICENESS)
    parent, conn, passes, leader = multiprocessing.parent_process(), None, 0, False
    key = load_signing_key(keys_dir)
    while not stop.wait(interval) and parent.is_alive():  # a killed server leaves no orphan
        try:
            if conn is None or conn.closed:  # a new session holds no lock: elect again
                conn, leader = _connect(url), False
            # Taken once and kept while the session lives (a second take would stack).
            leader = leader or bool(conn.execute(ELECTION).fetchone()[0])
            if not leader:
                continue  # another process seals this warehouse; stand by
            passes += 1
            seal(conn, key, window=LATE_COMMIT_WINDOW if passes % WIDE_EVERY == 0
                 else ROUTINE_WINDOW)
        except psycopg.Error:  # the next pass retries; nothing is lost, only delayed
            log.exception("audit sealing failed; retrying in %.1f s", interval)
            conn = _closed(conn)


def _connect(url: str) -> psycopg.Connection:
    # Autocommit: the election's statement must not leave a transaction open around the
    # seals. Named, so an operator sees the sealers in pg_stat_activity.
    return psycopg.connect(url, application_name="hub audit sealer", autocommit=True)


def _closed(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        conn.close()


def _seal_once(url: str, keys_dir: Path) -> int:
    with psycopg.connect(url) as conn:
        return seal(conn, load_signing_key(keys_dir))
