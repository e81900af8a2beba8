"""Land source batches in the warehouse: COPY into raw_<department>, exactly once.

Each batch is one transaction: the rows, their load record and the advanced cursor are
committed together, so a crash at any point leaves either the whole batch or none of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import sql

from contracts import Contract
from contracts.targets import to_raw_ddl
from flows.sources.base import Batch, Cursor
from hub.migrations.raw_tables import upgrade_raw_table


@dataclass(frozen=True)
class LoadResult:
    batches: int
    rows: int


def ensure_raw_table(conn: psycopg.Connection, contract: Contract) -> None:
    """The contract's raw landing table: created, or upgraded if it is from before load ids."""
    conn.execute(to_raw_ddl(contract))
    upgrade_raw_table(conn, contract)


def hold_dataset(conn: psycopg.Connection, dataset: str) -> None:
    """One ingest of a dataset at a time, on any machine: a run marked crashed while it was
    only slow, a schedule and its rerun, or `hub run` beside a worker would otherwise read
    the same position and load the same rows twice. The lock is the session's: the next
    ingest waits, then starts after the last batch this one committed."""
    # A holder that vanished (its machine off, no TCP reset) must not hold the lock for the
    # kernel's two idle hours: the server probes its silent peer after 10 s and drops it
    # after three unanswered probes (ignored on a Unix socket, where death is seen at once).
    for name, value in (("idle", 10), ("interval", 5), ("count", 3)):
        conn.execute(f"set tcp_keepalives_{name} = {value}")
    conn.execute("select pg_advisory_lock(hashtext('ingest ' || %s))", [dataset])


def read_cursor(conn: psycopg.Connection, dataset: str) -> Cursor | None:
    row = conn.execute("select cursor from hub.ingest_cursors where dataset = %s",
                       [dataset]).fetchone()
    return Cursor.from_json(row[0]) if row else None


def load_batch(conn: psycopg.Connection, contract: Contract, batch: Batch, source: str,
               delivery_id: uuid.UUID | None = None) -> int:
    """COPY one batch and advance its position, in the caller's open transaction."""
    batch_id = uuid.uuid4()
    [load_id] = conn.execute("select nextval(pg_get_serial_sequence('hub.load_batches',"
                             " 'load_id'))").fetchone()
    copy_sql = sql.SQL("copy {}.{} ({}, _load_id) from stdin").format(
        sql.Identifier(contract.raw_schema), sql.Identifier(contract.entity),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in contract.columns))
    # COPY text escapes a newline in a value, so each newline byte ends a row: one replace
    # per chunk gives every row its load id, 13 ms per million rows. A column default read
    # from a setting cost the warehouse 130 ms.
    row_end = f"\t{load_id}\n".encode()
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for chunk in batch.copy_text or ():  # COPY text from a PostgreSQL source, as it comes
            copy.write(chunk.replace(b"\n", row_end))
        for row in batch.rows:
            copy.write_row([*map(_text, row), load_id])
    count = batch.copy_rows if batch.copy_text is not None else len(batch.rows)
    conn.execute("insert into hub.load_batches (batch_id, load_id, dataset, source, delivery_id,"
                 " rows) values (%s, %s, %s, %s, %s, %s)",
                 [batch_id, load_id, contract.dataset_id, source, delivery_id or batch_id,
                  count])
    _record_position(conn, contract.dataset_id, batch, batch_id)
    return count


def _record_position(conn: psycopg.Connection, dataset: str, batch: Batch,
                     batch_id: uuid.UUID) -> None:
    """The cursor, the file's manifest entry and any rejects, with the batch's rows."""
    if batch.cursor is not None:
        conn.execute("insert into hub.ingest_cursors (dataset, cursor) values (%s, %s) "
                     "on conflict (dataset) do update set cursor = excluded.cursor,"
                     " updated_at = now()",
                     [dataset, psycopg.types.json.Jsonb(batch.cursor.to_json())])
    if batch.file is not None:
        _record_file(conn, dataset, batch.file)
    for payload, reason in batch.rejects:
        conn.execute("insert into hub.rejected_records (dataset, batch_id, payload, reason)"
                     " values (%s, %s, %s, %s)", [dataset, batch_id, payload, reason])


def read_manifest(conn: psycopg.Connection, dataset: str) -> dict[str, dict]:
    found = conn.execute("select path, sha256, rows_done, complete from hub.ingest_files"
                         " where dataset = %s", [dataset]).fetchall()
    return {p: {"sha256": h, "rows_done": n, "complete": c} for p, h, n, c in found}


def _record_file(conn: psycopg.Connection, dataset: str, entry: dict) -> None:
    conn.execute(
        "insert into hub.ingest_files (dataset, path, sha256, bytes, rows_done, complete)"
        " values (%s, %s, %s, %s, %s, %s) on conflict (dataset, path) do update set"
        " rows_done = excluded.rows_done, complete = excluded.complete, loaded_at = now()",
        [dataset, entry["path"], entry["sha256"], entry["bytes"], entry["rows_done"],
         entry["complete"]])


def _text(value: object) -> str | None:
    # Raw landing keeps the source's values as text; staging casts them to the contract.
    if value is None:
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)
