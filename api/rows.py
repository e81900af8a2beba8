"""Reading rows: the page a request asks for, the SQL that fetches it, and its rendering."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from fastapi import Request, Response
from psycopg import sql

from access_policies import Decision
from api import query as grammar
from api.deps import json_response
from api.errors import ApiError
from contracts import Contract
from contracts.mapping import pg_type
from hub.settings import Settings


@dataclass(frozen=True)
class Page:
    """What to read: the parsed query plus paging."""

    query: grammar.Query
    limit: int
    offset: int
    after: Any  # keyset cursor value, or None
    raw: list[tuple[str, str]]

    @classmethod
    def parse(cls, request: Request, settings: Settings, decision: Decision, limit: int,
              offset: int, cursor: str | None, cap: int | None = None) -> Page:
        cap = cap or settings.max_rows_per_page
        if limit > cap:
            unit = "page" if cap == settings.max_rows_per_page else "export"
            raise grammar.bad("limit", f"at most {cap} rows per {unit}")
        raw = list(request.query_params.multi_items())
        visible = [c.name for c in decision.columns]
        unmasked = {c.name for c in decision.columns if c.mask is None}
        query = grammar.parse(raw, visible, unmasked)
        if cursor and query.order:
            raise grammar.bad("cursor", "pages by the primary key; with order=, use offset")
        return cls(query, limit, offset, decode_cursor(cursor) if cursor else None, raw)

    def audit_record(self) -> dict[str, Any]:
        return {"query": [list(item) for item in self.raw]}


def fetch(conn: psycopg.Connection, contract: Contract, page: Page,
          relation: str | None = None) -> tuple[int, list[tuple]]:
    """The newest published version's rows for `page` (of `relation`: an older major's
    table); 404 if nothing is published."""
    major = contract.major if relation else None  # an older major: its own newest version
    version = latest_versions(conn, major).get(contract.dataset_id)
    if version is None:
        raise ApiError(404, "not_published", f"{contract.dataset_id} has no published version "
                       "yet; run `hub run` (or wait for the next pipeline pass)")
    statement, params = select_statement(contract, page, relation)
    statement = sql.SQL("{} limit %s offset %s").format(statement)
    try:
        return version, conn.execute(statement, [*params, page.limit, page.offset]).fetchall()
    except psycopg.errors.DataError as exc:  # a filter value that does not fit its column
        raise grammar.bad("filter", f"a value does not fit its column's type: "
                          f"{str(exc).splitlines()[0]}") from None
    except psycopg.errors.QueryCanceled:
        raise ApiError(503, "timeout", "the query ran past the statement timeout; narrow it "
                       "with filters or a smaller limit") from None


def select_statement(contract: Contract, page: Page,
                     relation: str | None = None) -> tuple[sql.Composed, list[Any]]:
    """The parameterised SELECT for `page`'s columns, filters, cursor and order."""
    types = {c.name: pg_type(c.physical_type, c.logical_type) for c in contract.columns}
    where, params = grammar.where_clause(page.query.filters, types)
    key = contract.primary_key[0]
    if page.after is not None:
        where = sql.SQL("{} and {} > %s").format(where, sql.Identifier(key))
        params.append(page.after)
    statement = sql.SQL("select {} from {} where {} order by {}").format(
        sql.SQL(", ").join(map(sql.Identifier, page.query.select)),
        sql.Identifier("shared", relation or contract.relation_name), where,
        grammar.order_clause(page.query.order, key))
    return statement, params


def latest_versions(conn: psycopg.Connection, major: int | None = None) -> dict[str, int]:
    """Newest published version per dataset (of contracts of `major`, when given)."""
    rows = conn.execute("select dataset, max(version) from hub.dataset_versions"
                        " where %(major)s::int is null"
                        " or split_part(contract_version, '.', 1)::int = %(major)s"
                        " group by dataset", {"major": major})
    return dict(rows.fetchall())


def quality_status(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Per dataset: the served version, when it was published, and its latest check."""
    found = conn.execute(
        "select v.dataset, v.version, v.published_at, r.passed, r.created_at, r.rows_passed,"
        " r.rows_quarantined from (select distinct on (dataset) * from hub.dataset_versions"
        "       order by dataset, version desc) v"
        " left join lateral (select * from hub.validation_reports r where r.dataset = v.dataset"
        "       order by created_at desc limit 1) r on true").fetchall()
    return {row[0]: {"version": row[1], "published_at": row[2], "quality": None if row[3] is None
                     else {"last_check_passed": row[3], "checked_at": row[4],
                           "rows_published": row[5], "rows_quarantined": row[6]}}
            for row in found}


def render(fmt: str, dataset_id: str, version: int, page: Page, masked: list[tuple],
           raw_rows: list[tuple], contract: Contract) -> Response:
    names = page.query.select
    if fmt == "ndjson":
        body = b"".join(orjson.dumps(dict(zip(names, row, strict=True)),
                                     option=orjson.OPT_APPEND_NEWLINE) for row in masked)
        return Response(body, media_type="application/x-ndjson")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(names)
        writer.writerows(["" if v is None else v for v in row] for row in masked)
        return Response(out.getvalue(), media_type="text/csv")
    return json_response({
        "dataset": dataset_id, "version": version, "columns": names,
        "rows": [dict(zip(names, row, strict=True)) for row in masked],
        "next_cursor": _next_cursor(contract, page, raw_rows),
    })


def _next_cursor(contract: Contract, page: Page, found: list[tuple]) -> str | None:
    key = contract.primary_key[0]
    if len(found) < page.limit or key not in page.query.select or page.query.order:
        return None
    last = found[-1][page.query.select.index(key)]
    return base64.urlsafe_b64encode(json.dumps([last]).encode()).decode()


def decode_cursor(cursor: str) -> Any:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))[0]
    except (binascii.Error, ValueError, IndexError, TypeError, UnicodeDecodeError):
        raise grammar.bad("cursor", "not a cursor this API returned; pass next_cursor from "
                          "the previous page unchanged") from None
    if not isinstance(value, (str, int)):
        raise grammar.bad("cursor", "not a cursor this API returned")
    return value
