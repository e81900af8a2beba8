"""Shared datasets: the caller's catalog and the rows, under the access policies.

Every request here is on record, allowed or refused. For an allowed read the audit row
is committed after the rows are fetched and before the response is built: no data leaves
without its record (if the record cannot be written, the request fails). Refusals are
recorded by the error handlers (api/refusals.py), at most one record per client and
reason a second, each with the count of refusals it stands for.

These routes serve most of the API's traffic, so they are async end to end (async pool,
no thread-pool hops); see bench/api.py.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from starlette.concurrency import run_in_threadpool

from access_policies import Decision, Grant, decide
from access_policies.masking import as_records
from access_policies.row_filter import describe
from api import export, rows, search
from api.deps import (
    AppState,
    Cursor,
    Limit,
    Offset,
    Order,
    PageFormat,
    Principal,
    RequestIdDep,
    Select,
    StateDep,
    authenticate,
    record_now,
    request_event,
)
from api.errors import ApiError
from api.models import Catalog, DatasetDetail, DatasetSummary, RowsPage, ValidationReports
from api.openapi import token_scopes
from api.replicas import Read
from contracts import Contract, load_contract_text
from contracts.targets import to_json_schema
from hub import clock
from hub.audit import AuditEvent
from hub.registry import StoredVersion, newest_of_major

router = APIRouter(prefix="/datasets", tags=["datasets"])
READ = token_scopes("datasets:read")
NDJSON = "application/x-ndjson"
# The rows page and the export build their bodies themselves (orjson, streaming): their
# bodies are documented here, and FastAPI neither validates nor serialises them.
ROWS_AS_TEXT = {
    NDJSON: {"schema": {"type": "string", "description": "one JSON object per row and line, "
                        "keyed by column"}},
    "text/csv": {"schema": {"type": "string", "description": "a header line of column "
                            "names, then one line per row (a null as an empty field)"}},
}


@router.get("", openapi_extra=READ)
async def list_datasets(
    request: Request, state: StateDep, _rid: RequestIdDep,
    q: Annotated[str | None, Query(description="words to search for in titles, descriptions "
                                   "and columns; ranks the answer, best first")] = None,
    department: Annotated[str | None, Query(description="only this department's")] = None,
    quality: Annotated[search.Quality | None, Query(description="the latest check: passed, "
                                                    "failed or unchecked")] = None,
) -> Catalog:
    """The datasets the caller may read, with owner, description and schema; with `q`,
    those matching it, ranked (PostgreSQL full-text search)."""
    words = search.check(q)
    async with state.apool.connection() as conn:
        principal = await _authorize(request, state, conn)
        grants = await state.request_grants.current(conn)
        decided = [(c, _decision(state, principal, c, grants)) for c in state.contracts.values()]
        status = await rows.quality_status(conn)
        visible = search.filtered([(c, d) for c, d in decided if d.allowed], status,
                                  department, quality)
        if words is not None:
            order = await search.ranked(conn, words, visible)
            by_id = {c.dataset_id: (c, d) for c, d in visible}
            visible = [by_id[i] for i in order]
    asked = {k: v for k, v in (("q", q), ("department", department), ("quality", quality)) if v}
    await record_now(state, _event(request, "catalog.read", principal, None, "allow", "catalog",
                                   200, filters=asked))
    return Catalog(datasets=[DatasetSummary.model_validate(_summary(
        c, _filtered_status(status.get(c.dataset_id), d)))
        for c, d in visible])


@router.get("/{dataset_id}", openapi_extra=READ)
async def get_dataset(dataset_id: str, request: Request, state: StateDep,
                      _rid: RequestIdDep) -> DatasetDetail:
    """One dataset's description and, for the caller: the deciding grant, the columns it
    sees (and how each is masked) and the rows, its row filter in words."""
    async with state.apool.connection() as conn:
        principal, contract, decision = await _admit(request, state, conn, dataset_id)
        status = _filtered_status((await rows.quality_status(conn)).get(dataset_id), decision)
    await record_now(state, _event(request, "catalog.read", principal, dataset_id, "allow",
                                   decision.reason, 200, decision=decision))
    return DatasetDetail.model_validate({
        **_summary(contract, status), "row_schema": to_json_schema(contract),
        "columns": [{"name": c.name, "mask": c.mask} for c in decision.columns],
        "access": _explained(decision)})


@router.get("/{dataset_id}/validations", openapi_extra=READ)
async def list_validations(dataset_id: str, request: Request, state: StateDep,
                           _rid: RequestIdDep,
                           limit: Annotated[int, Query(ge=1, le=100)] = 20) -> ValidationReports:
    """The dataset's latest validation reports: every rule, held or not, and the counts of
    the gate (rows in, published, quarantined). Visible to whoever may read the dataset."""
    async with state.apool.connection() as conn:
        decision = (await _admit(request, state, conn, dataset_id))[2]
        async with conn.cursor(row_factory=dict_row) as cur:
            found = await (await cur.execute(
                "select run_id, contract_version, passed, rows_in,"
                " rows_passed as rows_published, rows_quarantined, rules, created_at"
                " from hub.validation_reports where dataset = %s"
                " order by created_at desc limit %s", [dataset_id, limit])).fetchall()
    if decision.rows is not None:  # counted and sampled over every row: not for this caller
        found = [_without_aggregates(report) for report in found]
    return ValidationReports.model_validate({"dataset": dataset_id, "reports": found})


@router.get("/{dataset_id}/rows", openapi_extra=READ, responses={
    200: {"model": RowsPage, "description": "A page of rows: JSON by default, or NDJSON or "
          "CSV (format=)", "content": ROWS_AS_TEXT}})
async def read_rows(
    dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
    limit: Limit = 100,
    offset: Offset = 0,
    cursor: Cursor = None,
    select: Select = None,
    order: Order = None,
    format: PageFormat = "json",
    major: Annotated[int | None, Query(ge=1, description="an older major version of the "
                                       "contract, served until its deprecation date")] = None,
) -> Response:
    """Rows of the newest published version, masked as the caller's grant says.

    Filter with `column=op.value` (eq, neq, gt, gte, lt, lte, in, like, is) on columns
    you see unmasked."""
    async with state.apool.connection() as conn:  # one connection for the whole request
        principal, contract, decision = await _admit(request, state, conn, dataset_id)
        _unless_retired(state, dataset_id)
        relation = None
        if major is not None and major != contract.major:
            contract, relation = await _older_major(state, dataset_id, major)
            decision = _decision(state, principal, contract,
                                 await state.request_grants.current(conn))
        page = rows.Page.parse(request, state.settings, decision, contract.primary_key,
                               limit, offset, cursor)
        # The rows from a standby that holds the published version, else from the primary.
        async with state.reads.reading(dataset_id, rows.major_of(contract, relation),
                                       conn) as read:
            version, found = await rows.fetch(read.conn, contract, page, relation)
    if state.settings.audit_reads:  # committed (on the primary) before the response is built
        await record_now(state, served(_event(
            request, "data.read", principal, dataset_id, "allow", decision.reason, 200,
            decision=decision, contract=contract, version=version,
            filters=page.audit_record(), rows=len(found), columns=page.query.select), read))
    records = as_records(page.query.select, found, page.python_masks, state.pseudonym_key)
    return rows.render(format, dataset_id, version, page, records, contract)


@router.get("/{dataset_id}/export", openapi_extra=READ, response_class=StreamingResponse,
            responses={200: {"description": "Every matching row, streamed (format=)",
                             "content": ROWS_AS_TEXT}})
async def export_rows(
    dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
    select: Select = None,
    order: Order = None,
    format: Annotated[Literal["ndjson", "csv"], Query()] = "ndjson",
    limit: Annotated[int | None, Query(ge=1, description="at most HUB_MAX_EXPORT_ROWS")] = None,
) -> Response:
    """Every row matching the filters, streamed as NDJSON or CSV and masked as the caller's
    grant says. Audited when it starts and when it ends (rows and bytes sent)."""
    cap = state.settings.max_export_rows
    async with state.apool.connection() as conn:
        principal, contract, decision = await _admit(request, state, conn, dataset_id)
        _unless_retired(state, dataset_id)
        page = rows.Page.parse(request, state.settings, decision, contract.primary_key,
                               limit or cap, 0, None, cap=cap)
        version = (await rows.fetch(conn, contract, dataclasses.replace(page, limit=0)))[0]
        started = _event(request, "data.export", principal, dataset_id, "allow",
                         decision.reason, 200, decision=decision, contract=contract,
                         version=version, filters=page.audit_record(),
                         columns=page.query.select)
    await record_now(state, started)  # before the first byte leaves

    async def done(sent: export.Sent) -> None:
        await record_now(state, served(dataclasses.replace(
            started, kind="data.export.completed", rows_returned=sent.rows,
            detail={**started.detail, "bytes": sent.bytes, "outcome": sent.outcome}),
            sent.read))

    media = NDJSON if format == "ndjson" else "text/csv"
    return StreamingResponse(
        export.stream(state, contract, page, format, version, done),
        media_type=media)


async def _older_major(state: AppState, dataset_id: str, major: int) -> tuple[Contract, str]:
    """The contract and table of an older major version still within its notice period."""
    found = await run_in_threadpool(_newest_of_major, state, dataset_id, major)
    if found is None or found.deprecated_after is None:
        raise ApiError(404, "not_found", f"major: {dataset_id} has no older major version "
                       f"{major}; omit major= for the current one")
    if found.deprecated_after < clock.today():
        raise ApiError(410, "gone", f"major: version {major} of {dataset_id} was served until "
                       f"{found.deprecated_after}; move to the current major version")
    older = load_contract_text(found.source_text, f"{dataset_id} v{major}")
    return older, f"{older.relation_name}__v{major}"


# ---------- authorisation (refusals are audited by the error handlers: api/refusals.py)


# A request holds one pooled connection for its reads (revocation check, grants, rows):
# taking a second while holding the first could exhaust the pool under load. Audit records
# go through state.audit, which has a pool of its own.


async def _authorize(request: Request, state: AppState, conn: AsyncConnection) -> Principal:
    principal = await authenticate(request, state, conn)
    principal.require("datasets:read")
    if state.catalog is not None:  # registrations in other workers show within seconds
        await state.catalog.refresh(conn)
    return principal


async def _admit(request: Request, state: AppState, conn: AsyncConnection,
                 dataset_id: str) -> tuple[Principal, Contract, Decision]:
    """The caller, the dataset's contract and the caller's grant on it; else 401/403."""
    principal = await _authorize(request, state, conn)
    contract = state.contracts.get(dataset_id)
    decision = None
    if contract is not None:
        decision = _decision(state, principal, contract, await state.request_grants.current(conn))
    if contract is not None and decision.missing_attribute is not None:
        raise ApiError(403, "access_denied", f"grant {decision.grant.id} filters the rows of "
                       f"{dataset_id} by your attribute {decision.missing_attribute!r}, which "
                       "your token does not carry; ask the hub's operators to give your client "
                       "that attribute", audit={"reason": decision.reason})
    if contract is None or not decision.allowed:
        # Unknown and not-granted look alike, so ids of hidden datasets do not leak; the
        # audit record keeps the true reason.
        reason = decision.reason if decision else f"unknown dataset {dataset_id!r}"
        raise ApiError(403, "access_denied", f"no grant lets role {principal.role} read "
                       f"dataset {dataset_id!r}", audit={"reason": reason})
    return principal, contract, decision


def _unless_retired(state: AppState, dataset_id: str) -> None:
    """410 for a retired dataset's rows (its contract's newest version says so); the
    refusal is audited by the error handlers with the retirement date as its reason."""
    retired = state.catalog.retired.get(dataset_id) if state.catalog else None
    if retired is not None:
        raise ApiError(410, "gone", f"{dataset_id} was retired on {retired} and is no "
                       "longer published; ask its owner what replaces it",
                       audit={"reason": f"retired on {retired}"})


def _decision(state: AppState, principal: Principal, contract: Contract,
              requested: tuple[Grant, ...]) -> Decision:
    return decide(state.policy, role=principal.role, contract=contract,
                  today=clock.today(), client_id=principal.client_id,
                  extra=requested, attributes=principal.attributes)


def _event(request: Request, kind: str, principal: Principal | None, dataset: str | None,
           verdict: str, reason: str, status: int, decision: Decision | None = None,
           contract: Contract | None = None, **extra: Any) -> AuditEvent:
    grant = decision.grant if decision else None
    return request_event(
        request, kind, principal, decision=verdict, reason=reason, status_code=status,
        purpose=grant.purpose if grant else None, grant_id=grant.id if grant else None,
        dataset=dataset, dataset_version=extra.get("version"),
        columns=extra.get("columns", []),
        unmasked_personal=_unmasked_personal(decision, contract),
        filters=extra.get("filters", {}), rows_returned=extra.get("rows", 0),
        detail=_grant_window(grant) | _row_filter_applied(decision),
    )


def served(event: AuditEvent, read: Read | None) -> AuditEvent:
    """The event naming the server its rows were read from, when standbys may serve reads
    (api/replicas.py): "primary" or the standby's host:port."""
    if read is None or read.served_by is None:
        return event
    return dataclasses.replace(event, detail={**event.detail, "served_by": read.served_by})


