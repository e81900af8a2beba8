"""Access requests: staff ask for a dataset; the owning department's admins decide.

An approved request works at once as a grant to the requesting client and expires by
itself after the requested days. Every step is audited; nobody decides their own request.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import Principal, RequestIdDep, StateDep, request_event, scoped
from api.errors import ApiError, forbidden
from api.models import AccessRequest, AccessRequestCreated, AccessRequests
from api.openapi import token_scopes
from hub import access_requests as requests_
from hub import clock
from hub.audit import record

router = APIRouter(prefix="/access-requests", tags=["access requests"])


class AccessRequestCreate(BaseModel):
    """What a member of staff asks for."""

    dataset: str
    columns: list[str] | None = Field(None, description="omit for every column")
    purpose: str = Field(min_length=10, max_length=1000)
    duration_days: int = Field(ge=1, le=365)


@router.post("", status_code=201, openapi_extra=token_scopes("datasets:read"))
def request_access(principal: Annotated[Principal, scoped("datasets:read")],
                   body: AccessRequestCreate, request: Request, state: StateDep,
                   _rid: RequestIdDep) -> AccessRequestCreated:
    """Ask for access to a dataset, for a purpose and a number of days."""
    contract = state.contracts.get(body.dataset)
    if contract is None:
        raise ApiError(400, "invalid_request", f"dataset: unknown dataset {body.dataset!r}")
    unknown = sorted(set(body.columns or []) - {c.name for c in contract.columns})
    if unknown:
        raise ApiError(400, "invalid_request", f"columns: {body.dataset} has no column "
                       f"{unknown[0]!r}")
    new = requests_.NewRequest(body.dataset, principal.client_id, principal.role,
                               principal.department, body.columns, body.purpose,
                               body.duration_days)
    with state.pool.connection() as conn, conn.transaction():
        request_id = requests_.create(conn, new)
        _audit(conn, request, principal, "access_request.created", body.dataset,
               {"request_id": str(request_id), "columns": body.columns,
                "duration_days": body.duration_days}, purpose=body.purpose)
    return AccessRequestCreated(request_id=request_id, status="pending")


@router.get("", openapi_extra=token_scopes("datasets:read", "grants:admin"))
def list_requests(principal: Annotated[Principal, scoped("datasets:read", "grants:admin")],
                  state: StateDep, _rid: RequestIdDep) -> AccessRequests:
    """Your own requests, and (for admins) those waiting on your department."""
    with state.pool.connection() as conn:
        found = requests_.listing(conn, client_id=principal.client_id,
                                  datasets=_decidable(state, principal))
    return AccessRequests.model_validate({"access_requests": found})


@router.post("/{request_id}/approve", openapi_extra=token_scopes("grants:admin"))
def approve(principal: Annotated[Principal, scoped("grants:admin")], request_id: uuid.UUID,
            request: Request, state: StateDep, _rid: RequestIdDep) -> AccessRequest:
    """Approve: the request becomes a working, time-bound grant at once."""
    return _decide(principal, request_id, request, state, approve=True)


class Rejection(BaseModel):
    """Why a request is rejected: kept, audited and shown to the requester."""

    reason: str = Field(min_length=5, max_length=1000)


@router.post("/{request_id}/reject", openapi_extra=token_scopes("grants:admin"))
def reject(principal: Annotated[Principal, scoped("grants:admin")], request_id: uuid.UUID,
           request: Request, state: StateDep, _rid: RequestIdDep,
           body: Rejection | None = None) -> AccessRequest:
    """Reject a pending request, saying why (`{"reason": ...}`): the requester sees it."""
    if body is None or not body.reason.strip():
        raise ApiError(400, "invalid_request", 'reason: say why in the body, e.g. {"reason": '
                       '"the purpose does not need the addresses"}')
    return _decide(principal, request_id, request, state, approve=False,
                   reason=body.reason.strip())


def _decide(principal: Principal, request_id: uuid.UUID, request: Request, state: Any, *,
            approve: bool, reason: str | None = None) -> AccessRequest:
    with state.pool.connection() as conn, conn.transaction():
        found = requests_.get(conn, request_id)
        if found is None:
            raise ApiError(404, "not_found", f"no access request {request_id}")
        if found["dataset"] not in _decidable(state, principal):
            raise forbidden("only admins of the dataset's owning department decide its requests")
        try:
            decided = requests_.decide(conn, request_id, approve=approve,
                                       decided_by=principal.client_id,
                                       today=clock.today(), reason=reason)
        except requests_.RequestError as exc:
            status = 403 if "own" in str(exc) else 409
            raise ApiError(status, "access_denied" if status == 403 else "conflict",
                           str(exc)) from None
        _audit(conn, request, principal, f"access_request.{decided['status']}",
               decided["dataset"], {"request_id": str(request_id),
                                    "requester": decided["client_id"],
                                    "valid_until": decided["valid_until"] and
                                    decided["valid_until"].isoformat(),
                                    "reason": reason})
    state.request_grants.invalidate()
    return AccessRequest.model_validate(decided)


def _decidable(state: Any, principal: Principal) -> list[str]:
    if "grants:admin" not in principal.scopes:
        return []
    return [d for d, c in state.contracts.items() if c.department == principal.department]


def _audit(conn: Any, request: Request, principal: Principal, kind: str, dataset: str,
           detail: dict, purpose: str | None = None) -> None:
    record(conn, request_event(request, kind, principal, decision="allow", reason=kind,
                               status_code=200, dataset=dataset, purpose=purpose,
                               detail=detail))
