"""PostgreSQL source, fast path: COPY out of the department's database, COPY into ours.

The same contract as `flows.sources.sql.read_batches` (rows after the cursor, ordered by
cursor and key, in batches, drift checked first), but rows stay in COPY's text format end
to end: they are never turned into Python objects, which is where the generic path spends
its time. Only the last row of each batch is decoded, for the cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql

from flows.sources.base import Batch, Cursor, check_drift, pg_family, retyped

# COPY text format escapes (PostgreSQL docs, "COPY: Text Format").
ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def copy_batches(url: str, *, table: str, columns: Sequence[str], cursor_column: str,
                 key_column: str, after: Cursor | None = None, batch_size: int = 5000,
                 types: dict[str, str] | None = None) -> Iterator[Batch]:
    """Yield batches whose `copy_text` holds the rows in COPY text format. `types` maps
    columns to the contract's logical types, to catch a column retyped at the source."""
    with psycopg.connect(url) as conn:
        found = dict(conn.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = %s::regclass and attnum > 0 and not attisdropped"
            " order by attnum", [table]).fetchall())
        families = {name: pg_family(kind) for name, kind in found.items()}
        check_drift(f"source table {table!r}", list(found), columns,
                    retyped(families, types or {}))
        statement = _query(table, columns, (cursor_column, found[cursor_column]),
                           (key_column, found[key_column]), after)
        positions = (list(columns).index(cursor_column), list(columns).index(key_column))
        with conn.cursor() as cur, cur.copy(statement) as copy:
            yield from _split(copy, batch_size, positions)


def _query(table: str, columns: Sequence[str], cursor: tuple[str, str], key: tuple[str, str],
           after: Cursor | None) -> sql.Composed:
    """Rows after `after` in (cursor, key) order, both in their own types so an index on
    (cursor, key) serves the order. Keys that are null come first within a cursor value
    (a null key is stored in the cursor as ''), so they are read, and read once. Rows
    with no cursor value come first of all: read on the first pass, never after."""
    moment, ident = sql.Identifier(cursor[0]), sql.Identifier(key[0])
    where = sql.SQL("true")
    if after is not None:  # the stored cursor is text: cast to the columns' own types
        value = sql.SQL("cast({} as {})").format(sql.Literal(after.value), sql.SQL(cursor[1]))
        later = (sql.SQL("{} is not null").format(ident) if after.key == "" else
                 sql.SQL("{} > cast({} as {})").format(ident, sql.Literal(after.key),
                                                      sql.SQL(key[1])))
        where = sql.SQL("({m} > {v} or ({m} = {v} and {later}))").format(
            m=moment, v=value, later=later)
    select = sql.SQL("select {} from {} where {} order by {} nulls first, {} nulls first").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), where,
        moment, ident)
    return sql.SQL("copy ({}) to stdout").format(select)


def _split(copy: psycopg.Copy, batch_size: int, positions: tuple[int, int]) -> Iterator[Batch]:
    """Cut the COPY stream into batches of whole rows, at least `batch_size` each but the
    last. Each row ends with a real newline (newlines inside values are escaped), so rows
    are counted and cut with byte searches, never split into a list."""
    buffer, rows = bytearray(), 0
    for chunk in copy:
        start = len(buffer)
        buffer += chunk
        rows += buffer.count(b"\n", start)
        if rows >= batch_size:
            end = buffer.rfind(b"\n") + 1
            yield _batch(bytes(buffer[:end]), rows, positions)
            del buffer[:end]
            rows = 0
    if buffer:
        yield _batch(bytes(buffer), rows, positions)


def _batch(text: bytes, rows: int, positions: tuple[int, int]) -> Batch:
    last = text[text.rfind(b"\n", 0, len(text) - 1) + 1:-1]  # the furthest row
    fields = last.split(b"\t")
    value, key = (_decode(fields[i]) for i in positions)
    cursor = Cursor(value, key or "") if value is not None else None  # only null cursors yet
    return Batch([], cursor, copy_text=text, copy_rows=rows)


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