def _row_filter_applied(decision: Decision | None) -> dict[str, Any]:
    # The grant's filter as applied to this caller: the audit record names it in words.
    if decision is None or decision.grant is None or decision.grant.row_filter is None:
        return {}
    return {"row_filter": describe(decision.grant.row_filter, decision.attributes)}


def _explained(decision: Decision) -> dict[str, Any]:
    grant = decision.grant
    return {"grant": grant.id, "purpose": grant.purpose,
            "row_filter": describe(grant.row_filter, decision.attributes)}


NOT_UNDER_FILTER = "not shown: counted over every row, and your grant filters rows"


def _filtered_status(status: dict[str, Any] | None, decision: Decision) -> dict[str, Any] | None:
    """The dataset's status; a row-filtered caller gets no counts over every row."""
    if status is None or decision.rows is None or status.get("quality") is None:
        return status
    quality = {**status["quality"], "rows_published": None, "rows_quarantined": None}
    return {**status, "quality": quality}


def _without_aggregates(report: dict[str, Any]) -> dict[str, Any]:
    """A validation report without what was counted or sampled over every row."""
    rules = [{k: v for k, v in rule.items() if k not in ("quarantined", "observed")}
             | {"observed": NOT_UNDER_FILTER} for rule in report["rules"]]
    return {**report, "rows_in": None, "rows_published": None, "rows_quarantined": None,
            "rules": rules}


