"""Writing to the audit log: one `audit.events` row per recorded act.

`record` takes the caller's connection so that an act and its record commit in one
transaction: if the record cannot be written, the act (a read, a publish) does not happen.
Rows are only ever inserted; hub/ledger.py chains and signs them afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class AuditEvent:
    kind: str  # data.read, data.denied, catalog.read, token.issued, token.denied, pipeline.*
    request_id: str | None = None
    decision: str | None = None  # allow | deny, for access decisions
    reason: str = ""
    status_code: int | None = None
    client_id: str | None = None
    role: str | None = None
    department: str | None = None
    purpose: str | None = None
    dataset: str | None = None
    dataset_version: int | None = None
    columns: list[str] = field(default_factory=list)
    unmasked_personal: list[str] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)
    rows_returned: int = 0
    grant_id: str | None = None
    source_address: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


COLUMNS = ("kind", "request_id", "decision", "reason", "status_code", "client_id", "role",
           "department", "purpose", "dataset", "dataset_version", "columns", "unmasked_personal",
           "filters", "rows_returned", "grant_id", "source_address", "detail")
INSERT = (f"insert into audit.events ({', '.join(COLUMNS)})"
          f" values ({', '.join(['%s'] * len(COLUMNS))})")


def record(conn: psycopg.Connection, event: AuditEvent) -> None:
    values = [getattr(event, c) for c in COLUMNS]
    values = [Jsonb(v) if isinstance(v, dict) else v for v in values]
    conn.execute(INSERT, values)


def record_file_changes(conn: psycopg.Connection, kind: str, paths: list[Path],
                        root: Path) -> int:
    """Record each contract or policy file whose content differs from the last recorded
    version (kind `contract.changed` / `policy.changed`); return how many changed."""
    changed = 0
    for path in paths:
        name = str(path.relative_to(root))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        row = conn.execute("select detail->>'sha256' from audit.events where kind = %s"
                           " and detail->>'file' = %s order by event_id desc limit 1",
                           [kind, name]).fetchone()
        if row is None or row[0] != digest:
            verb = "added" if row is None else "changed"
            detail = {"file": name, "sha256": digest, "previous_sha256": row[0] if row else None}
            record(conn, AuditEvent(kind=kind, reason=f"{name} {verb}", detail=detail))
            changed += 1
    return changed
