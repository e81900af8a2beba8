"""Publish a validated candidate to `shared`, as a new numbered version.

The swap happens in one transaction: readers see the old version or the new one, never
a half-copied table, and a failure leaves the last good version served.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

from contracts import Contract


def publish(warehouse_url: str, contract: Contract, run_id: uuid.UUID) -> tuple[int, int]:
    """Copy candidate -> shared and record the version; return (version, row count)."""
    name = contract.relation_name
    staged = sql.Identifier("shared", f"{name}__next")
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [contract.dataset_id])
        conn.execute(sql.SQL("drop table if exists {}").format(staged))
        conn.execute(sql.SQL("create table {} as table {}").format(
            staged, sql.Identifier("candidate", name)))
        conn.execute(sql.SQL("alter table {} add primary key ({})").format(
            staged, sql.SQL(", ").join(map(sql.Identifier, contract.primary_key))))
        conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier("shared", name)))
        conn.execute(sql.SQL("alter table {} rename to {}").format(staged, sql.Identifier(name)))
        rows = conn.execute(sql.SQL("select count(*) from {}").format(
            sql.Identifier("shared", name))).fetchone()[0]
        version = conn.execute(
            "insert into hub.dataset_versions"
            " (dataset, version, contract_version, row_count, run_id)"
            " select %s, coalesce(max(version), 0) + 1, %s, %s, %s from hub.dataset_versions"
            " where dataset = %s returning version",
            [contract.dataset_id, contract.version, rows, run_id, contract.dataset_id],
        ).fetchone()[0]
    return version, rows
