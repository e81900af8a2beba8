"""Notices to a department, kept in hub.notifications (GET /notifications reads them)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def notify(conn: psycopg.Connection, department: str, dataset: str, kind: str, message: str,
           detail: dict[str, Any] | None = None) -> None:
    conn.execute("insert into hub.notifications (department, dataset, kind, message, detail)"
                 " values (%s, %s, %s, %s, %s)",
                 [department, dataset, kind, message, Jsonb(detail or {})])
