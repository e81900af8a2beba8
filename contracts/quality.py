"""Read ODCS quality rules into the hub's rule kinds, or say precisely why one cannot be.

Column rules must hold for every row (`mustBe: 0`): a row that breaks one is quarantined.
Percent thresholds and vendor-specific (`custom`) rules are refused with a reason rather
than silently ignored; `type: text` rules are documentation and are kept as such.
"""

from __future__ import annotations

from typing import Any

from open_data_contract_standard.model import DataQuality

from contracts.mapping import SQL_OPERATORS
from contracts.sql_guard import SqlRuleError, check_rule_sql

Problems = list[tuple[str, str]]
COLUMN_FORM = ("write metric: nullValues | invalidValues (arguments: validValues, pattern, or "
               "minimum and maximum) | duplicateValues with mustBe: 0, or type: sql")


def column_checks(at: str, quality: list[DataQuality], table: str,
                  problems: Problems) -> tuple[list[tuple[str, Any]], list[tuple]]:
    """(row-level checks, sql checks) of one column's quality list."""
    checks: list[tuple[str, Any]] = []
    sql_checks: list[tuple] = []
    for j, rule in enumerate(quality):
        where = f"{at}.quality.{j}"
        kind = rule.type or "library"
        if kind == "sql":
            _add_sql(where, rule, table, sql_checks, problems)
        elif kind == "library":
            checks.extend(_library(where, rule, problems))
        else:
            _other(where, rule, problems)
    return checks, sql_checks


def table_checks(at: str, quality: list[DataQuality], table: str,
                 problems: Problems) -> tuple[int | None, list[tuple]]:
    """(minimum row count, sql checks) of a schema object's quality list."""
    minimum, sql_checks = None, []
    for j, rule in enumerate(quality):
        where = f"{at}.quality.{j}"
        if rule.type == "sql":
            _add_sql(where, rule, table, sql_checks, problems)
        elif rule.metric == "rowCount" and rule.mustBeGreaterThan is not None:
            minimum = int(rule.mustBeGreaterThan) + 1
        elif rule.metric == "rowCount" and rule.mustBeGreaterOrEqualTo is not None:
            minimum = int(rule.mustBeGreaterOrEqualTo)
        elif rule.type in ("text", "custom"):
            _other(where, rule, problems)
        else:
            problems.append((where, "unsupported table rule; write metric: rowCount with "
                             "mustBeGreaterThan or mustBeGreaterOrEqualTo, or type: sql"))
    return minimum, sql_checks


def _library(where: str, rule: DataQuality, problems: Problems) -> list[tuple[str, Any]]:
    if rule.mustBe != 0 or _threshold(rule):
        problems.append((where, "only mustBe: 0 is enforced on column rules (each breaking row "
                         "is quarantined); percent or count thresholds are not: write mustBe: 0"))
        return []
    args = rule.arguments or {}
    if rule.metric == "nullValues":
        return [("not_null", None)]
    if rule.metric == "duplicateValues":
        return [("unique", None)]
    if rule.metric == "invalidValues":
        return _invalid_values(where, args, problems)
    problems.append((where, f"metric {rule.metric!r} is not enforced; {COLUMN_FORM}"))
    return []


def _invalid_values(where: str, args: dict, problems: Problems) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    values = args.get("validValues")
    if isinstance(values, list) and values and None not in values:
        found.append(("accepted_values", tuple(values)))
    if isinstance(args.get("pattern"), str):
        found.append(("pattern", args["pattern"]))
    low, high = args.get("minimum"), args.get("maximum")
    if _number(low) and _number(high) and low <= high:
        found.append(("between", (low, high)))
    if not found:
        problems.append((f"{where}.arguments", "give validValues (a list without null), "
                         "pattern (a regular expression), or minimum and maximum (numbers)"))
    return found


def _add_sql(where: str, rule: DataQuality, table: str, out: list[tuple],
             problems: Problems) -> None:
    operators = [(op, getattr(rule, op)) for op in SQL_OPERATORS if getattr(rule, op) is not None]
    if len(operators) != 1 or not _number(operators[0][1]):
        problems.append((where, "a sql rule needs exactly one comparison with a number, e.g. "
                         "mustBe: 0 (mustBeBetween is not supported: write two rules)"))
        return
    try:
        query = check_rule_sql(rule.query or "", table)
    except SqlRuleError as exc:
        problems.append((f"{where}.query", str(exc)))
        return
    op, threshold = operators[0]
    out.append((query, SQL_OPERATORS[op], threshold))


def _other(where: str, rule: DataQuality, problems: Problems) -> None:
    if rule.type == "text":
        return  # human-readable expectations document the data; nothing to run
    engine = getattr(rule, "engine", None)
    problems.append((where, f"custom rules for engine {engine!r} are not run by the hub; "
                     f"express the rule as a library metric or type: sql ({COLUMN_FORM})"))


def _threshold(rule: DataQuality) -> bool:
    return any(getattr(rule, op, None) is not None for op in SQL_OPERATORS if op != "mustBe") \
        or rule.mustBeBetween is not None or rule.mustNotBeBetween is not None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
