"""Shared datasets: the caller's catalog and the rows, under the access policies.

Every request here leaves one audit row, allowed or denied. For an allowed read the rows
and their audit row are fetched and written in one transaction, which commits before the
response is built: no data leaves without its record.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from access_policies import Decision, decide
from access_policies.masking import mask_rows
from api import export, rows
from api.deps import (
    AppState,
    Principal,
    RequestIdDep,
    StateDep,
    authenticate,
    json_response,
    request_event,
)
from api.errors import ApiError, forbidden
from contracts import Contract, load_contract_text
from contracts.targets import to_json_schema
from hub.audit import AuditEvent, record
from hub.registry import newest_of_major

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get("")
def list_datasets(request: Request, state: StateDep, _rid: RequestIdDep) -> Response:
    """The datasets the caller may read, with owner, description and schema."""
    principal = _authorize(request, state, dataset=None)
    visible = [c for c in state.contracts.values() if _decision(state, principal, c).allowed]
    with state.pool.connection() as conn:
        status = rows.quality_status(conn)
        record(conn, _event(request, "catalog.read", principal, None, "allow", "catalog", 200))
    return json_response({"datasets": [_summary(c, status.get(c.dataset_id)) for c in visible]})


@router.get("/{dataset_id}")
def get_dataset(dataset_id: str, request: Request, state: StateDep,
                _rid: RequestIdDep) -> Response:
    """One dataset's description and the columns the caller will see (and how masked)."""
    principal = _authorize(request, state, dataset=dataset_id)
    contract, decision = _grant_or_deny(request, state, principal, dataset_id)
    with state.pool.connection() as conn:
        status = rows.quality_status(conn).get(dataset_id)
        record(conn, _event(request, "catalog.read", principal, dataset_id, "allow",
                            decision.reason, 200, decision=decision))
    body = _summary(contract, status)
    body["columns"] = [{"name": c.name, "mask": c.mask} for c in decision.columns]
    body["row_schema"] = to_json_schema(contract)
    return json_response(body)


