"""Streamed exports: a dataset's rows as NDJSON or CSV, however many, without holding them.

A server-side cursor fetches a few thousand rows at a time; each chunk is masked and
rendered as it goes out. The export is audited twice: before the first byte leaves (what
was asked, by whom, under which grant), and at the end (rows and bytes sent, and whether
the export ran to its end or stopped at a cap or an error).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import psycopg

from access_policies.masking import as_records
from api.deps import AppState
from api.rows import Page, csv_lines, ndjson, select_statement
from contracts import Contract

FETCH = 5000  # rows per round trip to the warehouse


@dataclass
class Sent:
    rows: int = 0
    bytes: int = 0
    outcome: str = "complete"  # complete | row_cap | byte_cap | error: <message>


async def stream(state: AppState, contract: Contract, page: Page, fmt: str,
                 relation: str | None,
                 done: Callable[[Sent], Awaitable[None]]) -> AsyncIterator[bytes]:
    """Yield the export's bytes; call `done` with what was sent, whatever happened."""
    sent = Sent()
    statement, params = select_statement(contract, page, relation)
    try:
        async with state.apool.connection() as conn, conn.transaction():
            async for chunk in _chunks(conn, statement, [*params, page.limit],
                                       page.query.select, page.python_masks, fmt, state,
                                       sent):
                yield chunk
    except psycopg.Error as exc:  # headers are gone: the audit record carries the reason
        sent.outcome = f"error: {str(exc).splitlines()[0]}"
    finally:
        await done(sent)


async def _chunks(conn: psycopg.AsyncConnection, statement: bytes, params: list,
                  names: list[str], masks: list[str | None], fmt: str, state: AppState,
                  sent: Sent) -> AsyncIterator[bytes]:
    async with conn.cursor(name="export") as cursor:  # server-side: memory stays flat
        await cursor.execute(statement, params)
        if fmt == "csv":
            yield _count(sent, csv_lines([names]))
        while rows := await cursor.fetchmany(FETCH):
            records = as_records(names, rows, masks, state.pseudonym_key)
            chunk = (ndjson(records) if fmt == "ndjson"
                     else csv_lines(r.values() for r in records))
            if sent.bytes + len(chunk) > state.settings.max_export_bytes:
                sent.outcome = "byte_cap"
                return
            sent.rows += len(rows)
            yield _count(sent, chunk)
    if sent.rows >= state.settings.max_export_rows:
        sent.outcome = "row_cap"


def _count(sent: Sent, chunk: bytes) -> bytes:
    sent.bytes += len(chunk)
    return chunk
