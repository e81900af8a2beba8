"""A grant's row filter as SQL: identifiers composed with psycopg's sql.Identifier, every
value a bound parameter. Nothing of the policy file is ever SQL text.

`clause(bound)` is the one place a filter becomes SQL: the rows page, the export, cursor
pages (api/rows.py's select_statement) and anything else reading a dataset's rows for a
caller AND it into their WHERE, so a caller's own filters can narrow it, never widen it.
"""

from __future__ import annotations

from functools import lru_cache

import psycopg
from psycopg import sql

from access_policies.row_filter import Bound

# Casts the hub writes into SQL (as api/query.py): a contract's physicalType is untrusted.
SAFE_CASTS = {"text", "bigint", "integer", "smallint", "numeric", "double precision", "real",
              "boolean", "date", "timestamp", "timestamptz", "time"}


def clause(bound: Bound | None, table: str | None = None) -> tuple[sql.Composable, list]:
    """The filter as a condition and its parameters (`true` and none for every row).
    `table`: qualify the columns with this alias (for a statement joining relations)."""
    if bound is None:
        return sql.SQL("true"), []
    return _composed(bound.shape, table), list(bound.params)


@lru_cache(maxsize=256)
def _composed(shape: tuple, table: str | None) -> sql.Composable:
    # Composed once per filter shape; the values differ per caller and are bound apart.
    return sql.SQL(" and ").join(_term(term, table) for term in shape)


def _term(term: tuple, table: str | None) -> sql.Composable:
    column, pg_type, op = term[:3]
    target = sql.Identifier(table, column) if table else sql.Identifier(column)
    cast = sql.SQL(pg_type if pg_type in SAFE_CASTS else "text")
    if pg_type not in SAFE_CASTS:
        target = sql.SQL("{}::text").format(target)
    if op == "eq":
        return sql.SQL("{} = %s::{}").format(target, cast)
    if op == "in":
        return sql.SQL("{} = any(%s::{}[])").format(target, cast)
    relation, other_column, where = term[3:]
    inner = sql.SQL(" and ").join(_term(t, "ref") for t in where) if where else sql.SQL("true")
    return sql.SQL("{} in (select {} from {} as ref where {})").format(
        target, sql.Identifier("ref", other_column), sql.Identifier("shared", relation), inner)


def relations(bound: Bound | None) -> list[str]:
    """The shared tables the filter reads besides the dataset's own (its in_dataset terms)."""
    return [term[3] for term in (bound.shape if bound else ()) if term[2] == "in_dataset"]


def count(conn: psycopg.Connection, relation: str, bound: Bound | None) -> int:
    """The rows of the shared table `relation` that the filter lets through."""
    where, params = clause(bound)
    statement = sql.SQL("select count(*) from {} where {}").format(
        sql.Identifier("shared", relation), where)
    (found,) = conn.execute(statement, params).fetchone()
    return found
