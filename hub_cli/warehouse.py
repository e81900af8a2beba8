"""`hub warehouse status|stop`: the embedded warehouse (HUB_HOME/pg), seen and stopped by hand.

It stops by itself when the last hub process using it exits; these are for one left running
by a process that was killed outright, and for operators who want to know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub import embedded
from hub.settings import Settings, get_settings
from hub_cli.common import UsageError

app = typer.Typer(help="the embedded warehouse (HUB_HOME/pg)", no_args_is_help=True)


@app.command("status")
def status() -> int:
    """Whether the embedded warehouse runs, and which hub processes use it."""
    settings = get_settings()
    if settings.database_url is not None:
        print(EXTERNAL)
        return 0
    print(describe(embedded.state(_data_dir(settings))))
    return 0


@app.command("stop")
def stop(force: Annotated[bool, typer.Option(
        "--force", help="stop it even while hub processes use it (their queries fail)")]
        = False) -> int:
    """Stop the embedded warehouse (fast shutdown: open transactions roll back)."""
    settings = get_settings()
    if settings.database_url is not None:
        raise UsageError(f"{EXTERNAL}; stop that server with its own tools")
    found = embedded.state(_data_dir(settings))
    if found.postmaster is not None and found.users and not force:
        raise UsageError(f"the embedded warehouse in {found.data_dir} is in use by hub "
                         f"process(es) {_pids(found.users)}: stop them first (it then stops "
                         "by itself), or give --force")
    if not embedded.stop(found.data_dir):
        print(f"the embedded warehouse in {found.data_dir} is not running")
        return 0
    print(f"stopped the embedded warehouse in {found.data_dir}")
    return 0


def describe(found: embedded.EmbeddedState) -> str:
    where = f"embedded warehouse in {found.data_dir}"
    if found.postmaster is None:
        return f"{where}: not running (the next hub command starts it)"
    running = f"{where}: running (postgres pid {found.postmaster})"
    if not found.users:
        return (f"{running}, used by no hub process (one was killed before it could stop "
                "it): `hub warehouse stop` stops it")
    return f"{running}, used by hub process(es) {_pids(found.users)}; stops when they exit"


def _data_dir(settings: Settings) -> Path:
    return (settings.home / "pg").resolve()


EXTERNAL = ("HUB_DATABASE_URL is set: the warehouse is that server, which the hub neither "
            "starts nor stops")


def _pids(pids: list[int]) -> str:
    return ", ".join(str(pid) for pid in pids)
