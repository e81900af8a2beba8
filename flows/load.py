"""Land source batches in the warehouse: COPY into raw_<department>, exactly once.

Each batch is one transaction: the rows, their load record and the advanced cursor are
committed together, so a crash at any point leaves either the whole batch or none of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from contracts import Contract
from contracts.targets import to_raw_ddl
from flows.sources.sql import Batch, Cursor


@dataclass(frozen=True)
class LoadResult:
    batches: int
    rows: int


def ensure_raw_table(conn: psycopg.Connection, contract: Contract) -> None:
    conn.execute(to_raw_ddl(contract))


def read_cursor(conn: psycopg.Connection, dataset: str) -> Cursor | None:
    row = conn.execute("select cursor from hub.ingest_cursors where dataset = %s",
                       [dataset]).fetchone()
    return Cursor.from_json(row[0]) if row else None


def load_batch(conn: psycopg.Connection, contract: Contract, batch: Batch, source: str) -> int:
    """COPY one batch and advance the cursor, in the caller's open transaction."""
    batch_id, loaded_at = uuid.uuid4(), datetime.now(UTC)
    names = [c.name for c in contract.columns] + ["_batch_id", "_loaded_at", "_source"]
    copy_sql = sql.SQL("copy {}.{} ({}) from stdin").format(
        sql.Identifier(contract.raw_schema), sql.Identifier(contract.entity),
        sql.SQL(", ").join(map(sql.Identifier, names)))
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for row in batch.rows:
            copy.write_row([_text(v) for v in row] + [batch_id, loaded_at, source])
    conn.execute("insert into hub.load_batches (batch_id, dataset, source, rows, loaded_at) "
                 "values (%s, %s, %s, %s, %s)",
                 [batch_id, contract.dataset_id, source, len(batch.rows), loaded_at])
    conn.execute("insert into hub.ingest_cursors (dataset, cursor) values (%s, %s) "
                 "on conflict (dataset) do update set cursor = excluded.cursor, updated_at = now()",
                 [contract.dataset_id, psycopg.types.json.Jsonb(batch.cursor.to_json())])
    return len(batch.rows)


def _text(value: object) -> str | None:
    # Raw landing keeps the source's values as text; staging casts them to the contract.
    if value is None:
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)
