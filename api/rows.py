"""Reading rows: the page a request asks for, the SQL that fetches it, and its rendering."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
import psycopg
from fastapi import Request, Response
from psycopg import sql
from psycopg.rows import dict_row

from access_policies import Decision
from access_policies.masking import REDACTED
from access_policies.row_filter import Bound
from api import query as grammar
from api.deps import json_response
from api.errors import ApiError
from api.replicas import VERSION, newest_version
from contracts import Contract
from contracts.mapping import pg_type
from hub import row_filters
from hub.settings import Settings

# Masks whose result does not depend on what the value says are applied by the warehouse:
# the values never leave it, and a page needs no Python call per masked value (in
# bench/api.py those calls were about a tenth of a worker's time). The other masks (keyed
# hash, last 4, year only, bucket) run in Python: access_policies.masking.
IN_SQL: dict[str, Callable[[sql.Identifier], sql.Composable]] = {
    "redact": lambda column: sql.SQL("case when {} is null then null else {} end").format(
        column, sql.Literal(REDACTED)),
    "null": lambda column: sql.SQL("null"),
}


@dataclass(frozen=True)
class Page:
    """What to read: the parsed query plus paging."""

    query: grammar.Query
    limit: int
    offset: int
    after: list | None  # keyset cursor: the last row's key values, or None
    raw: list[tuple[str, str]]
    keyset: bool  # the caller sees the primary key unmasked, so pages may carry a cursor
    masks: tuple[str | None, ...]  # per selected column: its mask, or None
    # The grant's row filter bound to the caller (None: every row). ANDed into every
    # statement select_statement builds, before the caller's filters and the cursor.
    rows: Bound | None = None

    @property
    def python_masks(self) -> list[str | None]:
        """The masks left to apply to fetched rows (the others were applied in SQL)."""
        return [None if m in IN_SQL else m for m in self.masks]

    @classmethod
    def parse(cls, request: Request, settings: Settings, decision: Decision,
              key: str | tuple[str, ...], limit: int, offset: int, cursor: str | None,
              cap: int | None = None) -> Page:
        """`key`: the primary key's column, or its columns in key order (composite)."""
        keys = (key,) if isinstance(key, str) else tuple(key)
        cap = cap or settings.max_rows_per_page
        if limit > cap:
            unit = "page" if cap == settings.max_rows_per_page else "export"
            raise grammar.bad("limit", f"at most {cap} rows per {unit}")
        cap_offset(offset, settings, "page deeper with cursor= (each page's next_cursor), "
                   "which costs the same at any depth")
        raw = list(request.query_params.multi_items())
        visible = [c.name for c in decision.columns]
        unmasked = {c.name for c in decision.columns if c.mask is None}
        query = grammar.parse(raw, visible, unmasked)
        if cursor and query.order:
            raise grammar.bad("cursor", "pages by the primary key; with order=, use offset")
        masked = [k for k in keys if k not in unmasked]
        if cursor and masked:  # a cursor is a filter on the key: not on a masked one
            raise grammar.bad("cursor", f"the primary key {masked[0]!r} is masked for your "
                              "role; page with offset")
        after = decode_cursor(cursor, len(keys)) if cursor else None
        by_name = {c.name: c.mask for c in decision.columns}
        return cls(query, limit, offset, after, raw, keyset=not masked,
                   masks=tuple(by_name[c] for c in query.select), rows=filter_of(decision))

    def audit_record(self) -> dict[str, Any]:
        return {"query": [list(item) for item in self.raw]}


def cap_offset(offset: int, settings: Settings, deeper: str) -> None:
    """400 past HUB_MAX_OFFSET: every skipped row is read, so cost grows with depth.
    `deeper` says how to read further."""
    if offset > settings.max_offset:
        raise grammar.bad("offset", f"at most {settings.max_offset}; {deeper}")


