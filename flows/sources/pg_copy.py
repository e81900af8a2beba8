"""PostgreSQL source, fast path: COPY out of the department's database, COPY into ours.

The same contract as `flows.sources.sql.read_batches` (rows after the cursor, ordered by
cursor and key, in batches, drift checked first), but rows stay in COPY's text format end
to end: they are never turned into Python objects, which is where the generic path spends
its time. Only the last row of each batch is decoded, for the cursor.
"""

from __future__ import annotations

import itertools
import select
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import pq, sql
from psycopg.abc import Buffer

from flows.sources.base import Batch, Cursor, check_drift, key_columns, pg_family, retyped

# Rows handed to the warehouse at a time. Each row waits in its own libpq buffer until its
# chunk is joined: at 200 rows the relay used 0.33 s of CPU per million rows, at 1,000 rows
# 0.56 s and at 4,000 0.84 s (measured in bench/ingest.py's full load).
CHUNK_ROWS = 200
# COPY text format escapes (PostgreSQL docs, "COPY: Text Format").
ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def copy_batches(url: str, *, table: str, columns: Sequence[str], cursor_column: str,
                 key_column: str | Sequence[str], after: Cursor | None = None,
                 batch_size: int = 5000,
                 types: dict[str, str] | None = None) -> Iterator[Batch]:
    """Yield batches whose `copy_text` streams the rows in COPY text format. `key_column` is
    the key, or the columns of a composite key. `types` maps columns to the contract's
    logical types, to catch a column retyped at the source."""
    # The rows pass through as bytes: they must leave the source in the encoding the
    # warehouse reads them in (a LATIN1 database would otherwise send LATIN1).
    with psycopg.connect(url, autocommit=True, client_encoding="utf8") as conn:
        found = dict(conn.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = %s::regclass and attnum > 0 and not attisdropped"
            " order by attnum", [table]).fetchall())
        families = {name: pg_family(kind) for name, kind in found.items()}
        check_drift(f"source table {table!r}", list(found), columns,
                    retyped(families, types or {}))
        keys = [(k, found[k]) for k in key_columns(key_column)]
        cursor = (cursor_column, found[cursor_column])
        positions = tuple(list(columns).index(c) for c in [cursor_column, *dict(keys)])
        for statement in _queries(table, columns, cursor, keys, after):
            yield from _split(_rows(conn, statement), batch_size, positions)


def _queries(table: str, columns: Sequence[str], cursor: tuple[str, str],
             keys: list[tuple[str, str]], after: Cursor | None) -> list[sql.Composed]:
    """Rows after `after` in (cursor, key...) order: the order of a plain index on (cursor,
    key...), so the source walks the index instead of sorting the table (asking for nulls
    first made it sort). On the first pass, rows with no cursor value come first, in a
    statement of their own: read then, never after. Within a cursor value, rows with a
    null key come last (a null key is stored in the cursor as '')."""
    moment = sql.Identifier(cursor[0])
    select = (sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table))
    ordered = sql.SQL(", ").join([moment, *(sql.Identifier(k) for k, _ in keys)])
    if after is None:
        first_key = sql.Identifier(keys[0][0])
        return [_copy(select, sql.SQL("{} is null").format(moment), first_key),
                _copy(select, sql.SQL("{} is not null").format(moment), ordered)]
    # The stored cursor is text: cast to the columns' own types. `m >= v` bounds an index
    # range scan; the rest picks up where the last batch ended.
    value = sql.SQL("cast({} as {})").format(sql.Literal(after.value), sql.SQL(cursor[1]))
    rest = sql.SQL(" or ").join([sql.SQL("{m} > {v}").format(m=moment, v=value),
                                 *_after_key(keys, after.keys)])
    where = sql.SQL("{m} >= {v} and ({rest})").format(m=moment, v=value, rest=rest)
    return [_copy(select, where, ordered)]


