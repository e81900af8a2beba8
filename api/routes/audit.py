"""Auditor routes (scope `audit:read`, no dataset rows): search, access reports, anomalies.

An auditor's reads of the audit log are themselves recorded (kind `audit.read`).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from psycopg import sql
from psycopg.rows import dict_row

from api.deps import (
    Principal,
    PrincipalDep,
    RequestIdDep,
    StateDep,
    authenticate,
    request_event,
)
from api.errors import ApiError, forbidden
from api.models import AccessReport, Activity, Anomalies, AuditEvents
from api.openapi import token_scopes
from hub import anomalies
from hub.audit import record

router = APIRouter(prefix="/audit", tags=["audit"])


async def auditor(request: Request, state: StateDep, _rid: RequestIdDep) -> Principal:
    """A dependency: the caller, holding `audit:read`. Refusals are on record too
    (`audit.denied`, by the error handlers: api/refusals.py)."""
    principal = await authenticate(request, state)
    principal.require("audit:read")
    return principal


AuditorDep = Annotated[Principal, Depends(auditor)]
Since = Annotated[datetime | None, Query(description="ISO time, inclusive (default: 30 days ago)")]
Until = Annotated[datetime | None, Query(description="ISO time, exclusive (default: now)")]
SEARCH_FILTERS = ("client_id", "role", "department", "dataset", "decision", "kind")


@router.get("/events", openapi_extra=token_scopes("audit:read"))
def search_events(
    principal: AuditorDep, request: Request, state: StateDep, since: Since = None,
    until: Until = None, client_id: str | None = None, role: str | None = None,
    department: str | None = None, dataset: str | None = None, decision: str | None = None,
    kind: str | None = None, after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEvents:
    """Audit events in a time window, filtered; page with `after` = the last event_id."""
    start, end = _window(since, until)
    given = {k: v for k, v in locals().items() if k in SEARCH_FILTERS and v is not None}
    where = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in given]
    query = sql.SQL("select * from audit.events where occurred_at >= %s and occurred_at < %s"
                    " and event_id > %s {} order by event_id limit %s").format(
        sql.SQL(" ").join(sql.SQL("and ") + w for w in where))
    with state.pool.connection() as conn, conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            events = cur.execute(query, [start, end, after, *given.values(), limit]).fetchall()
        _record_read(conn, request, principal, "events", given)
    next_after = events[-1]["event_id"] if len(events) == limit else None
    return AuditEvents.model_validate({"events": events, "next_after": next_after})


# datasets:read serves only the dataset's owning department.
@router.get("/datasets/{dataset_id}/access-report",
            openapi_extra=token_scopes("audit:read", "datasets:read"))
def access_report(dataset_id: str, principal: PrincipalDep, request: Request, state: StateDep,
                  _rid: RequestIdDep, since: Since = None, until: Until = None) -> AccessReport:
    """Who read this dataset, which columns, how many rows: for auditors (audit:read) and
    the owning department (datasets:read)."""
    # Not AuditorDep: the owning department may read this too.
    contract = state.contracts.get(dataset_id)
    owner = (contract is not None and principal.department == contract.department
             and "datasets:read" in principal.scopes)
    if "audit:read" not in principal.scopes and not owner:
        raise forbidden("the access report is for auditors and the owning department")
    start, end = _window(since, until)
    with state.pool.connection() as conn, conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            readers = cur.execute(READERS, [dataset_id, start, end]).fetchall()
            denied = cur.execute(DENIED, [dataset_id, start, end]).fetchone()["n"]
        _record_read(conn, request, principal, "access-report", {"dataset": dataset_id})
    return AccessReport.model_validate({"dataset": dataset_id, "since": start, "until": end,
                                        "readers": readers, "denied_requests": denied})


READERS = """
with reads as (
    select * from audit.events
    where kind = 'data.read' and dataset = %s and occurred_at >= %s and occurred_at < %s
),
per_reader as (
    select client_id, role, department, purpose, count(*) as reads,
           sum(rows_returned)::bigint as rows
    from reads group by 1, 2, 3, 4
),
reader_columns as (
    select client_id, role, department, purpose, array_agg(distinct c order by c) as columns
    from reads, unnest(columns) c group by 1, 2, 3, 4
)
select p.*, coalesce(rc.columns, '{}') as columns
from per_reader p left join reader_columns rc using (client_id, role, department, purpose)
order by p.rows desc
"""
# A refusal record may stand for several refusals (hub/refusals.py): its detail.count.
DENIED = """select coalesce(sum(coalesce((detail->>'count')::int, 1)), 0) as n
            from audit.events where kind = 'data.denied' and dataset = %s
            and occurred_at >= %s and occurred_at < %s"""


@router.get("/anomalies", openapi_extra=token_scopes("audit:read"))
def anomaly_flags(principal: AuditorDep, request: Request, state: StateDep,
                  since: Since = None, until: Until = None) -> Anomalies:
    """Reads far above a client's usual volume, reads outside a grant's window, bursts of
    denied requests, and reads of personal columns unmasked."""
    start, end = _window(since, until)
    with state.pool.connection() as conn, conn.transaction():
        found = anomalies.flags(conn, start, end)
        _record_read(conn, request, principal, "anomalies", {})
    return Anomalies.model_validate({"since": start, "until": end,
                                     "flags": [asdict(f) for f in found]})


# Reads: rows served or exported; denials: any refused request (every *.denied kind).
ACTIVITY = """
select date_trunc(%(bucket)s, occurred_at, 'UTC') as at, coalesce(department, 'none') as department,
       case when decision = 'deny' then 'denied' else 'read' end as outcome,
       coalesce(sum(greatest(coalesce((detail->>'count')::int, 1), 1)), 0)::int as events
from audit.events
where occurred_at >= %(start)s and occurred_at < %(end)s
  and (kind in ('data.read', 'data.export') or decision = 'deny')
group by 1, 2, 3 order by 1, 2, 3
"""


@router.get("/activity", openapi_extra=token_scopes("audit:read"))
def activity(principal: AuditorDep, request: Request, state: StateDep, since: Since = None,
             until: Until = None,
             bucket: Annotated[Literal["hour", "day"], Query()] = "day") -> Activity:
    """Reads (data.read, data.export) and denials (every refused request) per hour or day
    and per department of the caller: counts only, never what was read."""
    start, end = _window(since, until)
    with state.pool.connection() as conn, conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            counts = cur.execute(ACTIVITY, {"bucket": bucket, "start": start,
                                            "end": end}).fetchall()
        _record_read(conn, request, principal, "activity", {"bucket": bucket})
    return Activity.model_validate({"since": start, "until": end, "bucket": bucket,
                                    "counts": counts})


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = _aware(until) if until else datetime.now(UTC)
    start = _aware(since) if since else end - timedelta(days=30)
    if start >= end:
        raise ApiError(400, "invalid_request", "since: must be before until")
    return start, end


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _record_read(conn: Any, request: Request, principal: Principal, what: str,
                 filters: dict) -> None:
    record(conn, request_event(request, "audit.read", principal, decision="allow",
                               reason=what, status_code=200, filters=filters))
