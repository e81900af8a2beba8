"""Who sees what, written by hand (access_policies/expected/), and its comparison with the
policy engine's answer: a truth table that does not come from the code it checks.

Pure: reads the expectations file it is pointed at, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, NonNegativeInt, PlainValidator, ValidationError

from access_policies.decide import decide
from access_policies.model import Policy
from access_policies.row_filter import describe
from contracts import Contract
from contracts.model import MASK_KINDS

# Beside the policy files, not among them: every access_policies/*.yaml is loaded as policy
# (and recorded on the audit ledger as a policy in force).
EXPECTED_FILE = Path("expected") / "city.yaml"

VISIBLE, HIDDEN, DENIED, MASKED = "visible", "hidden", "denied", "masked:"
# Reading rows takes this scope before any grant is consulted (api/routes/datasets.py).
READ_SCOPE = "datasets:read"
VIEWS = f"visible, hidden or masked:<kind> (kinds: {', '.join(sorted(MASK_KINDS))})"
SHAPE = ("dataset id -> role -> denied, or each column -> its view; rows: dataset id -> "
         "role -> the row filter in words; and counts: dataset id -> a list of "
         "{role, attributes, rows}")
EVERY_ROW = "every row"


class ExpectationError(ValueError):
    """An expectations file that cannot be used: names the file, the entry and the fix."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}" for p in problems))


@dataclass(frozen=True)
class Access:
    """One role's view of one dataset: `columns` is None when denied, else every column of
    the contract -> visible, hidden or masked:<kind>."""

    columns: Mapping[str, str] | None
    reason: str = ""  # why the policy decided so (empty for a hand-written expectation)
    rows: str = EVERY_ROW  # the policy's row filter in words (EVERY_ROW when none)

    @property
    def denied(self) -> bool:
        return self.columns is None

    def describe(self) -> str:
        said = DENIED if self.denied else "read access"
        return f"{said} ({self.reason})" if self.reason else said


def _view_problem(value: Any) -> str | None:
    """What is wrong with one column's view as written, or None."""
    if value in (VISIBLE, HIDDEN):
        return None
    if isinstance(value, str) and value.startswith(MASKED):
        kind = value.removeprefix(MASKED)
        return None if kind in MASK_KINDS else f"unknown mask {kind!r}; write {VIEWS}"
    return f"got {value!r}; write {VIEWS}"


def _access(value: Any) -> Access:
    """A role's cell as written: `denied`, or a mapping of columns to views."""
    if value == DENIED:
        return Access(None)
    if not isinstance(value, dict) or not value:
        raise ValueError(f"got {value!r}; write denied, or map each column of the dataset "
                         f"to {VIEWS}")
    problems = [f"{column}: {problem}" for column, view in value.items()
                if (problem := _view_problem(view))]
    if problems:
        raise ValueError("; ".join(problems))
    return Access({str(column): view for column, view in value.items()})


class RowCount(BaseModel):
    """How many rows of the bundled sample one caller reads: counted by hand from data/, and
    checked against a warehouse where the samples are published (`--warehouse`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: str
    attributes: dict[str, str] = {}
    rows: NonNegativeInt

    def caller(self) -> str:
        given = ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items()))
        return f"{self.role} ({given})" if given else self.role


class Expectations(BaseModel):
    """The file: dataset id -> role -> Access; `rows`: dataset id -> role -> the row
    filter in words, for the cells that do not read every row; `counts`: dataset id -> the
    rows some callers read of the sample."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    datasets: dict[str, dict[str, Annotated[Access, PlainValidator(_access)]]]
    rows: dict[str, dict[str, str]] = {}
    counts: dict[str, list[RowCount]] = {}

    def rows_of(self, dataset: str, role: str) -> str:
        return self.rows.get(dataset, {}).get(role, EVERY_ROW)


