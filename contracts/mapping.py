"""The one mapping from a contract to checks and types, shared by every compile target.

Each rule kind carries its dbt test, its Great Expectations expectation and, for rules a
single row can break, the SQL that finds such rows (used to quarantine them) side by side,
so the three renderings cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts.model import Column, Contract

# ODCS logicalType -> PostgreSQL type, used when a property gives no physicalType.
LOGICAL_TO_PG = {
    "string": "text",
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "time": "time",
}
# Type names other systems use in physicalType (the ODCS examples do), in PostgreSQL's own
# words: dbt's enforced contract compares the names.
PG_ALIASES = {"string": "text", "long": "bigint", "double": "double precision",
              "datetime": "timestamp", "int": "integer", "bool": "boolean"}

# ODCS comparison operators of a `type: sql` rule -> SQL operator applied to the query's value.
SQL_OPERATORS = {
    "mustBe": "=", "mustNotBe": "<>", "mustBeGreaterThan": ">", "mustBeGreaterOrEqualTo": ">=",
    "mustBeLessThan": "<", "mustBeLessOrEqualTo": "<=",
}


@dataclass(frozen=True)
class Rule:
    """One check a contract promises: a kind, the column it is on, and its argument."""

    kind: str
    column: str | None = None
    value: Any = None

    @property
    def name(self) -> str:
        target = self.column if self.column is not None else str(self.value)
        if self.kind == "unique" and self.column is None:  # a composite key: unique(a, b)
            target = ", ".join(self.value)
        if self.kind == "sql":
            target = f"#{self.value[0]}"  # sql rules are numbered in contract order
        return f"{self.kind}({target})"

    @property
    def row_level(self) -> bool:
        return RULE_KINDS[self.kind].violation is not None


@dataclass(frozen=True)
class RuleKind:
    # dbt generic test and its arguments; None: not run by dbt (see `engine`)
    dbt: Callable[[Rule], tuple[str, dict[str, Any]]] | None
    # GX expectation {"type": ..., "kwargs": ...}; None: not run by GX
    gx: Callable[[Rule], dict[str, Any]] | None
    # Row-level rules: (SQL predicate true for a breaking row, SQL text saying why)
    violation: Callable[[Rule], tuple[str, str]] | None = None
    engine: str = "dbt+great_expectations"


def _gx(type_: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": type_, "kwargs": kwargs}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _shown(rule: Rule) -> str:
    """SQL text naming the breaking value, e.g. 'status = ''Done'''."""
    column = quote_ident(rule.column or "")
    return f"{quote_literal(rule.column + ' = ')} || quote_nullable({column}::text)"


def _not_null(rule: Rule) -> tuple[str, str]:
    return f"{quote_ident(rule.column)} is null", quote_literal(f"{rule.column} is missing")


def _accepted(rule: Rule) -> tuple[str, str]:
    values = ", ".join(quote_literal(v) for v in rule.value)
    column = quote_ident(rule.column)
    return (f"({column} is not null and {column}::text not in ({values}))",
            f"{_shown(rule)} || ' is not an accepted value'")


def _pattern(rule: Rule) -> tuple[str, str]:
    column = quote_ident(rule.column)
    return (f"({column} is not null and {column}::text !~ {quote_literal(rule.value)})",
            f"{_shown(rule)} || {quote_literal(' does not match ' + rule.value)}")


def _between(rule: Rule) -> tuple[str, str]:
    low, high = rule.value
    column = quote_ident(rule.column)
    return (f"({column} is not null and ({column} < {low!r} or {column} > {high!r}))",
            f"{_shown(rule)} || {quote_literal(f' is outside [{low}, {high}]')}")


RULE_KINDS: dict[str, RuleKind] = {
    "not_null": RuleKind(
        dbt=lambda r: ("not_null", {}),
        gx=lambda r: _gx("expect_column_values_to_not_be_null", column=r.column),
        violation=_not_null,
    ),
    "accepted_values": RuleKind(
        # dbt's accepted_values test puts each value between quotes unescaped: O'Farrell
        # would end the literal, so quotes are doubled here.
        dbt=lambda r: ("accepted_values", {"values": [
            v.replace("'", "''") if isinstance(v, str) else v for v in r.value]}),
        gx=lambda r: _gx("expect_column_values_to_be_in_set", column=r.column,
                         value_set=list(r.value)),
        violation=_accepted,
    ),
    "pattern": RuleKind(
        dbt=lambda r: ("matches_pattern", {"pattern": r.value}),
        gx=lambda r: _gx("expect_column_values_to_match_regex", column=r.column, regex=r.value),
        violation=_pattern,
    ),
    "between": RuleKind(
        dbt=lambda r: ("value_between", {"minimum": r.value[0], "maximum": r.value[1]}),
        gx=lambda r: _gx("expect_column_values_to_be_between", column=r.column,
                         min_value=r.value[0], max_value=r.value[1]),
        violation=_between,
    ),
    # On one column, or (column None) on the columns of a composite key together.
    "unique": RuleKind(
        dbt=lambda r: ("unique", {}) if r.column else ("unique_combination",
                                                       {"columns": list(r.value)}),
        gx=lambda r: (_gx("expect_column_values_to_be_unique", column=r.column) if r.column
                      else _gx("expect_compound_columns_to_be_unique",
                               column_list=list(r.value))),
    ),
    "row_count_at_least": RuleKind(
        dbt=lambda r: ("row_count_at_least", {"minimum": r.value}),
        gx=lambda r: _gx("expect_table_row_count_to_be_between", min_value=r.value),
    ),
    "fresh_within": RuleKind(
        dbt=lambda r: ("fresh_within", {"seconds": r.value}),
        gx=lambda r: _gx("unexpected_rows_expectation", unexpected_rows_query=(
            f"select max({quote_ident(r.column)}) from {{batch}} having max("
            f"{quote_ident(r.column)}) < now() - interval '{int(r.value)} seconds'"
            f" or max({quote_ident(r.column)}) is null")),
    ),
    # Department-written SQL is untrusted: it runs only in the hub's sandbox (flows/sql_rules.py).
    "sql": RuleKind(dbt=None, gx=None, engine="sandbox"),
}


# Cheap GX screens for expectations whose exact form is slow on large tables. A screen never
# passes a table the exact expectation would fail; when a screen fails, the exact expectation
# runs and decides (GX's per-value uniqueness check sorts the whole column with a window
# function; the unique proportion is one aggregate, bundled with the other column metrics).
GX_SCREENS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "expect_column_values_to_be_unique": lambda kw: _gx(
        "expect_column_proportion_of_unique_values_to_be_between", column=kw["column"],
        min_value=1, max_value=1),
}


def rules(contract: Contract) -> list[Rule]:
    """Every rule the contract states, in a stable order."""
    found: list[Rule] = []
    single_key = len(contract.primary_key) == 1
    for col in contract.columns:
        if col.required or col.primary_key:
            found.append(Rule("not_null", col.name))
        if col.unique or (col.primary_key and single_key):
            found.append(Rule("unique", col.name))
        found.extend(Rule(kind, col.name, value) for kind, value in col.checks)
    if not single_key:  # each part of a composite key repeats; the parts together may not
        found.append(Rule("unique", None, contract.primary_key))
    if contract.min_row_count is not None:
        found.append(Rule("row_count_at_least", None, contract.min_row_count))
    if contract.freshness is not None:
        found.append(Rule("fresh_within", *contract.freshness))
    found.extend(Rule("sql", None, (i, *check)) for i, check in enumerate(contract.sql_checks))
    return found


def row_rules(contract: Contract, cast_checked: bool = False) -> list[dict[str, str]]:
    """The row-level rules as SQL, for the mart's filter and the quarantine model.

    The first is built in: a key delivered more than once in one batch (a repeated
    daylight-saving hour, a duplicated date) cannot be told apart, so every copy is
    quarantined instead of one being kept at random. Staging models count the copies in
    `_key_copies` (macro `latest_delivery`). With `cast_checked` (a staging model generated
    from the contract, contracts/dbt_models.py), a value that does not cast to its column's
    type is a built-in rule too, `type(<column>)`, instead of failing the whole build."""
    found = [_duplicate_key(contract.primary_key)]
    checked = {c.name: c for c in contract.columns if cast_checked and casts(c)}
    found += [_cast_rule(c) for c in checked.values()]
    for rule in rules(contract):
        render = RULE_KINDS[rule.kind].violation
        if render is not None:
            predicate, reason = render(rule)
            if rule.kind == "not_null" and rule.column in checked:  # said by type(column)
                predicate = f"({predicate} and not {cast_failed(checked[rule.column])})"
            found.append({"rule": rule.name, "violation": predicate, "reason": reason})
    return found


def _duplicate_key(key: tuple[str, ...]) -> dict[str, str]:
    present = " and ".join(f"{quote_ident(k)} is not null" for k in key)
    shown = " || ".join(f"{quote_literal((', ' if i else '') + k + ' = ')} || {quote_ident(k)}"
                        "::text" for i, k in enumerate(key))
    return {"rule": f"duplicate_key({', '.join(key)})",
            "violation": f"({present} and _key_copies > 1)",
            "reason": f"{shown} || ' came ' || _key_copies || ' times in one delivery'"}


# What a column's values must be, for the reason of a value that does not cast.
TYPE_WORDS = {"integer": "an integer", "number": "a number", "boolean": "a boolean",
              "date": "a date", "timestamp": "a timestamp", "time": "a time"}


def casts(column: Column) -> bool:
    """Whether generated staging casts the column's text (and checks that it can)."""
    return column.logical_type in TYPE_WORDS


def cast_failed(column: Column) -> str:
    """SQL true when generated staging could not cast the column's raw text (kept in the
    staging model's `_raw` record, as delivered)."""
    raw = f"_raw->>{quote_literal(column.name)}"
    return f"({quote_ident(column.name)} is null and nullif(trim({raw}), '') is not null)"


def _cast_rule(column: Column) -> dict[str, str]:
    expected = TYPE_WORDS[column.logical_type]
    if column.date_format:
        expected += f" in the format {column.date_format}"
    else:
        expected += f" ({pg_type(column.physical_type, column.logical_type)})"
    raw = f"_raw->>{quote_literal(column.name)}"
    return {"rule": f"type({column.name})", "violation": cast_failed(column),
            "reason": f"{quote_literal(column.name + ' = ')} || quote_literal({raw}) || "
                      f"{quote_literal(' is not ' + expected)}"}


def pg_type(physical_type: str | None, logical_type: str) -> str:
    if not physical_type:
        return LOGICAL_TO_PG[logical_type]
    return PG_ALIASES.get(physical_type.lower(), physical_type)