def filter_of(decision: Decision) -> Bound | None:
    """The decision's bound row filter. A filtered grant without one cannot reach here
    (decide refuses a caller lacking an attribute); if it ever did, refuse, not serve all."""
    if decision.grant is not None and decision.grant.row_filter is not None \
            and decision.rows is None:
        raise ApiError(403, "access_denied", "the grant filters rows, and the filter could "
                       "not be applied to this caller", audit={"reason": "row filter unbound"})
    return decision.rows


def major_of(contract: Contract, relation: str | None) -> int | None:
    """The major whose newest version a read of `relation` serves: an older major's table
    has its own; the current table (None) serves the newest of any major."""
    return contract.major if relation else None


async def fetch(conn: psycopg.AsyncConnection, contract: Contract, page: Page,
                relation: str | None = None) -> tuple[int, list[tuple]]:
    """The newest published version and its rows for `page` (of `relation`: an older
    major's table); 404 if nothing is published. Each row ends with the version."""
    major = major_of(contract, relation)
    statement, params = select_statement(contract, page, relation, versioned=True)
    params = [contract.dataset_id, major, major, *params, page.limit, page.offset]
    try:
        cursor = await conn.execute(statement, params)
        found = await cursor.fetchall()
        version = found[0][-1] if found else await newest_version(
            conn, contract.dataset_id, major)
    except psycopg.errors.UndefinedTable:  # the shared table is made by the first publish
        version = None
    except psycopg.errors.DataError as exc:  # a filter value that does not fit its column
        raise grammar.bad("filter", f"a value does not fit its column's type: "
                          f"{str(exc).splitlines()[0]}") from None
    except psycopg.errors.QueryCanceled:
        raise ApiError(503, "timeout", "the query ran past the statement timeout; narrow it "
                       "with filters or a smaller limit") from None
    if version is None:
        raise ApiError(404, "not_published", f"{contract.dataset_id} has no published version "
                       "yet; run `hub run` (or wait for the next pipeline pass)")
    return version, found


def select_statement(contract: Contract, page: Page, relation: str | None = None,
                     versioned: bool = False,
                     source: bytes | None = None) -> tuple[bytes, list[Any]]:
    """The parameterised SELECT for `page`'s columns, filters, cursor and order (then
    `limit %s offset %s`, or `limit %s` alone for an export). With `versioned`, each row
    ends with the version: VERSION's placeholders come before the returned params.
    `source`: a parameterless SELECT to read from instead of the shared table (a change
    feed's diff, hub/changes.py), masked and filtered the same way."""
    shapes = tuple(grammar.shape(f, _pg_type(contract, f.column)) for f in page.query.filters)
    statement = _compose(relation or contract.relation_name, tuple(page.query.select),
                         page.masks, shapes,
                         tuple(page.query.order), contract.primary_key,
                         page.after is not None, versioned, source,
                         page.rows.shape if page.rows else None)
    params = grammar.where_params(page.query.filters)
    params.extend(row_filters.clause(page.rows)[1])
    if page.after is not None:
        params.extend(page.after)
    return statement, params


@lru_cache(maxsize=1024)
def _compose(relation: str, select: tuple[str, ...], masks: tuple[str | None, ...],
             shapes: tuple[grammar.Shape, ...], order: tuple[tuple[str, bool], ...],
             key: tuple[str, ...], after: bool, versioned: bool,
             source: bytes | None = None, row_shape: tuple | None = None) -> bytes:
    # Composed once per query shape: psycopg then finds the statement's placeholders in
    # its own cache instead of walking the composition on every request.
    where = grammar.where_sql(shapes)
    if row_shape is not None:  # the grant's filter: ANDed, so the caller's only narrow it
        where = sql.SQL("({}) and ({})").format(
            where, row_filters.clause(Bound(row_shape, ()))[0])
    if after:  # a composite key compares as a row, in the order the pages are sorted
        where = sql.SQL("{} and ({}) > ({})").format(
            where, sql.SQL(", ").join(map(sql.Identifier, key)),
            sql.SQL(", ").join(sql.Placeholder() for _ in key))
    # No aliases on masked columns: `order by` must keep meaning the stored column.
    columns = sql.SQL(", ").join(
        IN_SQL[mask](sql.Identifier(name)) if mask in IN_SQL else sql.Identifier(name)
        for name, mask in zip(select, masks, strict=True))
    if versioned:
        columns = sql.SQL("{}, ({})").format(columns, sql.SQL(VERSION))
    tail = "limit %s offset %s" if versioned else "limit %s"
    origin = (sql.SQL("({}) as feed").format(sql.SQL(source.decode())) if source
              else sql.Identifier("shared", relation))
    return sql.SQL("select {} from {} where {} order by {} {}").format(
        columns, origin, where,
        grammar.order_clause(list(order), key), sql.SQL(tail)).as_bytes(None)


