"""Access requests in the console: staff ask for a dataset they cannot read; the owning
department's data admins (grants:admin) approve or reject. Each step is the function of the
matching API route (api/routes/access_requests.py), audited the same way."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.console.web import guard, render
from api.deps import AppState, Principal, StateDep
from api.errors import ApiError, ensure_request_id
from api.routes import access_requests as api_requests
from api.routes import notifications as api_notifications
from hub import clock

router = APIRouter(prefix="/console", include_in_schema=False)
STAFF = guard("datasets:read")
ADMIN = guard("grants:admin")
NOTIFIED = guard("datasets:read", "contracts:write", "grants:admin")


@router.get("/requests")
async def my_requests(request: Request, state: StateDep, principal: Principal = STAFF) -> Response:
    """The state of my access requests."""
    found = await run_in_threadpool(api_requests.list_requests, principal, state,
                                    ensure_request_id(request))
    mine = [r for r in found.access_requests if r.client_id == principal.client_id]
    return render(request, "requests.html", requests=mine)


@router.get("/requests/new")
async def new_request(request: Request, state: StateDep, principal: Principal = STAFF,
                      dataset: str = "") -> Response:
    """The form: dataset, columns, purpose and days."""
    choices = sorted((c.dataset_id, c.title) for c in state.contracts.values())
    return render(request, "request_new.html", choices=choices, chosen=dataset)


@router.post("/requests")
async def create_request(request: Request, state: StateDep,
                         principal: Principal = STAFF) -> Response:
    """Send the request; the owning department's admins see it at once."""
    form = await request.form()
    columns = [c.strip() for c in str(form.get("columns") or "").split(",") if c.strip()]
    try:
        body = api_requests.AccessRequestCreate(
            dataset=str(form.get("dataset") or ""), columns=columns or None,
            purpose=str(form.get("purpose") or ""), duration_days=form.get("days") or 0)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = {"duration_days": "days"}.get(str(first["loc"][0]), first["loc"][0])
        raise ApiError(400, "invalid_request", f"{field}: {first['msg']}") from None
    await run_in_threadpool(api_requests.request_access, principal, body, request, state,
                            ensure_request_id(request))
    return RedirectResponse("/console/requests", status_code=303)


@router.get("/notifications")
async def notifications(request: Request, state: StateDep, principal: Principal = NOTIFIED
                        ) -> Response:
    """My department's notices: failed checks, breaking changes to datasets it uses."""
    found = await run_in_threadpool(api_notifications.list_notifications, principal, state,
                                    ensure_request_id(request), None, 100)
    return render(request, "notifications.html", found=found)


@router.get("/approvals")
async def approvals(request: Request, state: StateDep, principal: Principal = ADMIN) -> Response:
    """Requests waiting on my department, and the grants they made that are in force."""
    found = await run_in_threadpool(api_requests.list_requests, principal, state,
                                    ensure_request_id(request))
    theirs = [r for r in found.access_requests if r.client_id != principal.client_id]
    today = clock.today()
    # The policy file's standing grants on my department's datasets, beside the grants
    # from requests: together, every grant in force on our data.
    standing = [g for g in state.policy.grants
                if state.contracts.get(g.dataset) is not None
                and state.contracts[g.dataset].department == principal.department
                and (g.valid_until is None or g.valid_until >= today)]
    return render(request, "approvals.html", today=today, standing=standing,
                  pending=[r for r in theirs if r.status == "pending"],
                  granted=[r for r in theirs if r.status == "approved"
                           and r.valid_until is not None and r.valid_until >= today])


@router.post("/approvals/{request_id}")
async def decide(request_id: uuid.UUID, request: Request, state: StateDep,
                 principal: Principal = ADMIN) -> Response:
    """Approve (a working, time-bound grant at once) or reject, saying why, a pending
    request: the API's own functions, so the reason is kept, audited and shown."""
    form = await request.form()
    choice = str(form.get("decision") or "")
    if choice not in ("approve", "reject"):
        raise ApiError(400, "invalid_request", "decision: approve or reject")
    reason = str(form.get("reason") or "").strip()
    if choice == "reject" and len(reason) < 5:
        raise ApiError(400, "invalid_request", "reason: say why you reject the request "
                       "(at least 5 characters); the requester will read it")
    await run_in_threadpool(_decide, choice, principal, request_id, request, state, reason)
    return RedirectResponse("/console/approvals", status_code=303)


def _decide(choice: str, principal: Principal, request_id: uuid.UUID, request: Request,
            state: AppState, reason: str) -> Any:
    rid = ensure_request_id(request)
    if choice == "approve":
        return api_requests.approve(principal, request_id, request, state, rid)
    return api_requests.reject(principal, request_id, request, state, rid,
                               api_requests.Rejection(reason=reason))
