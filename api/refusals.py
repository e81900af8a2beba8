"""Every refused request to the data, contract, grant and audit routes is on record.

The error handlers (api/errors.py) call `record_refusal` with each 4xx they answer. The
record says who was refused (the verified caller, else the client a valid token names,
else the address), which route and dataset, the reason and the request id. Records go
through hub/refusals.py, at most one per client and reason per second, each with the count
of refusals it stands for. Allowed requests never come here: the hot path is unchanged.

A filter, order or select naming a column the caller sees masked or cannot see is marked
as a probe (`detail.probe`): hub/anomalies.py flags bursts of them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.deps import AppState, client_address
from api.errors import ApiError, ensure_request_id
from hub.audit import AuditEvent

# Route prefix -> kind of the refusal's audit record.
# The console's pages (api/console/) are refused on record under the same kinds.
AUDITED = {"/datasets": "data.denied", "/contracts": "contract.denied",
           "/access-requests": "access_request.denied", "/audit": "audit.denied",
           "/feedback": "feedback.denied", "/console/feedback": "feedback.denied",
           "/console/datasets": "data.denied", "/console/catalog": "data.denied",
           "/console/quality": "data.denied",
           "/console/contracts": "contract.denied", "/console/requests": "access_request.denied",
           "/console/approvals": "access_request.denied", "/console/audit": "audit.denied"}


def refusal_kind(path: str) -> str | None:
    """The audit kind of a refusal on `path`, or None where refusals are not audited here
    (the token and sign-in routes record their own refusals)."""
    for prefix, kind in AUDITED.items():
        if path == prefix or path.startswith(prefix + "/"):
            return kind
    return None


async def record_refusal(request: Request, error: ApiError) -> None:
    """Put a refused request on record (waiting for the commit when a record is written
    now); errors of other routes and server errors are not refusals and pass."""
    kind = refusal_kind(request.url.path)
    if kind is None or not 400 <= error.status < 500:
        return
    state: AppState = request.app.state.hub
    await state.refusals.refuse(refusal_event(request, state, kind, error))


def refusal_event(request: Request, state: AppState, kind: str, error: ApiError) -> AuditEvent:
    dataset = request.path_params.get("dataset_id")
    facts = {k: v for k, v in error.audit.items() if k != "reason"}
    if facts.get("probe") == "unknown_column" and _is_column(state, dataset, facts["column"]):
        facts["probe"] = "hidden_column"  # it exists: the caller's grant hides it
    detail = {"error": error.code, "method": request.method, "path": request.url.path,
              **facts}
    return AuditEvent(
        kind=kind, request_id=ensure_request_id(request), decision="deny",
        reason=error.audit.get("reason") or error.description, status_code=error.status,
        dataset=dataset if isinstance(dataset, str) else None,
        source_address=client_address(request), detail=detail, **_caller(request, state))


def _caller(request: Request, state: AppState) -> dict[str, Any]:
    """Who was refused: the verified caller; before authentication ran (a bad parameter),
    the client a valid token of ours names; else nobody (the address is kept)."""
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return {"client_id": principal.client_id, "role": principal.role,
                "department": principal.department}
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or (state.idp and state.idp.handles(token)):
        return {}
    try:
        claims = state.tokens.claims(token)  # signature and times; memoised per token
    except ApiError:
        return {}
    return {"client_id": str(claims["sub"]), "role": str(claims.get("role", "")) or None,
            "department": str(claims.get("department", "")) or None}


def _is_column(state: AppState, dataset: Any, column: Any) -> bool:
    contract = state.contracts.get(dataset) if isinstance(dataset, str) else None
    return contract is not None and any(c.name == column for c in contract.columns)
