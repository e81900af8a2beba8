"""Create the warehouse's schemas and bookkeeping tables (idempotent)."""

from __future__ import annotations

from pathlib import Path

import psycopg

SCHEMA_SQL = Path(__file__).with_name("schema.sql")


def bootstrap(url: str) -> None:
    """Apply `schema.sql`; safe to run on every start."""
    with psycopg.connect(url) as conn:
        # Serialise concurrent first starts (hub serve + hub run) on one advisory lock.
        conn.execute("select pg_advisory_xact_lock(hashtext('civic-data-hub bootstrap'))")
        conn.execute(SCHEMA_SQL.read_text())
