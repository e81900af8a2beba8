"""The one mapping from a contract to checks and types, shared by every compile target.

dbt and Great Expectations both render the same `Rule` list through `RULE_KINDS`, where each
kind carries its dbt test and its GX expectation side by side, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts.model import Contract

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


@dataclass(frozen=True)
class Rule:
    """One check a contract promises: a kind, the column it is on, and its argument."""

    kind: str
    column: str | None = None
    value: Any = None

    @property
    def name(self) -> str:
        target = self.column if self.column is not None else str(self.value)
        return f"{self.kind}({target})"


@dataclass(frozen=True)
class RuleKind:
    dbt: Callable[[Rule], tuple[str, dict[str, Any]]]  # dbt generic test and its arguments
    gx: Callable[[Rule], dict[str, Any]]  # {"type": ..., "kwargs": ...}
    row_level: bool  # True: a single row can break it


def _gx(type_: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": type_, "kwargs": kwargs}


RULE_KINDS: dict[str, RuleKind] = {
    "not_null": RuleKind(
        dbt=lambda r: ("not_null", {}),
        gx=lambda r: _gx("expect_column_values_to_not_be_null", column=r.column),
        row_level=True,
    ),
    "unique": RuleKind(
        dbt=lambda r: ("unique", {}),
        gx=lambda r: _gx("expect_column_values_to_be_unique", column=r.column),
        row_level=False,
    ),
    "accepted_values": RuleKind(
        dbt=lambda r: ("accepted_values", {"values": list(r.value)}),
        gx=lambda r: _gx("expect_column_values_to_be_in_set", column=r.column,
                         value_set=list(r.value)),
        row_level=True,
    ),
    "row_count_at_least": RuleKind(
        dbt=lambda r: ("row_count_at_least", {"minimum": r.value}),
        gx=lambda r: _gx("expect_table_row_count_to_be_between", min_value=r.value),
        row_level=False,
    ),
}


def rules(contract: Contract) -> list[Rule]:
    """Every rule the contract states, in a stable order."""
    found: list[Rule] = []
    for col in contract.columns:
        if col.required or col.primary_key:
            found.append(Rule("not_null", col.name))
        if col.unique or col.primary_key:
            found.append(Rule("unique", col.name))
        if col.valid_values is not None:
            found.append(Rule("accepted_values", col.name, col.valid_values))
    if contract.min_row_count is not None:
        found.append(Rule("row_count_at_least", None, contract.min_row_count))
    return found


def pg_type(physical_type: str | None, logical_type: str) -> str:
    return physical_type or LOGICAL_TO_PG[logical_type]