def _after_key(keys: list[tuple[str, str]], done: tuple[str, ...]) -> list[sql.Composable]:
    """Conditions for a key after `done` at the same cursor value, in the order nulls
    last gives (a part stored as '' was null): one per key column, each with the columns
    before it equal. A cursor from a key of another shape (the contract's key changed)
    also takes the rows equal on the parts both have: read again rather than skipped."""
    terms, equal = [], []
    for (name, kind), part in zip(keys, done, strict=False):
        column = sql.Identifier(name)
        typed = sql.SQL("cast({} as {})").format(sql.Literal(part), sql.SQL(kind))
        if part != "":  # nothing sorts after a null part but later keys
            terms.append(sql.SQL(" and ").join([*equal, sql.SQL("({c} > {t} or {c} is null)")
                                                .format(c=column, t=typed)]))
        equal.append(sql.SQL("{} is null").format(column) if part == ""
                     else sql.SQL("{} = {}").format(column, typed))
    if len(done) != len(keys):
        terms.append(sql.SQL(" and ").join(equal) if equal else sql.SQL("true"))
    return [sql.SQL("({})").format(term) for term in terms]


def _copy(select: tuple[sql.Composable, sql.Composable], where: sql.Composable,
          order: sql.Composable) -> sql.Composed:
    return sql.SQL("copy (select {} from {} where {} order by {}) to stdout").format(
        *select, where, order)


def _rows(conn: psycopg.Connection, statement: sql.Composed) -> Iterator[Buffer]:
    """The rows of a COPY TO, one buffer each, read from libpq itself. psycopg's
    Copy.read() runs a chain of generators per row: a second of CPU per million rows, more
    than the source took to send them. Reads do not block: the socket is waited on only
    when libpq's buffer is empty."""
    pgconn, done = conn.pgconn, False
    try:
        pgconn.send_query(statement.as_bytes(conn))
        _expect(conn, _next_result(pgconn), pq.ExecStatus.COPY_OUT)
        while (read := pgconn.get_copy_data(1))[0] != -1:
            if read[0] > 0:
                yield read[1]
            else:  # nothing buffered: wait for the network
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
        _expect(conn, _next_result(pgconn), pq.ExecStatus.COMMAND_OK)
        done = _next_result(pgconn) is None  # the end of the results: idle again
    finally:
        if not done:  # stopped or failed mid-stream: the source drops the COPY with us,
            conn.close()  # and nobody tries to roll back a connection still in it


def _next_result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            return pgconn.get_result()
        select.select([pgconn.socket], [], [])


def _expect(conn: psycopg.Connection, result: pq.abc.PGresult, status: pq.ExecStatus) -> None:
    if result.status != status:  # e.g. permission denied, a statement timeout
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def _split(rows: Iterator[Buffer], batch_size: int,
           positions: tuple[int, ...]) -> Iterator[Batch]:
    """Batches of up to `batch_size` rows, each streamed: its `copy_text` yields the rows in
    chunks as the source sends them, so the warehouse parses one chunk while the next
    arrives. A batch's rows must be read before the next batch is asked for; its `cursor`
    and `copy_rows` are set once they have been."""
    for first in rows:  # a batch begins only when there is a row for it
        batch = Batch([])
        batch.copy_text = _chunks(first, rows, batch, batch_size, positions)
        yield batch


def _chunks(first: Buffer, rows: Iterator[Buffer], batch: Batch, batch_size: int,
            positions: tuple[int, int]) -> Iterator[bytes]:
    # COPY TO sends one message per row: rows are counted as they pass, never parsed.
    pending, count, last = [first], 0, first
    for last in itertools.islice(rows, batch_size - 1):
        pending.append(last)
        if len(pending) == CHUNK_ROWS:
            count += len(pending)
            yield b"".join(pending)
            pending = []
    count += len(pending)
    yield b"".join(pending)
    fields = bytes(last)[:-1].split(b"\t")  # the furthest row, less its newline
    value, *keys = (_decode(fields[i]) for i in positions)
    batch.copy_rows = count
    batch.cursor = (Cursor.of(value, [k or "" for k in keys]) if value is not None
                    else None)  # rows without cursor values: no position to keep yet


def _decode(field: bytes) -> str | None:
    text = field.decode("utf-8")
    if text == "\\N":
        return None
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
