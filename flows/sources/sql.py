"""SQL database source: any SQLAlchemy URL, read incrementally in batches.

A plain generator with no Prefect code. It orders rows by (cursor column, key) and resumes
strictly after the last cursor it was given, so a batch that was committed is never read
again and a batch that was not is read again in full. A server-side cursor keeps memory
flat whatever the table size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flows.sources.base import Batch, Cursor, check_drift, key_columns, retyped


def read_batches(
    url: str, *, table: str, columns: Sequence[str], cursor_column: str,
    key_column: str | Sequence[str],
    after: Cursor | None = None, batch_size: int = 5000, types: dict[str, str] | None = None,
) -> Iterator[Batch]:
    """Yield batches of rows (in `columns` order) changed after `after`. `key_column` is the
    key, or the columns of a composite key. `types` maps columns to the contract's logical
    types, to catch a column retyped at the source."""
    keys = key_columns(key_column)
    engine = sa.create_engine(url)
    try:
        source = sa.Table(table, sa.MetaData(), autoload_with=engine)
        families = {c.name: _family(c.type) for c in source.columns}
        check_drift(f"source table {table!r}", list(families), columns,
                    retyped(families, types or {}))
        query = _incremental_query(source, columns, cursor_column, keys, after)
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size)
            for part in result.execute(query).partitions(batch_size):
                rows = [tuple(row) for row in part]
                yield Batch(rows, _cursor_of(rows[-1], columns, cursor_column, keys))
    finally:
        engine.dispose()


def _family(column_type: sa.types.TypeEngine) -> str:
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return "other"
    families = {bool: "boolean", int: "integer", float: "number", Decimal: "number",
                datetime: "timestamp", date: "date", time: "time", str: "text"}
    return families.get(python_type, "other")


def _incremental_query(
    source: sa.Table, columns: Sequence[str], cursor_column: str, key_columns: list[str],
    after: Cursor | None,
) -> sa.Select:
    moment = source.c[cursor_column]
    # A missing key sorts as '' so that a row with a null key is still read (and then
    # refused by the contract) instead of silently never matching the cursor.
    keys = [sa.func.coalesce(sa.cast(source.c[k], sa.Text), "") for k in key_columns]
    # Rows without a cursor value come first: read on the first pass, never after. (A CASE,
    # not NULLS FIRST, which MariaDB and MySQL do not have.)
    nulls_first = sa.case((moment.is_(None), 0), else_=1)
    query = sa.select(*(source.c[name] for name in columns)).order_by(nulls_first, moment,
                                                                       *keys)
    if after is None:
        return query
    value = _typed(after.value, moment.type)
    return query.where(sa.or_(moment > value, sa.and_(moment == value,
                                                     _later(keys, after.keys))))


def _later(keys: list[sa.ColumnElement], done: tuple[str, ...]) -> sa.ColumnElement:
    """A key after `done`. A composite key compares as a row, (a, b) > ('x', 'y'), as the
    rows are ordered. A cursor from a key of another shape (the contract's key changed)
    compares on the parts both have, ties included: read again rather than skipped."""
    if len(keys) == len(done) == 1:
        return keys[0] > done[0]
    common = min(len(keys), len(done))
    row, last = sa.tuple_(*keys[:common]), sa.tuple_(*map(sa.literal, done[:common]))
    return row > last if len(keys) == len(done) else row >= last


def _typed(value: str, column_type: sa.types.TypeEngine) -> Any:
    # Cursors are stored as text; compare with the column's own type.
    python_type = column_type.python_type
    if python_type is datetime:
        return datetime.fromisoformat(value)
    if python_type is date:
        return date.fromisoformat(value)
    return python_type(value)


def _cursor_of(row: tuple, columns: Sequence[str], cursor_column: str,
               key_columns: list[str]) -> Cursor | None:
    value = row[columns.index(cursor_column)]
    keys = [row[columns.index(k)] for k in key_columns]
    if value is None:  # a batch of rows without cursor values: no position to keep yet
        return None
    text = value.isoformat() if isinstance(value, (date, datetime)) else str(value)
    return Cursor.of(text, ["" if key is None else str(key) for key in keys])