def load_expectations(path: Path) -> Expectations:
    """The expectations in `path`; ExpectationError says what to fix."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ExpectationError(str(path), [f"cannot read it ({exc.strerror}); pass an "
                                           "expectations file"]) from None
    except yaml.YAMLError as exc:
        raise ExpectationError(str(path), [f"not valid YAML: {exc}"]) from None
    if not isinstance(document, dict):
        raise ExpectationError(str(path), [f"write a mapping with one key, datasets: {SHAPE}"])
    try:
        return Expectations.model_validate(document)
    except ValidationError as exc:
        raise ExpectationError(str(path), [_said(e) for e in exc.errors()]) from None


def _said(error: Any) -> str:
    where = " > ".join(str(part) for part in error["loc"])
    cause = error.get("ctx", {}).get("error")  # our own ValueError: its text, no prefix
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key; the file holds only datasets: {SHAPE}"
    if error["type"] == "missing":
        return f"{where}: missing; write datasets: {SHAPE}"
    if error["type"] == "dict_type":
        return f"{where}: got {error['input']!r}; write a mapping ({SHAPE})"
    return f"{where}: {cause if cause is not None else error['msg']}"


# ---------- the policy's answer, and the comparison


class _AnyAttributes(Mapping[str, str]):
    """Whatever attribute is asked for is there: columns and masks do not depend on the
    caller's attribute values, only which rows do (checked apart, as the filter in words)."""

    def __getitem__(self, name: str) -> str:
        return f"<{name}>"

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def policy_access(policy: Policy, role: str, contract: Contract, today: date) -> Access:
    """What the API serves `role` from `contract`'s dataset on `today`, for a caller
    holding whatever attributes its grant's row filter needs."""
    if READ_SCOPE not in policy.roles[role].scopes:
        return Access(None, f"role {role} lacks the {READ_SCOPE} scope")
    decision = decide(policy, role=role, contract=contract, today=today,
                      attributes=_AnyAttributes())
    if not decision.allowed or decision.grant is None:
        return Access(None, decision.reason)
    shown = {c.name: VISIBLE if c.mask is None else MASKED + c.mask for c in decision.columns}
    return Access({c.name: shown.get(c.name, HIDDEN) for c in contract.columns},
                  f"grant {decision.grant.id}", describe(decision.grant.row_filter))


@dataclass(frozen=True)
class Mismatch:
    """One cell where the expectations and the policy disagree (or one is missing)."""

    role: str | None
    dataset: str
    column: str | None
    message: str

    def __str__(self) -> str:
        cell = ", ".join(part for part in (self.role, self.dataset, self.column) if part)
        return f"{cell}: {self.message}"


def compare(expected: Expectations, policy: Policy, contracts: Mapping[str, Contract],
            today: date) -> list[Mismatch]:
    """Every disagreement between `expected` and the policy on `today`, dataset by dataset."""
    found = [Mismatch(None, dataset, None, f"not a dataset of the contracts; known: "
                      f"{', '.join(sorted(contracts))}")
             for dataset in sorted(expected.datasets.keys() - contracts.keys())]
    for dataset, contract in sorted(contracts.items()):
        cells = expected.datasets.get(dataset)
        if cells is None:
            found.append(Mismatch(None, dataset, None, "no expectations; list every role "
                                  "under it"))
        else:
            found += _dataset(cells, expected.rows.get(dataset, {}), policy, contract, today)
    return found


def _dataset(cells: Mapping[str, Access], expected_rows: Mapping[str, str], policy: Policy,
             contract: Contract, today: date) -> list[Mismatch]:
    dataset = contract.dataset_id
    found = [Mismatch(role, dataset, None, "not a role of the policy; remove it or define "
                      "the role") for role in sorted(cells.keys() - policy.roles.keys())]
    for role in sorted(policy.roles):
        actual = policy_access(policy, role, contract, today)
        if role not in cells:
            found.append(Mismatch(role, dataset, None, f"no expectation; write denied or "
                                  f"its columns (policy gives {actual.describe()})"))
        else:
            found += _cell(role, dataset, cells[role], actual)
            found += _rows(role, dataset, expected_rows.get(role, EVERY_ROW), actual)
    return found


def _rows(role: str, dataset: str, expected: str, actual: Access) -> list[Mismatch]:
    if actual.denied or expected == actual.rows:
        return []
    return [Mismatch(role, dataset, "(rows)", f'expected "{expected}", policy gives '
                     f'"{actual.rows}"; write it under rows: {dataset}: {role}:')]


def _cell(role: str, dataset: str, expected: Access, actual: Access) -> list[Mismatch]:
    if expected.columns is None or actual.columns is None:
        if expected.denied == actual.denied:
            return []
        return [Mismatch(role, dataset, None, f"expected {expected.describe()}, "
                         f"policy gives {actual.describe()}")]
    found = [Mismatch(role, dataset, column, "the contract has no such column; remove it")
             for column in expected.columns if column not in actual.columns]
    for column, view in actual.columns.items():
        wanted = expected.columns.get(column)
        if wanted is None:
            found.append(Mismatch(role, dataset, column, f"no expectation; policy gives {view}"))
        elif wanted != view:
            found.append(Mismatch(role, dataset, column, f"expected {wanted}, policy gives {view}"))
    return found


def tally(expected: Expectations) -> tuple[int, int]:
    """(readable cells, denied cells) of the file."""
    cells = [a for roles in expected.datasets.values() for a in roles.values()]
    denied = sum(a.denied for a in cells)
    return len(cells) - denied, denied
