"""The validation report of one run: every rule, whether it held, and the gate's counts.

Stored per run in hub.validation_reports (browsable at GET /datasets/{id}/validations); the
owning department is notified of each failure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from contracts import Contract
from contracts.mapping import RULE_KINDS, rules
from flows.checks import Failure
from hub.notifications import notify


@dataclass
class GateCounts:
    rows_in: int = 0  # records in staging: the source's rows, latest version of each
    rows_passed: int = 0  # rows in the candidate: every row-level rule held
    rows_quarantined: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)  # quarantined rows per rule


def staging_relation(contract: Contract) -> sql.Identifier:
    return sql.Identifier("staging", f"stg_{contract.department}__{contract.entity}")


def gate_counts(conn: psycopg.Connection, contract: Contract) -> GateCounts:
    name = contract.relation_name
    held = sql.Identifier("candidate", f"{name}__quarantine")
    by_rule = dict(conn.execute(sql.SQL(
        "select rule, count(*) from {}, unnest(failed_rules) as rule group by rule").format(held)
    ).fetchall())
    return GateCounts(
        rows_in=_count(conn, staging_relation(contract)),
        rows_passed=_count(conn, sql.Identifier("candidate", name)),
        rows_quarantined=_count(conn, held), by_rule=by_rule)


def rule_results(contract: Contract, failures: list[Failure], counts: GateCounts) -> list[dict]:
    """One entry per contract rule: held or not, by which engine, with what was observed."""
    failed = {f.rule: f for f in failures}
    results = []
    for rule in rules(contract):
        entry = {"rule": rule.name, "kind": rule.kind, "column": rule.column,
                 "level": "row" if rule.row_level else "dataset",
                 "engine": RULE_KINDS[rule.kind].engine}
        if rule.row_level:  # breaking rows were quarantined; the rule held on the rest
            held = counts.by_rule.get(rule.name, 0)
            entry.update(passed=rule.name not in failed, quarantined=held,
                         observed=f"{held} row(s) quarantined")
        else:
            entry.update(passed=rule.name not in failed,
                         observed=failed[rule.name].message if rule.name in failed else "held")
        results.append(entry)
    known = {r["rule"] for r in results}  # failures outside the rules: a model that broke
    results += [{"rule": f.rule, "kind": "build", "level": "dataset", "engine": f.engine,
                 "passed": False, "observed": f.message} for f in failures if f.rule not in known]
    return results


def store_report(conn: psycopg.Connection, run_id: uuid.UUID, contract: Contract,
                 failures: list[Failure], counts: GateCounts) -> None:
    """Write the report and notify the owning department of each failed rule."""
    results = rule_results(contract, failures, counts)
    conn.execute(
        "insert into hub.validation_reports (run_id, dataset, contract_version, passed,"
        " rows_in, rows_passed, rows_quarantined, rules) values (%s, %s, %s, %s, %s, %s, %s, %s)",
        [run_id, contract.dataset_id, contract.version, not failures, counts.rows_in,
         counts.rows_passed, counts.rows_quarantined, Jsonb(results)])
    for failure in failures:
        notify(conn, contract.department, contract.dataset_id, "validation.failed",
               f"{contract.dataset_id} was not published: {failure.rule} failed "
               f"({failure.message})", {"run_id": str(run_id), "rule": failure.rule})


def _count(conn: psycopg.Connection, relation: sql.Identifier) -> int:
    return conn.execute(sql.SQL("select count(*) from {}").format(relation)).fetchone()[0]