def _pg_type(contract: Contract, name: str) -> str:
    column = contract.column(name)
    return pg_type(column.physical_type, column.logical_type)


async def quality_status(conn: psycopg.AsyncConnection) -> dict[str, dict[str, Any]]:
    """Per dataset: the served version, when it was published, and its latest check."""
    async with conn.cursor(row_factory=dict_row) as cur:
        found = await (await cur.execute(
            "select v.dataset, v.version, v.published_at, r.passed as last_check_passed,"
            " r.created_at as checked_at, r.rows_passed as rows_published, r.rows_quarantined"
            " from (select distinct on (dataset) * from hub.dataset_versions"
            "       order by dataset, version desc) v"
            " left join lateral (select * from hub.validation_reports r"
            "       where r.dataset = v.dataset order by created_at desc limit 1) r on true"
        )).fetchall()
    return {row["dataset"]: _status(row) for row in found}


QUALITY = ("last_check_passed", "checked_at", "rows_published", "rows_quarantined")


def _status(row: dict[str, Any]) -> dict[str, Any]:
    # No validation report yet: the left join gave nulls, and there is no quality to show.
    quality = None if row["last_check_passed"] is None else {k: row[k] for k in QUALITY}
    return {"version": row["version"], "published_at": row["published_at"], "quality": quality}


def render(fmt: str, dataset_id: str, version: int, page: Page, records: list[dict],
           contract: Contract, extra: dict[str, Any] | None = None) -> Response:
    """The page as JSON (with the next cursor and `extra`), NDJSON or CSV; `records` are
    masked."""
    if fmt == "ndjson":
        return Response(ndjson(records), media_type="application/x-ndjson")
    if fmt == "csv":
        body = csv_lines([page.query.select, *(r.values() for r in records)])
        return Response(body, media_type="text/csv")
    return json_response({
        "dataset": dataset_id, **(extra or {}), "version": version,
        "columns": page.query.select,
        "rows": records, "next_cursor": _next_cursor(contract, page, records),
    })


def ndjson(records: Iterable[dict]) -> bytes:
    """Records as JSON lines (pages and exports alike)."""
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)


def csv_lines(rows: Iterable[Iterable]) -> bytes:
    """Rows as CSV lines, a null as an empty field (pages and exports alike)."""
    out = io.StringIO()
    csv.writer(out).writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue().encode()


def _next_cursor(contract: Contract, page: Page, records: list[dict]) -> str | None:
    key = contract.primary_key
    if len(records) < page.limit or not page.keyset or not set(key) <= set(page.query.select) \
            or page.query.order:
        return None
    # Dates and times travel as ISO text; the warehouse casts it back to the key's type.
    values = json.dumps([records[-1][k] for k in key], default=_cursor_text)
    return base64.urlsafe_b64encode(values.encode()).decode()


def _cursor_text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def decode_cursor(cursor: str, parts: int = 1) -> list:
    """The key values a cursor carries: `parts` of them, one per key column."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != parts:
        raise grammar.bad("cursor", "not a cursor this API returned; pass next_cursor from "
                          "the previous page unchanged")
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise grammar.bad("cursor", "not a cursor this API returned")
    return values
