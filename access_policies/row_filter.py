"""Row filters of grants: declarative conditions on a dataset's columns, never SQL text.

    row_filter:
      cd: {claim: district}                       # equals the caller's attribute
      request_type: [Graffiti Removal, Bulky Items]   # one of a list
      status: Open                                # equals a literal
      request_type: {in_dataset: public_works.request_routing, column: request_type,
                     where: {department: {claim: department}}}

Pure: parsed and checked against the contracts when the policy loads, then bound to a
caller's attributes per request into a small predicate structure. The SQL is built from
that structure elsewhere (hub/row_filters.py), every value a bound parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import Contract
from contracts.mapping import pg_type
from contracts.model_errors import closest

Scalar = str | int | float | bool
FORMS = ("a value, a list of values, {claim: <attribute>} or {in_dataset: <dataset>, "
         "column: <column>, where: {...}}")


@dataclass(frozen=True)
class Claim:
    """Equals the caller's attribute `name`."""

    name: str


@dataclass(frozen=True)
class InDataset:
    """The column's value is among `column`'s values in the rows of `dataset` (published
    as shared.`relation`) that keep `where`."""

    dataset: str
    relation: str
    column: str
    where: tuple[Condition, ...]


@dataclass(frozen=True)
class Condition:
    """One ANDed term: `column` (of type `pg_type`) against `value`."""

    column: str
    pg_type: str
    value: Scalar | tuple[Scalar, ...] | Claim | InDataset


@dataclass(frozen=True)
class RowFilter:
    conditions: tuple[Condition, ...]

    def claims(self) -> list[str]:
        """Every attribute the filter needs, in the order written."""
        return list(dict.fromkeys(_claims(self.conditions)))


def _claims(conditions: tuple[Condition, ...]) -> list[str]:
    names: list[str] = []
    for c in conditions:
        if isinstance(c.value, Claim):
            names.append(c.value.name)
        elif isinstance(c.value, InDataset):
            names += _claims(c.value.where)
    return names


class FilterProblem(ValueError):
    """One thing wrong with a row filter as written (the message says what to write)."""


# ---------- parsing and checking (at load time)


def parse(raw: Any, dataset: str, contracts: Mapping[str, Contract]) -> RowFilter:
    """The filter as written under a grant of `dataset`; FilterProblem names the first fault."""
    if not isinstance(raw, dict) or not raw:
        raise FilterProblem(f"got {raw!r}; write a mapping of the dataset's columns to "
                            f"{FORMS}")
    return RowFilter(_conditions(raw, contracts[dataset], contracts, nested=False))


def _conditions(raw: dict, contract: Contract, contracts: Mapping[str, Contract],
                nested: bool) -> tuple[Condition, ...]:
    known = [c.name for c in contract.columns]
    found = []
    for column, value in raw.items():
        if column not in known:
            raise FilterProblem(f"dataset {contract.dataset_id} has no column {column!r}"
                                f"{closest(str(column), known)}")
        declared = contract.column(column)
        found.append(Condition(column, pg_type(declared.physical_type, declared.logical_type),
                               _value(column, value, contracts, nested)))
    return tuple(found)


def _value(column: str, value: Any, contracts: Mapping[str, Contract],
           nested: bool) -> Scalar | tuple[Scalar, ...] | Claim | InDataset:
    if isinstance(value, list):
        if not value or not all(_scalar(v) for v in value):
            raise FilterProblem(f"{column}: write a non-empty list of plain values")
        return tuple(value)
    if _scalar(value):
        return value
    if isinstance(value, dict) and set(value) == {"claim"} and isinstance(value["claim"], str):
        return Claim(value["claim"])
    if isinstance(value, dict) and "in_dataset" in value and not nested:
        return _in_dataset(column, value, contracts)
    if isinstance(value, dict) and "in_dataset" in value:
        raise FilterProblem(f"{column}: the where of an in_dataset takes values, lists or "
                            "claims, not another in_dataset")
    raise FilterProblem(f"{column}: got {value!r}; write {FORMS}")


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _in_dataset(column: str, value: dict, contracts: Mapping[str, Contract]) -> InDataset:
    extra = set(value) - {"in_dataset", "column", "where"}
    if extra or not isinstance(value.get("column"), str):
        raise FilterProblem(f"{column}: write {{in_dataset: <dataset>, column: <its column>, "
                            f"where: {{...}}}}" + (f"; unknown key {sorted(extra)[0]!r}"
                                                   if extra else ""))
    dataset = value["in_dataset"]
    if dataset not in contracts:
        raise FilterProblem(f"{column}: in_dataset: unknown dataset {dataset!r}; known: "
                            f"{', '.join(sorted(contracts))}")
    other = contracts[dataset]
    if value["column"] not in {c.name for c in other.columns}:
        raise FilterProblem(f"{column}: in_dataset {dataset} has no column {value['column']!r}")
    where = value.get("where") or {}
    if not isinstance(where, dict):
        raise FilterProblem(f"{column}: where: write a mapping of {dataset}'s columns")
    return InDataset(dataset, other.relation_name, value["column"],
                     _conditions(where, other, contracts, nested=True))


# ---------- binding to a caller (per request)


class MissingAttribute(LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


@dataclass(frozen=True)
class Bound:
    """A filter with the caller's attributes filled in: `shape` (what the SQL looks like,
    without values: hashable, so statements can be cached) and `params` (bound values in
    the order of the shape's placeholders)."""

    shape: tuple
    params: tuple


def bind(row_filter: RowFilter, attributes: Mapping[str, str]) -> Bound:
    """The filter for a caller with `attributes`; MissingAttribute if one it needs is absent."""
    shape, params = _bind(row_filter.conditions, attributes)
    return Bound(shape, tuple(params))


def _bind(conditions: tuple[Condition, ...], attributes: Mapping[str, str]) -> tuple[tuple, list]:
    shapes, params = [], []
    for c in conditions:
        value = c.value
        if isinstance(value, Claim):
            if value.name not in attributes:
                raise MissingAttribute(value.name)
            value = attributes[value.name]
        if isinstance(value, InDataset):
            inner, inner_params = _bind(value.where, attributes)
            shapes.append((c.column, c.pg_type, "in_dataset", value.relation, value.column,
                           inner))
            params += inner_params
        elif isinstance(value, tuple):
            shapes.append((c.column, c.pg_type, "in"))
            params.append([str(v) for v in value])
        else:
            shapes.append((c.column, c.pg_type, "eq"))
            params.append(str(value))
    return tuple(shapes), params


# ---------- in words (explain)


def describe(row_filter: RowFilter | None, attributes: Mapping[str, str] | None = None) -> str:
    """The filter in words; with `attributes`, each claim's value for that caller."""
    if row_filter is None:
        return "every row"
    return "rows where " + " and ".join(_words(c, attributes) for c in row_filter.conditions)


def _words(c: Condition, attributes: Mapping[str, str] | None) -> str:
    value = c.value
    if isinstance(value, Claim):
        said = f"{c.column} equals the caller's attribute {value.name}"
        if attributes is None:
            return said
        return f"{said} ({attributes[value.name]})" if value.name in attributes \
            else f"{said} (missing: no rows)"
    if isinstance(value, InDataset):
        where = " and ".join(_words(w, attributes) for w in value.where)
        return (f"{c.column} is one of the {value.column} values of {value.dataset}"
                + (f" where {where}" if where else ""))
    if isinstance(value, tuple):
        return f"{c.column} is one of {', '.join(map(str, value))}"
    return f"{c.column} equals {value}"
