"""Change feeds: `GET /datasets/{id}/changes?since_version=N`, the rows inserted, updated
and deleted between published version N and the newest, keyed by the primary key.

Delta Sharing's change data feed is the model, diffed rather than logged: a feed answers
one row per key with its net change (`_change`: insert, update or delete), whatever
happened in the versions between. The diff (hub/change_keys.py: rows looked up by the keys
each publish recorded as changed; hub/changes.py for versions from before those) is read
through the rows route's own statement (api/rows.py `select_statement`), so the columns,
masks, filters, keyset cursor and formats are the rows route's: a feed shows nothing a
rows page would not.
Audited as a `data.read` naming the dataset, the version read and `since_version`.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Request, Response
from psycopg import AsyncConnection

from access_policies.masking import as_records
from api import rows
from api.deps import (
    Cursor,
    Limit,
    Offset,
    Order,
    PageFormat,
    RequestIdDep,
    Select,
    StateDep,
    record_now,
)
from api.errors import ApiError
from api.models import RowsPage
from api.query import bad
from api.routes.datasets import (
    READ,
    ROWS_AS_TEXT,
    _admit,
    _event,
    _unless_retired,
    served,
)
from contracts import Contract
from hub import change_keys, changes

router = APIRouter(prefix="/datasets", tags=["datasets"])
CHANGE = "_change"


@router.get("/{dataset_id}/changes", openapi_extra=READ, responses={
    200: {"model": RowsPage, "description": "A page of changed rows, each with `_change`: "
          "JSON by default, or NDJSON or CSV (format=)", "content": ROWS_AS_TEXT},
    410: {"description": "since_version is older than the oldest kept version (named in "
          "the description and the X-Hub-Oldest-Version header)"}})
async def read_changes(
    dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
    since_version: Annotated[int | None, Query(ge=1, description="a published version "
                                               "(required); the feed holds what changed "
                                               "after it")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
    cursor: Cursor = None,
    select: Select = None,
    order: Order = None,
    format: PageFormat = "json",
) -> Response:
    """Rows inserted, updated or deleted since `since_version`, masked and filtered as the
    rows route masks and filters them; a delete carries the row as it was."""
    async with state.apool.connection() as conn:
        principal, contract, decision = await _admit(request, state, conn, dataset_id)
        _unless_retired(state, dataset_id)
        if since_version is None:  # checked after the token: a wrong scope hears 403 first
            raise bad("since_version", "required: the version you last read (the `version` "
                      "of a rows page or of the previous feed)")
        page = rows.Page.parse(request, state.settings, decision, contract.primary_key,
                               limit, offset, cursor)
        page = _with_change(page)
        # From a standby holding the newest version, else from the primary (api/replicas.py).
        async with state.reads.reading(dataset_id, primary=conn) as read:
            version, found = await _fetch(read.conn, contract, page, since_version)
    if state.settings.audit_reads:  # committed before the response is built
        feed = {"since_version": since_version, "to_version": version}
        event = _event(request, "data.read", principal, dataset_id, "allow", decision.reason,
                       200, decision=decision, contract=contract, version=version,
                       filters={**page.audit_record(), "changes": feed},
                       rows=len(found), columns=page.query.select[1:])
        await record_now(state, served(dataclasses.replace(
            event, detail={**event.detail, "changes": feed}), read))
    records = as_records(page.query.select, found, page.python_masks, state.pseudonym_key)
    return _render(format, dataset_id, version, page, records, contract, since_version)


def _with_change(page: rows.Page) -> rows.Page:
    """The page with `_change` as its first column, unmasked: the kind of change is no
    value of the dataset's."""
    query = dataclasses.replace(page.query, select=[CHANGE, *page.query.select])
    return dataclasses.replace(page, query=query, masks=(None, *page.masks))


async def _fetch(conn: AsyncConnection, contract: Contract, page: rows.Page,
                 since: int) -> tuple[int, list[tuple]]:
    """The newest version and the page of the diff from `since` to it; 404, 400 or 410 when
    there is nothing to diff."""
    window = await changes.read_window(conn, contract.dataset_id)
    if window.newest is None:
        raise ApiError(404, "not_published", f"{contract.dataset_id} has no published version "
                       "yet; run `hub run` (or wait for the next pipeline pass)")
    if since > window.newest:
        raise bad("since_version", f"{contract.dataset_id} has published versions up to "
                  f"{window.newest}; give one of them")
    if since == window.newest:
        return since, []  # nothing has changed since the newest version
    snapshot = window.kept.get(since)
    if snapshot is None:
        raise ApiError(410, "gone", f"since_version: version {since} of "
                       f"{contract.dataset_id} is no longer kept to diff; the oldest "
                       f"available is {window.oldest} (re-read the rows, then follow the "
                       f"feed from version {window.newest})",
                       headers={"X-Hub-Oldest-Version": str(window.oldest)},
                       audit={"reason": f"since_version {since} older than {window.oldest}"})
    kept = await changes.kept_columns(conn, snapshot)
    columns, tables = [c.name for c in contract.columns], window.keys_since(since)
    if tables is None:  # a version published before change keys: diff the whole versions
        diff = changes.diff_sql(contract.relation_name, snapshot, columns, kept,
                                contract.primary_key)
    else:
        diff = change_keys.feed_sql(contract.relation_name, snapshot, tables, columns, kept,
                                    contract.primary_key)
    return await _diff_page(conn, contract, page, diff, window.newest)


async def _diff_page(conn: AsyncConnection, contract: Contract, page: rows.Page,
                     diff: bytes, newest: int) -> tuple[int, list[tuple]]:
    statement, params = rows.select_statement(contract, page, source=diff, versioned=True)
    params = [contract.dataset_id, None, None, *params, page.limit, page.offset]
    try:
        found = await (await conn.execute(statement, params)).fetchall()
    except psycopg.errors.UndefinedTable:  # a publish dropped the kept version meanwhile
        raise ApiError(410, "gone", "since_version: that version was dropped while being "
                       "read; ask again from a newer one") from None
    except psycopg.errors.DataError as exc:
        raise bad("filter", f"a value does not fit its column's type: "
                  f"{str(exc).splitlines()[0]}") from None
    except psycopg.errors.QueryCanceled:
        raise ApiError(503, "timeout", "the query ran past the statement timeout; narrow it "
                       "with filters or a smaller limit") from None
    return (found[0][-1] if found else newest), found


def _render(fmt: str, dataset_id: str, version: int, page: rows.Page, records: list[dict],
            contract: Contract, since: int) -> Response:
    return rows.render(fmt, dataset_id, version, page, records, contract,
                       extra={"since_version": since})
