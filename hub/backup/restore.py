"""`hub backup restore` and `hub backup verify`: pg_restore fed from the decrypting stream.

Every stored object's checksum is checked against the manifest before anything is
restored; each chunk is authenticated as it is decrypted; the restore runs in one
transaction, so a backup found altered half way leaves the warehouse as it was.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hub.backup import BackupError
from hub.backup.create import libpq_args
from hub.backup.manifest import TABLES
from hub.backup.objects import HOME_PARTS, check_stored, plain_chunks, read_manifest
from hub.backup.pgtools import error_line, find_tool, server_major
from hub.backup.store import DUMP, HOME, Store


@dataclass(frozen=True)
class Source:
    """One backup: where it is, its name and the key that opens it."""

    store: Store
    name: str
    key: bytes

    def manifest(self) -> dict[str, Any]:
        found = read_manifest(self.store, self.name, self.key)
        for obj in (DUMP, HOME):
            check_stored(self.store, self.name, obj, found, self.key)
        return found


def load(source: Source, manifest: dict[str, Any], url: str) -> None:
    """pg_restore the dump into the (empty) database at `url`, in one transaction."""
    tool = find_tool("pg_restore", server_major(url))
    target, env = libpq_args(url)
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [str(tool), "--single-transaction", "--no-owner", "--dbname", target],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        try:
            for block in plain_chunks(source.store, source.name, DUMP, source.key, manifest):
                process.stdin.write(block)
        except BaseException:
            process.kill()  # its transaction rolls back: nothing half-restored stays
            process.wait()
            raise
        process.stdin.close()
        if process.wait() != 0:
            errors.seek(0)
            raise BackupError(f"pg_restore failed: {error_line(errors.read())}")



def warehouse_tables(url: str) -> int:
    with psycopg.connect(url) as conn:
        return len(conn.execute(TABLES).fetchall())


def home_files(home: Path) -> int:
    return sum(1 for part in HOME_PARTS if (home / part).is_dir()
               for p in (home / part).rglob("*") if p.is_file())


def refuse_non_empty(url: str, home: Path) -> None:
    tables, files = warehouse_tables(url), home_files(home)
    if tables or files:
        raise BackupError(
            f"refusing to restore over a non-empty warehouse or HUB_HOME ({tables} tables, "
            f"{files} key or archive files under {home}): restore into an empty one, or pass "
            "--force to replace them")


def clear(url: str, home: Path) -> None:
    """--force: every schema of the warehouse and the keys and archives under HUB_HOME go."""
    import shutil

    with psycopg.connect(url) as conn:
        schemas = [s for (s,) in conn.execute(
            "select nspname from pg_namespace where nspname <> 'information_schema'"
            " and nspname not like 'pg\\_%'").fetchall()]
        for schema in schemas:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        conn.execute("create schema public")
    for part in HOME_PARTS:
        shutil.rmtree(home / part, ignore_errors=True)


def ensure_role(url: str, role: str) -> None:
    """The application role (cluster-wide, so not in the dump) must exist for its grants."""
    from hub.bootstrap import ensure_role as bootstrap_role

    with psycopg.connect(url) as conn:
        bootstrap_role(conn, role)
