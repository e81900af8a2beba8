"""Department engineers (contracts:write): paste an ODCS contract, see the lint result
with field paths and the changes against the registered version, then register it.

Registering is the API's POST /contracts function: the same department check, the same
refusal of a breaking change without a major version bump, on record the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.console.web import guard, render
from api.deps import AppState, Principal, StateDep
from api.errors import ApiError, ensure_request_id
from api.refusals import record_refusal
from api.routes import contracts as contract_routes
from contracts import ContractError, load_contract_text
from contracts.diff import diff
from contracts.resolve import MAX_BYTES
from hub.registry import latest_version

router = APIRouter(prefix="/console/contracts", include_in_schema=False)
ENGINEER = guard("contracts:write")


@router.get("")
async def paste(request: Request, principal: Principal = ENGINEER) -> Response:
    """The form: paste a contract's YAML."""
    return render(request, "contracts.html", text="", result=None)


@router.post("")
async def check(request: Request, state: StateDep, principal: Principal = ENGINEER) -> Response:
    """Lint, compare with the registered version, and register when asked to."""
    form = await request.form()
    text = str(form.get("contract") or "")
    if len(text.encode()) > MAX_BYTES:
        raise ApiError(413, "invalid_request", f"contract: at most {MAX_BYTES} bytes")
    result = await run_in_threadpool(_checked, state, text)
    status = 400 if result["problems"] else 200
    if not result["problems"] and form.get("action") == "register":
        result["registered"], status = await _register(request, state, principal, text)
    return render(request, "contracts.html", status, text=text, result=result)


def _checked(state: AppState, text: str) -> dict[str, Any]:
    """Lint problems (field path, message), else the changes against the registered version."""
    try:
        contract = load_contract_text(text, "pasted contract")
    except ContractError as exc:
        return {"problems": list(exc.problems), "breaking": [], "other": [], "previous": None}
    with state.pool.connection() as conn:
        latest = latest_version(conn, contract.dataset_id)
    if latest is None:
        return {"problems": [], "breaking": [], "other": [], "previous": None,
                "dataset": contract.dataset_id, "version": contract.version}
    old = load_contract_text(latest.source_text, f"{contract.dataset_id}@{latest.version}")
    changes = diff(old, contract)
    return {"problems": [], "breaking": list(changes.breaking), "other": list(changes.other),
            "previous": latest.version, "dataset": contract.dataset_id,
            "version": contract.version}


async def _register(request: Request, state: AppState, principal: Principal,
                    text: str) -> tuple[dict[str, Any], int]:
    """The API's registration; a refusal is shown on the page and put on record as the
    error handlers would."""
    try:
        done = await run_in_threadpool(
            contract_routes.register_contract, principal, text, state, Response(),
            ensure_request_id(request))
    except ApiError as error:
        await record_refusal(request, error)
        return {"refused": error.description, "code": error.code}, error.status
    return {"status": done.status, "version": done.version,
            "notified": done.notified}, 201 if done.status == "registered" else 200