@router.get("/{dataset_id}/validations")
def list_validations(dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
    """The dataset's latest validation reports: every rule, held or not, and the counts of
    the gate (rows in, published, quarantined). Visible to whoever may read the dataset."""
    principal = _authorize(request, state, dataset=dataset_id)
    _grant_or_deny(request, state, principal, dataset_id)
    with state.pool.connection() as conn:
        found = conn.execute(
            "select run_id, contract_version, passed, rows_in, rows_passed, rows_quarantined,"
            " rules, created_at from hub.validation_reports where dataset = %s"
            " order by created_at desc limit %s", [dataset_id, limit]).fetchall()
    keys = ("run_id", "contract_version", "passed", "rows_in", "rows_published",
            "rows_quarantined", "rules", "created_at")
    return json_response({"dataset": dataset_id,
                          "reports": [dict(zip(keys, r, strict=True)) for r in found]})


@router.get("/{dataset_id}/rows")
def read_rows(
    dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
    limit: Annotated[int, Query(ge=1, description="rows per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="rows to skip (or use cursor)")] = 0,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    select: Annotated[str | None, Query(description="columns, e.g. sr_number,status")] = None,
    order: Annotated[str | None, Query(description="e.g. created_date.desc")] = None,
    format: Annotated[Literal["json", "ndjson", "csv"], Query()] = "json",
    major: Annotated[int | None, Query(ge=1, description="an older major version of the "
                                       "contract, served until its deprecation date")] = None,
) -> Response:
    """Rows of the newest published version, masked as the caller's grant says.

    Filter with `column=op.value` (eq, neq, gt, gte, lt, lte, in, like, is) on columns
    you see unmasked."""
    principal = _authorize(request, state, dataset=dataset_id)
    contract, decision = _grant_or_deny(request, state, principal, dataset_id)
    relation = None
    if major is not None and major != contract.major:
        contract, relation = _older_major(state, dataset_id, major)
        decision = _decision(state, principal, contract)
    page = rows.Page.parse(request, state.settings, decision, limit, offset, cursor)
    with state.pool.connection() as conn, conn.transaction():
        version, found = rows.fetch(conn, contract, page, relation)
        if state.settings.audit_reads:
            record(conn, _event(request, "data.read", principal, dataset_id, "allow",
                                decision.reason, 200, decision=decision, contract=contract,
                                version=version, filters=page.audit_record(),
                                rows=len(found), columns=page.query.select))
    masks = {c.name: c.mask for c in decision.columns}
    masked = mask_rows(found, [masks[c] for c in page.query.select], state.pseudonym_key)
    return rows.render(format, dataset_id, version, page, masked, found, contract)


@router.get("/{dataset_id}/export")
def export_rows(
    dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
    select: Annotated[str | None, Query(description="columns, e.g. sr_number,status")] = None,
    order: Annotated[str | None, Query(description="e.g. created_date.desc")] = None,
    format: Annotated[Literal["ndjson", "csv"], Query()] = "ndjson",
    limit: Annotated[int | None, Query(ge=1, description="at most HUB_MAX_EXPORT_ROWS")] = None,
) -> Response:
    """Every row matching the filters, streamed as NDJSON or CSV and masked as the caller's
    grant says. Audited when it starts and when it ends (rows and bytes sent)."""
    principal = _authorize(request, state, dataset=dataset_id)
    contract, decision = _grant_or_deny(request, state, principal, dataset_id)
    cap = state.settings.max_export_rows
    page = rows.Page.parse(request, state.settings, decision, limit or cap, 0, None, cap=cap)
    with state.pool.connection() as conn, conn.transaction():
        version = rows.fetch(conn, contract, dataclasses.replace(page, limit=0))[0]
        started = _event(request, "data.export", principal, dataset_id, "allow",
                         decision.reason, 200, decision=decision, contract=contract,
                         version=version, filters=page.audit_record(),
                         columns=page.query.select)
        record(conn, started)  # before the first byte leaves
    masks = {c.name: c.mask for c in decision.columns}

    def done(sent: export.Sent) -> None:
        with state.pool.connection() as conn:
            record(conn, dataclasses.replace(
                started, kind="data.export.completed", rows_returned=sent.rows,
                detail={**started.detail, "bytes": sent.bytes, "outcome": sent.outcome}))

    media = "application/x-ndjson" if format == "ndjson" else "text/csv"
    return StreamingResponse(
        export.stream(state, contract, page, [masks[c] for c in page.query.select], format,
                      None, done), media_type=media)


def _older_major(state: AppState, dataset_id: str, major: int) -> tuple[Contract, str]:
    """The contract and table of an older major version still within its notice period."""
    with state.pool.connection() as conn:
        found = newest_of_major(conn, dataset_id, major)
    if found is None or found[1] is None:
        raise ApiError(404, "not_found", f"major: {dataset_id} has no older major version "
                       f"{major}; omit major= for the current one")
    if found[1] < datetime.now(UTC).date():
        raise ApiError(410, "gone", f"major: version {major} of {dataset_id} was served until "
                       f"{found[1]}; move to the current major version")
    older = load_contract_text(found[0], f"{dataset_id} v{major}")
    return older, f"{older.relation_name}__v{major}"


# ---------- authorisation (every denial is audited before it is raised)


def _authorize(request: Request, state: AppState, dataset: str | None) -> Principal:
    try:
        principal = authenticate(request, state)
        principal.require("datasets:read")
    except ApiError as exc:
        _audit_denial(request, state, None, dataset, exc)
        raise
    request.state.principal = principal
    return principal


def _grant_or_deny(request: Request, state: AppState, principal: Principal,
                   dataset_id: str) -> tuple[Contract, Decision]:
    contract = state.contracts.get(dataset_id)
    decision = _decision(state, principal, contract) if contract else None
    if contract is None or not decision.allowed:
        # Unknown and not-granted look alike, so ids of hidden datasets do not leak.
        reason = decision.reason if decision else f"unknown dataset {dataset_id!r}"
        error = forbidden(f"no grant lets role {principal.role} read dataset {dataset_id!r}")
        _audit_denial(request, state, principal, dataset_id, error, reason)
        raise error
    return contract, decision


def _decision(state: AppState, principal: Principal, contract: Contract) -> Decision:
    return decide(state.policy, role=principal.role, contract=contract,
                  today=datetime.now(UTC).date(), client_id=principal.client_id,
                  extra=state.request_grants.current())


def _audit_denial(request: Request, state: AppState, principal: Principal | None,
                  dataset: str | None, error: ApiError, reason: str | None = None) -> None:
    with state.pool.connection() as conn:
        record(conn, _event(request, "data.denied", principal, dataset, "deny",
                            reason or error.description, error.status))


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
        detail=_grant_window(grant),
    )


def _unmasked_personal(decision: Decision | None, contract: Contract | None) -> list[str]:
    if decision is None or contract is None:
        return []
    return [c.name for c in decision.columns if c.mask is None and contract.column(c.name).personal]


def _grant_window(grant: Any) -> dict[str, str | None]:
    # Kept with each read so an auditor can later check it fell inside the grant's window.
    if grant is None:
        return {}
    return {"valid_from": grant.valid_from and grant.valid_from.isoformat(),
            "valid_until": grant.valid_until and grant.valid_until.isoformat()}


def _summary(contract: Contract, status: dict[str, Any] | None) -> dict[str, Any]:
    status = status or {}
    return {
        "id": contract.dataset_id, "title": contract.title, "owner": contract.owner,
        "department": contract.department, "description": contract.description,
        "grain": contract.grain, "contract_version": contract.version,
        "published_version": status.get("version"), "published_at": status.get("published_at"),
        "quality": status.get("quality"),
        "schema": [{"name": c.name, "type": c.logical_type, "personal": c.personal}
                   for c in contract.columns],
    }
