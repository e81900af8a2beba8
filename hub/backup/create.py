"""`hub backup create`: one consistent, encrypted backup of the warehouse and HUB_HOME.

pg_dump runs in a snapshot exported by our own repeatable-read transaction, so the row
counts, published versions and ledger head in the manifest are those of the dump itself.
Its output streams through the cipher to the store: nothing is held in memory or on disk.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from hub.backup import BackupError
from hub.backup.manifest import facts
from hub.backup.objects import encrypted, pump, write_home, write_manifest
from hub.backup.pgtools import error_line, find_tool, server_major
from hub.backup.store import DUMP, HOME, Store, new_name

FORMAT = 1


def libpq_args(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment carrying it: a password on a
    command line is visible to every user of the machine (`ps`)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return parsed.set(password=None).render_as_string(hide_password=False), env


def create(url: str, home: Path, store: Store, key: bytes, version: str) -> str:
    """Make a backup at `store`; return its name."""
    name = new_name(datetime.now(UTC))
    try:
        _write(url, home, store, name, key, version)
    except BaseException:
        store.remove_if_there(name)  # a failed backup leaves nothing that looks like one
        raise
    return name


def _write(url: str, home: Path, store: Store, name: str, key: bytes, version: str) -> None:
    started = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("select pg_export_snapshot()").fetchone()[0]
        seen = facts(conn)
        dump = _dump(url, snapshot, store, name, key)
    home_written, home_files = write_home(store, name, home, key)
    manifest: dict[str, Any] = {
        "format": FORMAT, "hub_version": version, "name": name,
        "created_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
        "files": {DUMP: vars(dump), HOME: vars(home_written)}, "home_files": home_files,
        **seen}
    write_manifest(store, name, manifest, key)


def _dump(url: str, snapshot: str, store: Store, name: str, key: bytes):
    tool = find_tool("pg_dump", server_major(url))
    target, env = libpq_args(url)
    with tempfile.TemporaryFile() as errors, encrypted(store, name, DUMP, key) as writer:
        process = subprocess.Popen(
            [str(tool), "--format=custom", f"--snapshot={snapshot}", "--dbname", target],
            stdout=subprocess.PIPE, stderr=errors, env=env)
        pump(process, writer)
        if process.wait() != 0:
            errors.seek(0)
            raise BackupError(f"pg_dump failed: {error_line(errors.read())}")
    return writer.written

