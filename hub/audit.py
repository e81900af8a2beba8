"""Writing to the audit log: one `audit.events` row per recorded act.

`record` takes the caller's connection so that an act and its record commit in one
transaction: if the record cannot be written, the act (a read, a publish) does not happen.
Rows are only ever inserted; hub/ledger.py chains and signs them afterwards.

The API's reads have no effects to commit with, so they go through `GroupCommit`: one
statement and one commit for the records of all requests in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class AuditEvent:
    kind: str  # data.read, data.denied (and other *.denied), catalog.read, token.*, pipeline.*
    request_id: str | None = None
    decision: str | None = None  # allow | deny, for access decisions
    reason: str = ""
    status_code: int | None = None
    client_id: str | None = None
    role: str | None = None
    department: str | None = None
    purpose: str | None = None
    dataset: str | None = None
    dataset_version: int | None = None
    columns: list[str] = field(default_factory=list)
    unmasked_personal: list[str] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)
    rows_returned: int = 0
    grant_id: str | None = None
    source_address: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


COLUMNS = ("kind", "request_id", "decision", "reason", "status_code", "client_id", "role",
           "department", "purpose", "dataset", "dataset_version", "columns", "unmasked_personal",
           "filters", "rows_returned", "grant_id", "source_address", "detail")
# Events in one statement, one or many: orjson writes them as one JSON array (AuditEvent is
# a dataclass, so no per-value adaptation) and PostgreSQL reads it back as rows. For a
# group-committed batch it is one round trip where a COPY took four, and a fifth of the
# Python time per event (bench/api.py).
INSERT = (f"insert into audit.events ({', '.join(COLUMNS)})"
          f" select {', '.join(COLUMNS)}"
          " from json_populate_recordset(null::audit.events, %s)")


def record(conn: psycopg.Connection, event: AuditEvent) -> None:
    conn.execute(INSERT, [Json([event], dumps=_json)])


def _json(value: Any) -> bytes:
    # orjson: every read writes a record, and it is several times faster than json.dumps.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def record_file_changes(conn: psycopg.Connection, kind: str, paths: list[Path],
                        root: Path) -> int:
    """Record each contract or policy file whose content differs from the last recorded
    version (kind `contract.changed` / `policy.changed`); return how many changed."""
    changed = 0
    for path in paths:
        name = str(path.relative_to(root))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        row = conn.execute("select detail->>'sha256' from audit.events where kind = %s"
                           " and detail->>'file' = %s order by event_id desc limit 1",
                           [kind, name]).fetchone()
        if row is None or row[0] != digest:
            verb = "added" if row is None else "changed"
            detail = {"file": name, "sha256": digest, "previous_sha256": row[0] if row else None}
            record(conn, AuditEvent(kind=kind, reason=f"{name} {verb}", detail=detail))
            changed += 1
    return changed


class GroupCommit:
    """Writes audit records in batches: the records of the requests in flight go in one
    statement and one commit, instead of an INSERT and a commit each (bench/api.py).

    `write` returns once its record is committed, so a request that awaits it before
    building its response still sends no data without its record. There is no timer:
    records that arrive while a batch is being written form the next one, so batches grow
    with load and a lone record is written at once. The pool is the writer's own, so a
    request holding another connection never waits for one the writer needs."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._queue: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Records waiting for the batch being written to end (a metric: api/metrics.py)."""
        return len(self._queue)

    async def write(self, event: AuditEvent) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((event, done))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._commit(batch)
        finally:
            self._drainer = None

    async def _commit(self, batch: list[tuple[AuditEvent, asyncio.Future[None]]]) -> None:
        try:
            await self._write([event for event, _ in batch])
        except Exception as exc:  # not swallowed: handed to the requests waiting on it
            if len(batch) > 1:  # one bad record must not fail the others: one by one
                for item in batch:
                    await self._commit([item])
                return
            _settle(batch, exc)
        else:
            _settle(batch, None)

    async def _write(self, events: list[AuditEvent]) -> None:
        async with self.pool.connection() as conn:  # autocommit: the statement is atomic
            await conn.execute(INSERT, [Json(events, dumps=_json)])


def _settle(batch: list[tuple[AuditEvent, asyncio.Future[None]]],
            error: Exception | None) -> None:
    for _, done in batch:
        if done.done():  # the request went away (client disconnected): nothing to tell
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