def _unmasked_personal(decision: Decision | None, contract: Contract | None) -> list[str]:
    if decision is None or contract is None:
        return []
    personal = {c.name for c in contract.columns if c.personal}
    return [c.name for c in decision.columns if c.mask is None and c.name in personal]


def _newest_of_major(state: AppState, dataset_id: str, major: int) -> StoredVersion | None:
    with state.pool.connection() as conn:  # rare: the registry's queries stay sync
        return newest_of_major(conn, dataset_id, major)


def _grant_window(grant: Any) -> dict[str, str | None]:
    # Kept with each read so an auditor can later check it fell inside the grant's window;
    # with the day it was decided on, which differs from occurred_at under HUB_CLOCK.
    if grant is None:
        return {}
    return {"valid_from": grant.valid_from and grant.valid_from.isoformat(),
            "valid_until": grant.valid_until and grant.valid_until.isoformat(),
            "decided_on": clock.today().isoformat()}


def _summary(contract: Contract, status: dict[str, Any] | None) -> dict[str, Any]:
    status = status or {}
    return {
        "id": contract.dataset_id, "status": contract.status, "title": contract.title,
        "owner": contract.owner,
        "department": contract.department, "description": contract.description,
        "grain": contract.grain, "contract_version": contract.version,
        "published_version": status.get("version"), "published_at": status.get("published_at"),
        "quality": status.get("quality"),
        "schema": [{"name": c.name, "type": c.logical_type, "personal": c.personal}
                   for c in contract.columns],
    }
