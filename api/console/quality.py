"""Department engineers (contracts:write): their datasets' quality. Where the dataset
stands (GET /contracts/{id}: registered, awaiting its first load, published, failing with
the reason), every rule of each validation run, passed or not (GET /datasets/{id}/validations),
and the quarantine: the rows held back with the rules they broke and why
(GET /datasets/{id}/quarantine, own department only). Each is the API route's function,
called as the signed-in person, so the same checks and the same audit apply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.console.web import guard, render
from api.deps import Principal, StateDep
from api.errors import ensure_request_id
from api.routes import contracts as contract_routes
from api.routes import datasets, quarantine

router = APIRouter(prefix="/console", include_in_schema=False)
ENGINEER = guard("contracts:write")
PAGE = 50


@router.get("/quality")
async def own_datasets(request: Request, state: StateDep,
                       principal: Principal = ENGINEER) -> Response:
    """My department's datasets, each linking to its quality page."""
    mine = sorted((c.dataset_id, c.title) for c in state.contracts.values()
                  if c.department == principal.department)
    return render(request, "quality_list.html", mine=mine)


@router.get("/datasets/{dataset_id}/quality")
async def quality(dataset_id: str, request: Request, state: StateDep,
                  principal: Principal = ENGINEER,
                  offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    """The onboarding state, the validation reports (every rule) and a page of quarantine."""
    rid = ensure_request_id(request)
    # First: it refuses another department's engineer before anything is read.
    held = await quarantine.read_quarantine(dataset_id, request, state, rid, limit=PAGE,
                                            offset=offset)
    reports = await datasets.list_validations(dataset_id, request, state, rid, limit=10)
    history = await run_in_threadpool(contract_routes.contract_history, dataset_id,
                                      principal, state, rid)
    base = f"/console/datasets/{dataset_id}/quality"
    links = {"previous": f"{base}?offset={max(0, offset - PAGE)}" if offset else "",
             "next": f"{base}?offset={offset + PAGE}" if offset + PAGE < min(
                 held.total, state.settings.max_offset + 1) else ""}
    return render(request, "quality.html", dataset_id=dataset_id, held=held,
                  reports=reports.reports, onboarding=history.onboarding, links=links,
                  offset=offset)
