"""Shared datasets: the caller's catalog and the rows, under the access policies.

Every request here leaves one audit row, allowed or denied. For an allowed read the rows
and their audit row are fetched and written in one transaction, which commits before the
response is built: no data leaves without its record.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, Request, Response
from psycopg import sql

from access_policies import Decision, decide
from access_policies.masking import mask_rows
from api.deps import (
    AppState,
    Principal,
    RequestIdDep,
    StateDep,
    authenticate,
    json_response,
)
from api.errors import ApiError, forbidden
from contracts import Contract
from hub.audit import AuditEvent, record

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get("")
def list_datasets(request: Request, state: StateDep, _rid: RequestIdDep) -> Response:
    """The datasets the caller may read, with owner, description and schema."""
    principal = _authorize(request, state, dataset=None)
    visible = [c for c in state.contracts.values() if _decision(state, principal, c).allowed]
    with state.pool.connection() as conn:
        versions = _latest_versions(conn)
        record(conn, _event(request, "catalog.read", principal, None, "allow", "catalog", 200))
    return json_response({"datasets": [_summary(c, versions.get(c.dataset_id)) for c in visible]})


@router.get("/{dataset_id}")
def get_dataset(dataset_id: str, request: Request, state: StateDep,
                _rid: RequestIdDep) -> Response:
    """One dataset's description and the columns the caller will see (and how masked)."""
    principal = _authorize(request, state, dataset=dataset_id)
    contract, decision = _grant_or_deny(request, state, principal, dataset_id)
    with state.pool.connection() as conn:
        version = _latest_versions(conn).get(dataset_id)
        record(conn, _event(request, "catalog.read", principal, dataset_id, "allow",
                            decision.reason, 200, decision=decision))
    body = _summary(contract, version)
    body["columns"] = [{"name": c.name, "mask": c.mask} for c in decision.columns]
    return json_response(body)


@router.get("/{dataset_id}/rows")
def read_rows(
    dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
    limit: Annotated[int, Query(ge=1, description="rows per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="rows to skip (or use cursor)")] = 0,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    """Rows of the newest published version, masked as the caller's grant says."""
    principal = _authorize(request, state, dataset=dataset_id)
    contract, decision = _grant_or_deny(request, state, principal, dataset_id)
    if limit > state.settings.max_rows_per_page:
        raise ApiError(400, "invalid_request",
                       f"limit: at most {state.settings.max_rows_per_page} rows per page")
    after = _decode_cursor(cursor) if cursor else None
    page = {"limit": limit, "offset": offset, "cursor": cursor}
    with state.pool.connection() as conn, conn.transaction():
        version, rows = _fetch(conn, contract, decision, limit, offset, after)
        if state.settings.audit_reads:
            record(conn, _event(request, "data.read", principal, dataset_id, "allow",
                                decision.reason, 200, decision=decision, contract=contract,
                                version=version, filters=page, rows=len(rows)))
    masked = mask_rows(rows, [c.mask for c in decision.columns], state.pseudonym_key)
    names = [c.name for c in decision.columns]
    return json_response({
        "dataset": dataset_id, "version": version, "columns": names,
        "rows": [dict(zip(names, row, strict=True)) for row in masked],
        "next_cursor": _next_cursor(contract, rows, names, limit),
    })


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
                  today=datetime.now(UTC).date())


def _audit_denial(request: Request, state: AppState, principal: Principal | None,
                  dataset: str | None, error: ApiError, reason: str | None = None) -> None:
    with state.pool.connection() as conn:
        record(conn, _event(request, "data.denied", principal, dataset, "deny",
                            reason or error.description, error.status))


def _event(request: Request, kind: str, principal: Principal | None, dataset: str | None,
           verdict: str, reason: str, status: int, decision: Decision | None = None,
           contract: Contract | None = None, **extra: Any) -> AuditEvent:
    grant = decision.grant if decision else None
    return AuditEvent(
        kind=kind, request_id=request.state.request_id, decision=verdict, reason=reason,
        status_code=status, client_id=principal.client_id if principal else None,
        role=principal.role if principal else None,
        department=principal.department if principal else None,
        purpose=grant.purpose if grant else None, grant_id=grant.id if grant else None,
        source_address=request.client.host if request.client else None, dataset=dataset,
        dataset_version=extra.get("version"),
        columns=[c.name for c in decision.columns] if decision and contract else [],
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


# ---------- reading


def _fetch(conn: psycopg.Connection, contract: Contract, decision: Decision, limit: int,
           offset: int, after: Any) -> tuple[int, list[tuple]]:
    version = _latest_versions(conn).get(contract.dataset_id)
    if version is None:
        raise ApiError(404, "not_published", f"{contract.dataset_id} has no published version "
                       "yet; run `hub run` (or wait for the next pipeline pass)")
    key = sql.Identifier(contract.primary_key[0])
    query = sql.SQL("select {cols} from {table} {where} order by {key} limit %s offset %s").format(
        cols=sql.SQL(", ").join(sql.Identifier(c.name) for c in decision.columns),
        table=sql.Identifier("shared", contract.relation_name),
        where=sql.SQL("where {} > %s").format(key) if after is not None else sql.SQL(""),
        key=key,
    )
    params = ([after] if after is not None else []) + [limit, offset]
    return version, conn.execute(query, params).fetchall()


def _latest_versions(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("select dataset, max(version) from hub.dataset_versions group by dataset")
    return dict(rows.fetchall())


def _next_cursor(contract: Contract, rows: list[tuple], names: list[str], limit: int) -> str | None:
    key = contract.primary_key[0]
    if len(rows) < limit or key not in names:
        return None
    last = rows[-1][names.index(key)]
    return base64.urlsafe_b64encode(json.dumps([last]).encode()).decode()


def _decode_cursor(cursor: str) -> Any:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))[0]
    except (binascii.Error, ValueError, IndexError, TypeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_request", "cursor: not a cursor this API returned; "
                       "pass next_cursor from the previous page unchanged") from None
    if not isinstance(value, (str, int)):
        raise ApiError(400, "invalid_request", "cursor: not a cursor this API returned")
    return value


def _summary(contract: Contract, version: int | None) -> dict[str, Any]:
    return {
        "id": contract.dataset_id, "title": contract.title, "owner": contract.owner,
        "department": contract.department, "description": contract.description,
        "grain": contract.grain, "contract_version": contract.version,
        "published_version": version,
        "schema": [{"name": c.name, "type": c.logical_type, "personal": c.personal}
                   for c in contract.columns],
    }
