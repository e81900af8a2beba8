"""Stopping like a service: SIGTERM (systemd's stop, `timeout`, `docker stop`) and SIGINT
(Ctrl+C) end every `hub` command the same way, whether sent to the process or to its whole
group: it unwinds, its cleanups run (so the embedded warehouse is let go, hub/warehouse.py),
and it prints one line instead of a traceback.

Without this, SIGTERM's default action killed the process on the spot: no `atexit`, so the
embedded PostgreSQL it had started was never stopped, and a `KeyboardInterrupt` from Ctrl+C
surfaced as a traceback wherever it happened to land.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):  # noqa: N818 (a stop, like KeyboardInterrupt, not an error)
    """A stop signal arrived. A BaseException, as KeyboardInterrupt is: a library's
    `except Exception` (a flow engine's, a retry loop's) must not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Inside: SIGTERM and SIGINT raise Stopped in the main thread. The previous handlers
    come back afterwards (main() is also called inside test processes)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the caller's stay in force
        return
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def stop_signals_tell(server: object) -> Iterator[list[str]]:
    """Inside: a stop signal asks the uvicorn `server` to shut down gracefully and is noted
    (its name in the yielded list). uvicorn sets its own handlers only once it is running
    and, after its shutdown, sends itself the signal again to the handler it found: this
    one, which then ends nothing twice. A signal before uvicorn runs still stops it."""
    with stop_signals_call(lambda signum: server.handle_exit(signum, None)) as noted:  # type: ignore[attr-defined]
        yield noted


@contextmanager
def stop_signals_call(ask_to_stop: Callable[[int], None]) -> Iterator[list[str]]:
    """Inside: each stop signal calls `ask_to_stop(signum)` (which must only schedule: it
    runs in the signal handler) and is noted, its name in the yielded list."""
    noted: list[str] = []

    def tell(signum: int, frame: FrameType | None) -> None:
        noted.append(signal.Signals(signum).name)
        ask_to_stop(signum)

    previous = {s: signal.signal(s, tell) for s in STOP_SIGNALS}
    try:
        yield noted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
