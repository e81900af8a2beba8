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
import signal
from multiprocessing.connection import Connection, wait
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ledger import LATE_COMMIT_WINDOW, load_signing_key, seal
from hub.settings import Settings

log = logging.getLogger(__name__)
# Late commits are looked for this far back on a routine pass (at 1,000 reads a second, ten
# seconds), and as far back as the ledger's own default on every WIDE_EVERY-th pass and at
# stop: a long transaction's records are sealed a little later, never missed.
ROUTINE_WINDOW = 10_000
WIDE_EVERY = 30
NICENESS = 10
STOP_SECONDS = 3.0  # how long `stop` waits for the child's last pass before ending it
# What a service manager (SIGTERM) or a terminal (SIGINT) sends to the whole process group.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
ELECTION = "select pg_try_advisory_lock(hashtext('civic-data-hub audit sealer leader'))"
_SPAWN = multiprocessing.get_context("spawn")  # no fork of a server's threads and sockets


class Sealer:
    """A child process running `ledger.seal`; writers never wait for it."""

    def __init__(self, warehouse_url: str, settings: Settings) -> None:
        self.url, self.keys_dir = warehouse_url, settings.keys_dir
        load_signing_key(self.keys_dir)  # created here, once, not raced by child processes
        # A pipe, not a multiprocessing.Event: setting an Event waits for its sleeper to
        # wake, and a sleeper killed by a signal to the whole group never does (`hub serve`
        # hung for good on SIGTERM). The child reads end-of-file when we close our end or die.
        self._stop_reader, self._stop_writer = _SPAWN.Pipe(duplex=False)
        self._process = _SPAWN.Process(
            target=_run, name="audit-sealer", daemon=True,
            args=(self.url, self.keys_dir, settings.audit_seal_seconds, self._stop_reader))

    def start(self) -> None:
        # The child starts with the stop signals blocked (the mask is inherited): one that
        # arrives while it is still importing waits for its handler instead of a traceback.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self._stop_reader.close()  # the child's copy is the only one left

    def stop(self, timeout: float = STOP_SECONDS) -> int:
        """End the child (after its last pass), then seal what was written up to now;
        return how many entries this last seal chained."""
        self._stop_writer.close()
        self._process.join(timeout)
        if self._process.is_alive():  # stuck on the database: its transaction rolls back
            self._process.kill()
            self._process.join()
        return self.seal_once()  # what was written up to shutdown is sealed too

    def seal_once(self) -> int:
        return _seal_once(self.url, self.keys_dir)


def _run(url: str, keys_dir: Path, interval: float, stop: Connection) -> None:
    # Sealing can wait a moment; requests cannot. At a lower priority its bursts of hashing
    # run in the gaps between requests rather than stretching their tail latency.
    os.nice(NICENESS)
    signalled = _wake_on_stop_signals()
    held: Held = (None, False)
    passes = 0
    key = load_signing_key(keys_dir)
    # Ends when told (end-of-file: the server stopped us or died, so no orphan is left) or
    # on SIGTERM/SIGINT, after the pass under way.
    while not wait([stop, signalled], interval):
        passes += 1
        held = _pass(held, url, key, LATE_COMMIT_WINDOW if passes % WIDE_EVERY == 0
                     else ROUTINE_WINDOW, interval)
    # The last batch, leader or not: `ledger.seal` takes its own lock per pass.
    _closed(_pass(held, url, key, LATE_COMMIT_WINDOW, interval, last=True)[0])


# The sealer's session and whether it leads (holds ELECTION's lock).
Held = tuple[psycopg.Connection | None, bool]


def _pass(held: Held, url: str, key: Ed25519PrivateKey, window: int, interval: float,
          last: bool = False) -> Held:
    conn, leader = held
    try:
        if conn is None or conn.closed:  # a new session holds no lock: elect again
            conn, leader = _connect(url), False
        # Taken once and kept while the session lives (a second take would stack).
        leader = leader or bool(conn.execute(ELECTION).fetchone()[0])
        if leader or last:  # else another process seals this warehouse: stand by
            seal(conn, key, window=window)
        return conn, leader
    except psycopg.Error as exc:  # the next pass retries; nothing is lost, only delayed
        log.warning("audit sealing failed (%s); retrying in %.1f s", exc, interval)
        return _closed(conn), False


def _connect(url: str) -> psycopg.Connection:
    # Autocommit: the election's statement must not leave a transaction open around the
    # seals. Named, so an operator sees the sealers in pg_stat_activity.
    return psycopg.connect(url, application_name="hub audit sealer", autocommit=True)


def _wake_on_stop_signals() -> int:
    """A descriptor that becomes readable when SIGTERM or SIGINT arrives (the handlers only
    note it: a pass is never cut short); the signals, blocked since start, are let in."""
    readable, writable = os.pipe()
    os.set_blocking(writable, False)
    signal.set_wakeup_fd(writable)
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return readable


def _closed(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        conn.close()


def _seal_once(url: str, keys_dir: Path) -> int:
    with psycopg.connect(url) as conn:
        return seal(conn, load_signing_key(keys_dir))
