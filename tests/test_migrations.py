"""Migrations: numbered files applied once, in order, recorded; warehouses made by the old
schema.sql adopted; a record that disagrees with the files refused with what to do."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from contracts import load_all
from hub.bootstrap import bootstrap
from hub.migrations import MigrationError, discover, migrate
from hub.migrations.raw_tables import upgrade_raw_table
from hub.warehouse import drop_database, ensure_database
from tests.conftest import REPO, own_warehouse
from tests.test_cli import hub as hub_command

FOLDER = REPO / "hub" / "migrations"
FILES = sorted(FOLDER.glob("*.sql"))
OLD_SCHEMA = Path(__file__).parent / "data" / "schema_before_migrations.sql"
# What schema.sql added in place over time: a warehouse older than that lacks these columns.
OLDER_STILL = ["alter table hub.load_batches drop column load_id, drop column delivery_id",
               "alter table hub.dataset_versions drop column quarantined"]
REQUESTS = load_all(REPO / "contracts")["public_works.service_requests"]


@contextmanager
def blank_database(server_url: str) -> Iterator[str]:
    """An empty database of this test's own: no schema at all yet."""
    name = f"hub_test_migrate_{uuid.uuid4().hex[:8]}"
    try:
        yield ensure_database(server_url, name)
    finally:
        drop_database(server_url, name)


@pytest.fixture
def warehouse(server_url) -> Iterator[str]:
    with own_warehouse(server_url, "hub_test_migrate") as url:
        yield url


def recorded(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select version, name, checksum, applied_at"
                            " from hub.schema_migrations order by version").fetchall()


def layout(url: str, positions: bool = True) -> dict[str, set]:
    """Every column (with its type, default and place), index and trigger outside pg_*."""
    position = "ordinal_position" if positions else "0"
    with psycopg.connect(url) as conn:
        return {"columns": set(conn.execute(
                    "select table_schema, table_name, column_name, data_type, is_nullable,"
                    f" column_default, is_identity, {position} from information_schema.columns"
                    " where table_schema not in ('pg_catalog', 'information_schema')")),
                "indexes": set(conn.execute(
                    "select schemaname, indexname, indexdef from pg_indexes"
                    " where schemaname not like 'pg_%' and schemaname <> 'information_schema'")),
                "triggers": set(conn.execute(
                    "select tgrelid::regclass::text, tgname, tgtype, tgfoid::regprocedure::text"
                    " from pg_trigger where not tgisinternal"))}


def test_a_new_warehouse_records_every_migration_in_order(server_url, caplog):
    with blank_database(server_url) as url, caplog.at_level(logging.WARNING):
        bootstrap(url)
        rows = recorded(url)
    expected = [(int(p.name[:4]), p.stem[5:], hashlib.sha256(p.read_bytes()).hexdigest())
                for p in FILES]
    assert [row[:3] for row in rows] == expected
    assert [p.name for p in FILES][:2] == ["0001_initial.sql", "0002_columns_added_in_place.sql"]
    assert "adopted" not in caplog.text  # nothing was there to adopt


def test_a_second_bootstrap_applies_nothing(warehouse):
    function = ("select xmin::text from pg_proc"
                " where oid = 'audit.refuse_change'::regproc")  # 0001 replaces it when run
    before = recorded(warehouse)
    with psycopg.connect(warehouse) as conn:
        [replaced] = conn.execute(function).fetchone()
    bootstrap(warehouse)
    with psycopg.connect(warehouse) as conn:
        assert conn.execute(function).fetchone() == (replaced,)
        outcome = migrate(conn)
    assert recorded(warehouse) == before
    assert (outcome.adopted, outcome.applied) == (False, ())


@pytest.mark.parametrize("older", [[], OLDER_STILL], ids=["schema.sql", "older schema.sql"])
def test_a_warehouse_made_by_schema_sql_is_adopted_and_ends_like_a_new_one(
        server_url, warehouse, caplog, older):
    with blank_database(server_url) as url:
        with psycopg.connect(url) as conn:
            conn.execute(OLD_SCHEMA.read_text())
            for statement in older:
                conn.execute(statement)
            conn.execute("insert into hub.load_batches (batch_id, dataset, source, rows)"
                         " values (%s, 'transport.bike_counts', 'rest:old', 7)", [uuid.uuid4()])
            conn.execute("insert into audit.events (kind) values ('old.event')")
        with caplog.at_level(logging.WARNING):
            bootstrap(url)
        assert "adopted a warehouse made before migrations were recorded: 0001_initial.sql, "\
               "0002_columns_added_in_place.sql" in caplog.text
        assert [row[:3] for row in recorded(url)] == [row[:3] for row in recorded(warehouse)]
        # Columns added in place land last, so only schema.sql's own warehouse keeps places.
        assert layout(url, positions=not older) == layout(warehouse, positions=not older)
        with psycopg.connect(url) as conn:  # what was there is still there
            assert conn.execute("select source, rows, load_id from hub.load_batches"
                                ).fetchall() == [("rest:old", 7, 1)]
            assert conn.execute("select kind from audit.events").fetchall() == [("old.event",)]


