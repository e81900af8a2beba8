"""The audit log: one `audit.events` row per request to a data route.

`record` takes the caller's connection so an allowed read and its record commit in one
transaction: if the record cannot be written, the rows are not sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class AuditEvent:
    request_id: str
    decision: str  # allow | deny
    reason: str
    status_code: int
    client_id: str | None = None
    role: str | None = None
    dataset: str | None = None
    dataset_version: int | None = None
    columns: list[str] = field(default_factory=list)
    filters: dict = field(default_factory=dict)
    rows_returned: int = 0


def record(conn: psycopg.Connection, event: AuditEvent) -> None:
    conn.execute(
        "insert into audit.events (request_id, client_id, role, dataset, dataset_version,"
        " columns, filters, rows_returned, decision, reason, status_code)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [event.request_id, event.client_id, event.role, event.dataset, event.dataset_version,
         event.columns, Jsonb(event.filters), event.rows_returned, event.decision,
         event.reason, event.status_code],
    )
