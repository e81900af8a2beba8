"""The contract registry over HTTP: department engineers register their own contracts.

POST takes the ODCS YAML as the request body. Lint errors come back as one 400 naming each
field; a breaking change without a major version bump is a 409 listing the breaks. A
registration answers with what happens next: lint warnings, the breaking-change verdict
against the version in force, and when the dataset will publish. GET shows where the
dataset stands, derived from the warehouse (hub/onboarding.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.deps import Principal, RequestIdDep, StateDep, scoped
from api.errors import ApiError, forbidden
from api.models import ContractHistory, Registration
from api.onboarding_models import NextPublish
from api.openapi import token_scopes
from contracts import Contract, ContractError, load_contract_text
from contracts.advice import lint_warnings
from contracts.resolve import MAX_BYTES
from hub import registry
from hub.onboarding import for_outsider, next_publish, onboarding_state, verdict
from hub.registry import RegistrationRefused, UnknownType, history, register

router = APIRouter(prefix="/contracts", tags=["contracts"])


async def contract_text(request: Request) -> str:
    """The request body as contract text, refused before reading when it is too large."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_BYTES:
        raise ApiError(413, "invalid_request", f"body: contracts are limited to {MAX_BYTES} "
                       "bytes")
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", "body: send the contract as UTF-8 YAML") from None


@router.post("", status_code=201, responses={200: {
    "model": Registration, "description": "This version was registered before with the same "
    "content: nothing changed"}}, openapi_extra=token_scopes("contracts:write") | {
    "requestBody": {"required": True,
                    "content": {"application/yaml": {"schema": {"type": "string"}}}}})
def register_contract(principal: Annotated[Principal, scoped("contracts:write")],
                      text: Annotated[str, Depends(contract_text)], state: StateDep,
                      response: Response, _rid: RequestIdDep) -> Registration:
    """Register a new version of one of your department's contracts (ODCS v3 YAML body)."""
    try:
        contract = load_contract_text(text, "request body")
    except ContractError as exc:
        raise ApiError(400, "invalid_contract", "; ".join(
            f"{path}: {message}" for path, message in exc.problems)) from None
    if contract.department != principal.department:
        raise forbidden(f"domain: this contract belongs to {contract.department!r}; you may "
                        f"register contracts of {principal.department!r} only")
    try:
        with state.pool.connection() as conn, conn.transaction():
            done = register(conn, contract, text, principal.client_id, state.policy)
    except UnknownType as exc:
        raise ApiError(400, "invalid_contract", str(exc)) from None
    except RegistrationRefused as exc:
        raise ApiError(409, "breaking_change" if exc.breaks else "version_conflict",
                       str(exc)) from None
    if state.catalog is not None:  # this worker serves the new version from its next request
        state.catalog.invalidate()
    response.status_code = 201 if done.status == "registered" else 200
    return _registration(done, contract, state.settings.deployments_file)


@router.get("/{dataset_id}", openapi_extra=token_scopes("contracts:write", "datasets:read"))
def contract_history(dataset_id: str,
                     principal: Annotated[Principal, scoped("contracts:write", "datasets:read")],
                     state: StateDep, _rid: RequestIdDep) -> ContractHistory:
    """Where the dataset stands (registered, awaiting its first load, published, failing
    with the reason, retired) and every registered version of its contract, newest first.
    A failing pass's reasons are shown to the owning department only: they can quote data."""
    with state.pool.connection() as conn:
        versions = history(conn, dataset_id)
        onboarding = onboarding_state(conn, dataset_id)
    if not versions or onboarding is None:
        raise ApiError(404, "not_found", f"no contract registered for {dataset_id!r}")
    if dataset_id.partition(".")[0] != principal.department:
        onboarding = for_outsider(onboarding)
    return ContractHistory.model_validate({"dataset": dataset_id, "onboarding": onboarding,
                                           "versions": versions})


def _registration(done: registry.Registration, contract: Contract,
                  deployments_file: Path) -> Registration:
    return Registration(
        dataset=done.dataset, version=done.version, status=done.status,
        lint_warnings=lint_warnings(contract), compared_with=done.compared_with,
        verdict=verdict(done), breaking_changes=list(done.breaking_changes),
        other_changes=list(done.other_changes), notified=done.notified,
        previous_major_served_until=done.deprecated_after,
        publishes=NextPublish.model_validate(next_publish(contract, deployments_file)))
