"""The embedded warehouse's lifetime: it runs while a hub process uses it, and stops when the
last one exits (docs/production.md#the-embedded-warehouse).

`pgserver` counts its users in `HUB_HOME/pg/.handle_pids.json` and stops the server in the
`atexit` of the last. A process killed outright (SIGKILL, or SIGTERM before `hub` handled
it) never took its id off that list, and from then on no later process was ever the last:
thirteen servers were found running after a morning's tries. Ids of processes that are gone
are now taken off before each start, and `hub warehouse status|stop` shows and stops a
server that nothing uses any more.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

USERS_FILE = ".handle_pids.json"  # pgserver's list of the processes holding the server


@dataclass(frozen=True)
class EmbeddedState:
    data_dir: Path
    postmaster: int | None  # the server's process id while it runs
    users: list[int]  # hub processes using it, still alive


def state(data_dir: Path) -> EmbeddedState:
    """What runs in `data_dir` (HUB_HOME/pg), without starting anything."""
    return EmbeddedState(data_dir, postmaster_pid(data_dir),
                         [pid for pid in _listed(data_dir) if alive(pid)])


def postmaster_pid(data_dir: Path) -> int | None:
    """The running server's pid: pgserver's layout (pid file in `data_dir`) or pg_ctl's
    (in `data_dir/data`); None when none runs."""
    for pid_file in (data_dir / "postmaster.pid", data_dir / "data" / "postmaster.pid"):
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            continue
        if alive(pid):
            return pid
    return None


def forget_dead_users(data_dir: Path) -> None:
    """Take processes that have ended off the user list, under pgserver's own lock, so the
    next process to exit last stops the server again."""
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:  # the lock pgserver holds while it edits the list
        listed = _listed(data_dir)
        living = [pid for pid in listed if alive(pid)]
        if living != listed:
            (data_dir / USERS_FILE).write_text(json.dumps(living))


def stop(data_dir: Path, seconds: float = 30.0) -> bool:
    """Stop the server with PostgreSQL's fast shutdown (SIGINT to the postmaster: sessions
    are ended, their transactions roll back, the data is checkpointed). False if it was
    not running."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the embedded warehouse (pid {pid}) did not stop in "
                               f"{seconds:.0f} s; see {data_dir / 'log'}")
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to collect it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return _signalable(pid)  # no /proc (macOS): ask the kernel
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _listed(data_dir: Path) -> list[int]:
    try:
        return [int(pid) for pid in json.loads((data_dir / USERS_FILE).read_text())]
    except (OSError, ValueError):
        return []
