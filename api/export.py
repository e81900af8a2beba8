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
from api.errors import ApiError
from api.replicas import Read
from api.rows import Page, csv_lines, ndjson, select_statement
from contracts import Contract

FETCH = 5000  # rows per round trip to the warehouse


@dataclass
class Sent:
    rows: int = 0
    bytes: int = 0
    # complete | row_cap | byte_cap (cut after the last whole row within the cap) | error: ...
    outcome: str = "complete"
    read: Read | None = None  # the connection the rows came from (a standby or the primary)


async def stream(state: AppState, contract: Contract, page: Page, fmt: str,
                 announced: int,
                 done: Callable[[Sent], Awaitable[None]]) -> AsyncIterator[bytes]:
    """Yield the export's bytes; call `done` with what was sent, whatever happened.
    `announced`: the version the export's first audit record names; the rows come from a
    standby holding it (or a newer one), else from the primary (api/replicas.py)."""
    sent = Sent()
    statement, params = select_statement(contract, page)
    try:
        async with state.reads.reading(contract.dataset_id, announced=announced) as read, \
                read.conn.transaction():
            sent.read = read
            async for chunk in _chunks(read.conn, statement, [*params, page.limit],
                                       page.query.select, page.python_masks, fmt, state,
                                       sent):
                yield chunk
    except psycopg.Error as exc:  # headers are gone: the audit record carries the reason
        sent.outcome = f"error: {str(exc).splitlines()[0]}"
    except ApiError as exc:  # a standby failed mid-export
        sent.outcome = f"error: {exc.description}"
    finally:
        await done(sent)


async def _chunks(conn: psycopg.AsyncConnection, statement: bytes, params: list,
                  names: list[str], masks: list[str | None], fmt: str, state: AppState,
                  sent: Sent) -> AsyncIterator[bytes]:
    cap = state.settings.max_export_bytes
    async with conn.cursor(name="export") as cursor:  # server-side: memory stays flat
        await cursor.execute(statement, params)
        if fmt == "csv":
            header = csv_lines([names])
            if len(header) > cap:
                sent.outcome = "byte_cap"
                return
            yield _count(sent, header)
        while rows := await cursor.fetchmany(FETCH):
            records = as_records(names, rows, masks, state.pseudonym_key)
            chunk = _render(records, fmt)
            if sent.bytes + len(chunk) > cap:
                # Cut after the last whole row that fits: a client never gets half a line.
                sent.outcome = "byte_cap"
                fitting, chunk = _fitting(records, fmt, cap - sent.bytes)
                if fitting:
                    sent.rows += fitting
                    yield _count(sent, chunk)
                return
            sent.rows += len(rows)
            yield _count(sent, chunk)
    if sent.rows >= state.settings.max_export_rows:
        sent.outcome = "row_cap"


def _render(records: list[dict], fmt: str) -> bytes:
    return ndjson(records) if fmt == "ndjson" else csv_lines(r.values() for r in records)


def _fitting(records: list[dict], fmt: str, room: int) -> tuple[int, bytes]:
    """How many of `records`, from the first, fit in `room` bytes, and their bytes. Only
    the chunk that crosses the cap is rendered row by row."""
    taken: list[bytes] = []
    used = 0
    for record in records:
        line = _render([record], fmt)
        if used + len(line) > room:
            break
        taken.append(line)
        used += len(line)
    return len(taken), b"".join(taken)


def _count(sent: Sent, chunk: bytes) -> bytes:
    sent.bytes += len(chunk)
    return chunk
