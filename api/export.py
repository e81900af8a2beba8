"""Streamed exports: a dataset's rows as NDJSON or CSV, however many, without holding them.

A server-side cursor fetches a few thousand rows at a time; each chunk is masked and
rendered as it goes out. The export is audited twice: before the first byte leaves (what
was asked, by whom, under which grant), and at the end (rows and bytes sent, and whether
the export ran to its end or stopped at a cap or an error).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import psycopg
from psycopg import sql

from access_policies.masking import mask_rows
from api.deps import AppState
from api.rows import Page, select_statement
from contracts import Contract

FETCH = 5000  # rows per round trip to the warehouse


@dataclass
class Sent:
    rows: int = 0
    bytes: int = 0
    outcome: str = "complete"  # complete | row_cap | byte_cap | error: <message>


def stream(state: AppState, contract: Contract, page: Page, masks: list[str | None],
           fmt: str, relation: str | None, done: Callable[[Sent], None]) -> Iterator[bytes]:
    """Yield the export's bytes; call `done` with what was sent, whatever happened."""
    sent = Sent()
    statement, params = select_statement(contract, page, relation)
    try:
        with state.pool.connection() as conn, conn.transaction():
            yield from _chunks(conn, sql.SQL("{} limit %s").format(statement),
                               [*params, page.limit], page.query.select, masks, fmt, state,
                               sent)
    except psycopg.Error as exc:  # headers are gone: the audit record carries the reason
        sent.outcome = f"error: {str(exc).splitlines()[0]}"
    finally:
        done(sent)


def _chunks(conn: psycopg.Connection, statement: sql.Composed, params: list, names: list[str],
            masks: list[str | None], fmt: str, state: AppState, sent: Sent) -> Iterator[bytes]:
    with conn.cursor(name="export") as cursor:  # a server-side cursor: memory stays flat
        cursor.execute(statement, params)
        if fmt == "csv":
            yield _count(sent, _csv([names]))
        while rows := cursor.fetchmany(FETCH):
            masked = mask_rows(rows, masks, state.pseudonym_key)
            chunk = _ndjson(names, masked) if fmt == "ndjson" else _csv(masked)
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


def _ndjson(names: list[str], rows: list[tuple]) -> bytes:
    return b"".join(orjson.dumps(dict(zip(names, row, strict=True)),
                                 option=orjson.OPT_APPEND_NEWLINE) for row in rows)


def _csv(rows: list) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue().encode()
