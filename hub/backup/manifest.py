"""What a backup must bring back, read in the dump's own snapshot: row counts per table,
the published versions, the ledger's head and its last signed checkpoint. `verify` reads
the same facts from the restored copy and compares."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

TABLES = ("select n.nspname, c.relname from pg_class c join pg_namespace n"
          " on n.oid = c.relnamespace where c.relkind = 'r' and n.nspname <> 'information_schema'"
          " and n.nspname not like 'pg\\_%' order by 1, 2")


def facts(conn: psycopg.Connection) -> dict[str, Any]:
    """The facts of the database `conn` sees (in its current transaction's snapshot)."""
    return {"tables": _row_counts(conn), "published": _published(conn),
            "ledger_head": _head(conn), "last_checkpoint": _checkpoint(conn)}


def _row_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for schema, table in conn.execute(TABLES).fetchall():
        query = sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema),
                                                            sql.Identifier(table))
        counts[f"{schema}.{table}"] = conn.execute(query).fetchone()[0]
    return counts


def _exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", [table]).fetchone()[0]


def _published(conn: psycopg.Connection) -> dict[str, int]:
    if not _exists(conn, "hub.dataset_versions"):
        return {}
    rows = conn.execute("select dataset, max(version) from hub.dataset_versions"
                        " group by dataset order by dataset").fetchall()
    return dict(rows)


def _head(conn: psycopg.Connection) -> dict[str, Any] | None:
    if not _exists(conn, "audit.chain"):
        return None
    row = conn.execute("select seq, hash from audit.chain order by seq desc limit 1").fetchone()
    return {"seq": row[0], "hash": row[1]} if row else None


def _checkpoint(conn: psycopg.Connection) -> dict[str, Any] | None:
    if not _exists(conn, "audit.checkpoints"):
        return None
    row = conn.execute("select last_seq, head_hash, signed_at::text from audit.checkpoints"
                       " order by last_seq desc limit 1").fetchone()
    return {"last_seq": row[0], "head_hash": row[1], "signed_at": row[2]} if row else None


def differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """One line per fact of the manifest the restored copy does not match."""
    lines = []
    want, got = expected["tables"], found["tables"]
    for table in sorted(set(want) | set(got)):
        if want.get(table) != got.get(table):
            lines.append(f"rows of {table}: manifest {want.get(table, 'no table')}, "
                         f"restored {got.get(table, 'no table')}")
    for key in ("published", "ledger_head", "last_checkpoint"):
        if expected[key] != found[key]:
            lines.append(f"{key.replace('_', ' ')}: manifest {expected[key]}, "
                         f"restored {found[key]}")
    return lines
