"""Access requests: ask, approve or reject, and approved ones as time-bound grants.

Rules of the cycle (the routes enforce who may call; these enforce the states):
a request is decided once; nobody decides their own request; an approved request is a
grant to the requesting client from the day of approval for the requested days.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from access_policies import Grant


class RequestError(ValueError):
    """A step of the cycle that cannot be taken; the message says why."""


@dataclass(frozen=True)
class NewRequest:
    dataset: str
    client_id: str
    role: str
    department: str
    columns: list[str] | None
    purpose: str
    duration_days: int


def create(conn: psycopg.Connection, new: NewRequest) -> uuid.UUID:
    request_id = uuid.uuid4()
    conn.execute(
        "insert into hub.access_requests (request_id, dataset, client_id, role, department,"
        " columns, purpose, duration_days) values (%s, %s, %s, %s, %s, %s, %s, %s)",
        [request_id, new.dataset, new.client_id, new.role, new.department, new.columns,
         new.purpose, new.duration_days])
    return request_id


def get(conn: psycopg.Connection, request_id: uuid.UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from hub.access_requests where request_id = %s",
                           [request_id]).fetchone()


def listing(conn: psycopg.Connection, *, client_id: str,
            datasets: list[str]) -> list[dict[str, Any]]:
    """The caller's own requests, and those for the given datasets (an admin's to decide)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from hub.access_requests where client_id = %s"
                           " or dataset = any(%s) order by created_at desc",
                           [client_id, datasets]).fetchall()


def decide(conn: psycopg.Connection, request_id: uuid.UUID, *, approve: bool,
           decided_by: str, today: date, reason: str | None = None) -> dict[str, Any]:
    """Approve or reject a pending request (with the decider's reason, if given); return
    it as decided."""
    found = get(conn, request_id)
    if found is None:
        raise RequestError(f"no access request {request_id}")
    if found["status"] != "pending":
        raise RequestError(f"access request {request_id} was already {found['status']}")
    if found["client_id"] == decided_by:
        raise RequestError("nobody decides their own access request")
    until = today + timedelta(days=found["duration_days"] - 1) if approve else None
    conn.execute("update hub.access_requests set status = %s, decided_by = %s,"
                 " decided_at = now(), valid_from = %s, valid_until = %s,"
                 " decision_reason = %s where request_id = %s and status = 'pending'",
                 ["approved" if approve else "rejected", decided_by,
                  today if approve else None, until, reason, request_id])
    return get(conn, request_id)


APPROVED = ("select request_id, dataset, client_id, columns, purpose, valid_from, valid_until"
            " from hub.access_requests where status = 'approved' and valid_until >= %s")


async def approved_grants(conn: psycopg.AsyncConnection, today: date) -> tuple[Grant, ...]:
    """Approved requests still in force, as grants to their clients (read by the API)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        rows = await (await cur.execute(APPROVED, [today])).fetchall()
    return tuple(Grant(
        id=f"request-{row['request_id']}", dataset=row["dataset"], roles=frozenset(),
        purpose=row["purpose"], columns=frozenset(row["columns"]) if row["columns"] else None,
        clients=frozenset({row["client_id"]}), valid_from=row["valid_from"],
        valid_until=row["valid_until"],
    ) for row in rows)
