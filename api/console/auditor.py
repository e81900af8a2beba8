"""Auditor pages (scope audit:read): event search with filters and paging, its CSV export,
and the ledger's state. Audit records only: no page here ever shows a dataset's rows.

The search is the API's GET /audit/events function, so the auditor's read of the log is
itself on record (kind audit.read) exactly as over the API.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.console import charts
from api.console.web import guard, render, secure
from api.deps import AppState, Principal, StateDep
from api.errors import ApiError, ensure_request_id
from api.models import AuditEvents
from api.routes import audit as audit_routes
from api.routes.transparency import latest_checkpoint
from hub import ledger
from hub.retention import verify_database

router = APIRouter(prefix="/console/audit", include_in_schema=False)
AUDITOR = guard("audit:read")
FILTERS = ("client_id", "role", "department", "dataset", "decision", "kind")
COLUMNS = ("event_id", "occurred_at", "kind", "client_id", "role", "department", "dataset",
           "decision", "status_code", "rows_returned", "columns", "reason")
PAGE = 50


@router.get("")
async def events(request: Request, state: StateDep, principal: Principal = AUDITOR) -> Response:
    """Events filtered by who, which dataset, what and the outcome; paged by event id."""
    given = _filters(request)
    found = await _search(request, state, principal, given, PAGE)
    query = [(k, v) for k, v in given.items() if v]
    more = urlencode([*query, ("after", found.next_after)]) if found.next_after else ""
    return render(request, "audit.html", found=found, given=given, columns=COLUMNS,
                  next_link=f"/console/audit?{more}" if more else "",
                  export_link=f"/console/audit/export?{urlencode(query)}")


@router.get("/export")
async def export(request: Request, state: StateDep, principal: Principal = AUDITOR) -> Response:
    """The current search as CSV (at most 1000 events: narrow the filters for more)."""
    found = await _search(request, state, principal, _filters(request), 1000)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for event in found.events:
        writer.writerow(_cell(getattr(event, c)) for c in COLUMNS)
    answer = Response(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="audit-events.csv"'})
    return secure(answer)


@router.get("/ledger")
async def ledger_state(request: Request, state: StateDep,
                       principal: Principal = AUDITOR) -> Response:
    """The last signed checkpoint and what `hub audit verify` says of the chain now."""
    checkpoint, verified = await run_in_threadpool(_ledger, request, state, principal)
    return render(request, "ledger.html", checkpoint=checkpoint, verified=verified)


@router.get("/anomalies")
async def anomalies(request: Request, state: StateDep, principal: Principal = AUDITOR) -> Response:
    """Anomaly flags of the last 30 days and what triggered each (GET /audit/anomalies)."""
    found = await run_in_threadpool(audit_routes.anomaly_flags, principal, request, state)
    return render(request, "anomalies.html", found=found)


@router.get("/activity")
async def activity(request: Request, state: StateDep, principal: Principal = AUDITOR,
                   bucket: str = "day") -> Response:
    """Charts of reads and denials over time by department (GET /audit/activity)."""
    if bucket not in ("hour", "day"):
        raise ApiError(400, "invalid_request", "bucket: hour or day")
    found = await run_in_threadpool(audit_routes.activity, principal, request, state,
                                    bucket=bucket)
    label = "%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"
    drawn = {}
    for outcome in ("read", "denied"):
        values = [{"at": c.at.strftime(label), "department": c.department, "events": c.events}
                  for c in found.counts if c.outcome == outcome]
        drawn[outcome] = await charts.bars(values, "at", "events", "department",
                                           "When (UTC)", "Events")
    return render(request, "activity.html", found=found, charts=drawn, bucket=bucket,
                  label=label)


@router.get("/datasets/{dataset_id}")
async def access_report(dataset_id: str, request: Request, state: StateDep,
                        principal: Principal = AUDITOR) -> Response:
    """Who read a dataset, which columns, how many rows (the API's access report)."""
    found = await run_in_threadpool(audit_routes.access_report, dataset_id, principal, request,
                                    state, ensure_request_id(request))
    return render(request, "access_report.html", report=found,
                  datasets=sorted(state.contracts))


def _ledger(request: Request, state: AppState, principal: Principal) -> tuple[Any, Any]:
    key = ledger.load_signing_key(state.settings.keys_dir).public_key()
    with state.pool.connection() as conn, conn.transaction():
        checkpoint = latest_checkpoint(conn, state.settings.keys_dir)
        verified = verify_database(conn, key)
        audit_routes._record_read(conn, request, principal, "ledger", {})
    return checkpoint, verified


async def _search(request: Request, state: AppState, principal: Principal,
                  given: dict[str, str], limit: int) -> AuditEvents:
    after = request.query_params.get("after", "0")
    if not after.isdigit():
        raise ApiError(400, "invalid_request", "after: the event id to page from, e.g. 0")
    chosen = {k: v or None for k, v in given.items()}
    return await run_in_threadpool(
        audit_routes.search_events, principal, request, state, after=int(after), limit=limit,
        **chosen)


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FILTERS}


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)