def test_concurrent_first_starts_apply_each_migration_once(server_url):
    with blank_database(server_url) as url:
        errors: list[BaseException] = []

        def start() -> None:
            try:
                bootstrap(url)
            except BaseException as exc:  # kept for the assertion below, not swallowed
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [row[0] for row in recorded(url)] == [int(p.name[:4]) for p in FILES]


def copy_of_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in FILES:
        shutil.copy(path, folder)
    return folder


def test_an_edited_applied_migration_is_refused_naming_the_file(warehouse, tmp_path):
    folder = copy_of_migrations(tmp_path)
    edited = folder / "0002_columns_added_in_place.sql"
    edited.write_text(edited.read_text() + "alter table hub.runs add column note text;\n")
    with psycopg.connect(warehouse) as conn, pytest.raises(MigrationError) as refused:
        migrate(conn, folder)
    assert f"{edited} changed after it was applied to this warehouse" in str(refused.value)
    assert f"git checkout -- {edited}" in str(refused.value)
    assert f"new migration numbered after {FILES[-1].name[:4]}" in str(refused.value)


def test_bootstrap_refuses_a_changed_file_and_changes_nothing(warehouse):
    with psycopg.connect(warehouse) as conn:
        conn.execute("update hub.schema_migrations set checksum = 'as-applied' where version = 1")
    before = recorded(warehouse)
    with pytest.raises(MigrationError, match=r"0001_initial\.sql changed after it was applied"):
        bootstrap(warehouse)
    assert recorded(warehouse) == before


def test_the_command_line_reports_a_changed_file_in_one_line(warehouse, tmp_path):
    with psycopg.connect(warehouse) as conn:
        conn.execute("update hub.schema_migrations set checksum = 'as-applied' where version = 1")
    result = hub_command("users", "list", env={"HUB_DATABASE_URL": warehouse,
                                               "HUB_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {FOLDER / '0001_initial.sql'} changed after it")
    assert "Traceback" not in result.stderr


def test_a_warehouse_newer_than_the_hub_is_refused(warehouse):
    with psycopg.connect(warehouse) as conn:
        conn.execute("insert into hub.schema_migrations (version, name, checksum)"
                     " values (9999, 'from_a_newer_hub', 'x')")
    with pytest.raises(MigrationError, match=r"this warehouse has migration "
                       r"9999_from_a_newer_hub\.sql applied, but this hub has no such file"):
        bootstrap(warehouse)


def test_later_migrations_run_once_in_order_and_one_numbered_before_them_is_refused(
        warehouse, tmp_path):
    folder = copy_of_migrations(tmp_path)
    n = discover(folder)[-1].version + 1  # after the hub's own migrations, however many
    notes, authors, late = f"{n:04d}_notes.sql", f"{n + 2:04d}_note_authors.sql", \
        f"{n + 1:04d}_merged_late.sql"
    (folder / notes).write_text("create table hub.notes (note text);\n")
    (folder / authors).write_text("alter table hub.notes add author text;\n")
    with psycopg.connect(warehouse) as conn:
        outcome = migrate(conn, folder)
    assert [m.path.name for m in outcome.applied] == [notes, authors]
    assert [row[:2] for row in recorded(warehouse)][-2:] == [(n, "notes"),
                                                             (n + 2, "note_authors")]
    (folder / late).write_text("alter table hub.notes add topic text;\n")
    with psycopg.connect(warehouse) as conn, pytest.raises(
            MigrationError, match=rf"{late[:-4]}\.sql is not applied but "
                                  rf"{authors[:-4]}\.sql, numbered after it, is: renumber "
                                  rf"it after {n + 2:04d}"):
        migrate(conn, folder)


@pytest.mark.parametrize("name, message", [
    ("add_notes.sql", "a migration is named NNNN_words.sql"),
    ("0002_notes.sql", "0002_columns_added_in_place.sql and 0002_notes.sql are both version 2:"
                       " give 0002_notes.sql the next free number"),
])
def test_misnamed_or_doubly_numbered_files_are_refused(tmp_path, name, message):
    folder = copy_of_migrations(tmp_path)
    (folder / name).write_text("create table hub.notes (note text);\n")
    with pytest.raises(MigrationError, match=message):
        discover(folder)


def test_a_raw_table_from_before_load_ids_is_upgraded_once_inside_a_transaction(warehouse):
    columns = ", ".join(f'"{c.name}" text' for c in REQUESTS.columns)
    with psycopg.connect(warehouse) as conn:  # one open transaction: the upgrade's savepoint
        conn.execute("create schema raw_public_works")
        conn.execute(f"create table raw_public_works.service_requests ({columns},"
                     " _batch_id uuid not null, _loaded_at timestamptz not null default now(),"
                     " _source text not null)")
        conn.execute("insert into raw_public_works.service_requests (sr_number, _batch_id,"
                     " _source) values ('old-1', %s, 'sql:old')", [uuid.uuid4()])
        assert upgrade_raw_table(conn, REQUESTS) is True
        assert upgrade_raw_table(conn, REQUESTS) is False  # nothing left to upgrade
        landed = conn.execute("select r.sr_number, b.source, b.rows from"
                              " raw_public_works.service_requests r join hub.load_batches b"
                              " on b.load_id = r._load_id").fetchall()
    assert landed == [("old-1", "sql:old", 1)]
