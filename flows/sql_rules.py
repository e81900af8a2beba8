"""Run a contract's `type: sql` quality rules in a sandbox.

The SQL comes from a department's contract, so it is untrusted even after lint
(contracts/sql_guard.py): each query runs in a read-only transaction, as a role that may
read only this dataset's candidate table, under a statement timeout. A query that tries
anything else fails its rule; it cannot touch the warehouse.
"""

from __future__ import annotations

import contextlib
import operator
from decimal import Decimal

import psycopg
from psycopg import sql

from contracts import Contract
from contracts.mapping import Rule, rules
from contracts.sql_guard import PLACEHOLDER
from flows.checks import Failure, StepResult

COMPARE = {"=": operator.eq, "<>": operator.ne, ">": operator.gt, ">=": operator.ge,
           "<": operator.lt, "<=": operator.le}


def sandbox_role(contract: Contract) -> str:
    return f"hub_rules__{contract.relation_name}"[:63]


def run_sql_rules(warehouse_url: str, contract: Contract, schema: str = "candidate",
                  timeout_ms: int = 5000) -> StepResult:
    """Each sql rule's value compared with its threshold; failures name the rule."""
    checks = [r for r in rules(contract) if r.kind == "sql"]
    if not checks:
        return StepResult(True, (), {"sql_rules": 0})
    table = sql.Identifier(schema, contract.relation_name)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        role = _grant_only(conn, sandbox_role(contract), schema, table)
        failures = [f for rule in checks
                    if (f := _check(conn, rule, role, table, timeout_ms)) is not None]
    return StepResult(not failures, tuple(failures), {"sql_rules": len(checks)})


def _grant_only(conn: psycopg.Connection, role: str, schema: str, table: sql.Identifier) -> str:
    # The candidate table is rebuilt by every dbt run, so its grant is given afresh each time.
    if not conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
    conn.execute(sql.SQL("grant usage on schema {} to {}").format(
        sql.Identifier(schema), sql.Identifier(role)))
    conn.execute(sql.SQL("grant select on {} to {}").format(table, sql.Identifier(role)))
    return role


def _check(conn: psycopg.Connection, rule: Rule, role: str, table: sql.Identifier,
           timeout_ms: int) -> Failure | None:
    _, query, op, threshold = rule.value
    text = query.replace(PLACEHOLDER, table.as_string(conn))
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("set transaction read only")
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("set local statement_timeout = {}").format(timeout_ms))
            row = conn.execute(text).fetchone()
    except psycopg.Error as exc:
        return Failure(rule.name, "sandbox", f"refused at run time: {_first_line(exc)}")
    value = row[0] if row else None
    if not isinstance(value, (int, float, Decimal)) or isinstance(value, bool):
        return Failure(rule.name, "sandbox", f"the query returned {value!r}, not a number")
    if not COMPARE[op](value, threshold):
        return Failure(rule.name, "sandbox", f"observed {value}, expected {op} {threshold}")
    return None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
