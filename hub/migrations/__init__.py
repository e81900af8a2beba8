"""The warehouse's schema: numbered SQL files in this folder, applied in order and recorded.

`NNNN_name.sql` files run in version order inside bootstrap's transaction, under its advisory
lock: concurrent first starts apply each file once, and a file that fails leaves nothing half
done. hub.schema_migrations records every file applied (version, name, checksum, applied_at).
An applied file never runs again, so one edited since it was applied is refused: the warehouse
would no longer be what the files say. A change to the schema is a new file numbered after the
last one; a released file is never edited.

A warehouse from before this folder (made by hub/schema.sql, which ran on every start) has no
hub.schema_migrations. It is adopted: the baseline files, 0001 and 0002, are schema.sql's last
state with `if not exists` and `or replace` throughout, so running them there keeps every table
and row and adds only what an older schema.sql lacked; later files run as anywhere else.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

FOLDER = Path(__file__).parent
FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

RECORD = """
create schema if not exists hub;
create table if not exists hub.schema_migrations (
    version     integer primary key,
    name        text not null,
    checksum    text not null,  -- sha256 of the file's bytes as applied
    applied_at  timestamptz not null default now()
)"""

# Any table of the old layout: without hub.schema_migrations, schema.sql made this warehouse.
BEFORE_MIGRATIONS = """
select to_regclass('hub.schema_migrations') is null
   and exists (select from pg_tables where schemaname in ('hub', 'audit'))"""


class MigrationError(Exception):
    """The warehouse's recorded migrations disagree with the files; the message says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name's words: 0002_columns_added_in_place.sql -> columns_added_in_place
    path: Path
    text: str
    checksum: str


@dataclass(frozen=True)
class Outcome:
    adopted: bool  # the warehouse was made by schema.sql, before migrations were recorded
    applied: tuple[Migration, ...]  # the files run now, in order


def discover(folder: Path = FOLDER) -> list[Migration]:
    """The migration files in version order; a misnamed or doubly numbered one is refused."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path}: a migration is named NNNN_words.sql (four digits, "
                                 "then lowercase words joined by _): rename it")
        version, data = int(match[1]), path.read_bytes()
        if version in found:
            raise MigrationError(f"{found[version].path.name} and {path.name} are both version "
                                 f"{version}: give {path.name} the next free number")
        found[version] = Migration(version, match[2], path, data.decode(),
                                   hashlib.sha256(data).hexdigest())
    return [found[v] for v in sorted(found)]


def migrate(conn: psycopg.Connection, folder: Path = FOLDER) -> Outcome:
    """Apply the files not yet recorded, in order, in the caller's transaction."""
    migrations = discover(folder)
    [adopted] = conn.execute(BEFORE_MIGRATIONS).fetchone()
    conn.execute(RECORD)
    recorded = {version: (name, checksum) for version, name, checksum in conn.execute(
        "select version, name, checksum from hub.schema_migrations")}
    pending = _pending(migrations, recorded, folder)
    for migration in pending:
        conn.execute(migration.text)
        conn.execute("insert into hub.schema_migrations (version, name, checksum)"
                     " values (%s, %s, %s)",
                     [migration.version, migration.name, migration.checksum])
    return Outcome(adopted=adopted, applied=tuple(pending))


def _pending(migrations: list[Migration], recorded: dict[int, tuple[str, str]],
             folder: Path) -> list[Migration]:
    """The files still to run, once the record agrees with the files it names."""
    files = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = files.get(version)
        if migration is None:
            raise MigrationError(
                f"this warehouse has migration {version:04d}_{name}.sql applied, but this hub "
                f"has no such file in {folder}: run a hub at least as new as the one that "
                "applied it")
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.path} changed after it was applied to this warehouse: restore it "
                f"as applied (git checkout -- {migration.path}) and put the change in a new "
                f"migration numbered after {max(files):04d}")
    pending = [m for m in migrations if m.version not in recorded]
    last = max(recorded, default=0)
    if pending and pending[0].version < last:
        raise MigrationError(
            f"{pending[0].path.name} is not applied but {last:04d}_{recorded[last][0]}.sql, "
            f"numbered after it, is: renumber it after {max(files):04d} so it runs last")
    return pending
