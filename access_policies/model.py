"""Access policy files: roles and grants, checked against the contracts when loaded.

A policy file is read through pydantic models that refuse unknown keys and wrong types: a
misspelt `valid_untill:` would otherwise leave a grant that never expires, and a misspelt
`row_filtr:` one that serves every row. A row filter's columns are checked against the
contracts here too (access_policies/row_filter.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from access_policies.row_filter import FilterProblem, RowFilter, parse
from contracts import Contract
from contracts.errors import yaml_problem
from contracts.model import MASK_KINDS
from contracts.model_errors import closest, problems_of

KNOWN_SCOPES = frozenset({"datasets:read", "contracts:write", "grants:admin", "audit:read"})


class PolicyError(ValueError):
    """A policy file that cannot be used: names the file, the entry and the fix."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}" for p in problems))


@dataclass(frozen=True)
class Role:
    name: str
    department: str
    scopes: frozenset[str]
    # Fixed for everyone holding the role (e.g. a district); they win over a client's own.
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    id: str
    dataset: str
    roles: frozenset[str]
    purpose: str
    columns: frozenset[str] | None  # None: every column of the dataset
    masks: dict[str, str] = field(default_factory=dict)  # column -> mask kind (overrides)
    unmasked: frozenset[str] = frozenset()
    valid_from: date | None = None
    valid_until: date | None = None
    clients: frozenset[str] = frozenset()  # granted to these clients too (approved requests)
    row_filter: RowFilter | None = None  # None: every row


@dataclass(frozen=True)
class Policy:
    roles: dict[str, Role]
    grants: tuple[Grant, ...]


def _known_scope(scope: str) -> str:
    if scope not in KNOWN_SCOPES:
        raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(sorted(KNOWN_SCOPES))}")
    return scope


def _known_mask(kind: str) -> str:
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask {kind!r}; use one of {', '.join(sorted(MASK_KINDS))}")
    return kind


def _every_column(value: Any) -> Any:
    """`columns: all` (or no `columns`) is None: every column of the dataset."""
    if value == "all":
        return None
    if isinstance(value, str):
        raise ValueError(f"got {value!r}; write all, or a list of the dataset's columns")
    return value


class _Entry(BaseModel):
    # Types as YAML gives them, no coercion: `valid_until: 2027` is not a day in 1970.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RoleEntry(_Entry):
    department: str = Field(min_length=1, description="name the role's department")
    scopes: list[Annotated[str, AfterValidator(_known_scope)]] = []
    description: str = ""
    attributes: dict[str, str | int] = {}


class GrantEntry(_Entry):
    # Descriptions are the fixes errors give (contracts.model_errors).
    id: str = Field(min_length=1, description="write a unique id, e.g. transport-reads-311 "
                                              "(every grant states it)")
    dataset: str = Field(min_length=1, description="write the dataset as <domain>.<table> "
                                                   "(every grant states it)")
    roles: list[str] = Field(min_length=1, description="write a list of roles, e.g. "
                                                       "[transport_analyst] (every grant "
                                                       "states it)")
    purpose: str = Field(min_length=1, description="write why the roles read the dataset "
                                                   "(every grant states it)")
    columns: Annotated[list[str] | None, BeforeValidator(_every_column)] = Field(
        None, description="write all, or a list of the dataset's columns")
    masks: dict[str, Annotated[str, AfterValidator(_known_mask)]] = {}
    unmasked: list[str] = []
    valid_from: date | None = Field(None, description="write the first day the grant is "
                                                      "valid as YYYY-MM-DD, unquoted")
    valid_until: date | None = Field(None, description="write the last day the grant is "
                                                       "valid as YYYY-MM-DD, unquoted")
    # Checked against the contracts by _cross_check, which knows them.
    row_filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _window(self) -> GrantEntry:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError(f"valid_until {self.valid_until} is before valid_from "
                             f"{self.valid_from}: the grant would never be valid")
        return self


class PolicyFile(_Entry):
    roles: dict[str, RoleEntry] = {}
    grants: list[GrantEntry] = []


def load_policies(directory: Path, contracts: dict[str, Contract]) -> Policy:
    """Every `*.yaml` in `directory`, merged; unknown names are errors now, not at request time."""
    roles: dict[str, Role] = {}
    grants: list[Grant] = []
    for path in sorted(directory.glob("*.yaml")):
        entries = _read(path)
        roles.update({name: Role(name, r.department, frozenset(r.scopes),
                                 {k: str(v) for k, v in r.attributes.items()})
                      for name, r in entries.roles.items()})
        problems = _cross_check(entries.grants, roles, contracts)
        filters, filter_problems = _row_filters(entries.grants, contracts)
        if problems or filter_problems:
            raise PolicyError(str(path), problems + filter_problems)
        grants += [_grant(g, f) for g, f in zip(entries.grants, filters, strict=True)]
    return Policy(roles, tuple(grants))


def _read(path: Path) -> PolicyFile:
    try:
        return PolicyFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as exc:
        raise PolicyError(str(path), [f"(file): {yaml_problem(exc)}"]) from None
    except ValidationError as exc:
        raise PolicyError(str(path), [f"{where}: {what}" for where, what
                                      in problems_of(exc, PolicyFile)]) from None


def _row_filters(grants: list[GrantEntry], contracts: dict[str, Contract]
                 ) -> tuple[list[RowFilter | None], list[str]]:
    """Each grant's parsed row filter, and what is wrong with any (naming the grant)."""
    filters: list[RowFilter | None] = []
    problems = []
    for i, grant in enumerate(grants):
        filters.append(None)
        if grant.row_filter is None or grant.dataset not in contracts:
            continue
        try:
            filters[-1] = parse(grant.row_filter, grant.dataset, contracts)
        except FilterProblem as exc:
            problems.append(f"grants[{i}].row_filter: grant {grant.id}: {exc}")
    return filters, problems


def _grant(entry: GrantEntry, row_filter: RowFilter | None = None) -> Grant:
    return Grant(
        id=entry.id, dataset=entry.dataset, roles=frozenset(entry.roles),
        purpose=entry.purpose, columns=None if entry.columns is None else frozenset(entry.columns),
        masks=dict(entry.masks), unmasked=frozenset(entry.unmasked),
        valid_from=entry.valid_from, valid_until=entry.valid_until, row_filter=row_filter)


def _cross_check(grants: list[GrantEntry], roles: dict[str, Role],
                 contracts: dict[str, Contract]) -> list[str]:
    """Names a grant uses that the roles so far or the contracts do not define."""
    problems = []
    for i, grant in enumerate(grants):
        at = f"grants[{i}]"
        for role in sorted(set(grant.roles) - roles.keys()):
            problems.append(f"{at}.roles: unknown role {role!r}{closest(role, list(roles))}; "
                            "define it under roles")
        if grant.dataset not in contracts:
            problems.append(f"{at}.dataset: unknown dataset {grant.dataset!r}; "
                            f"known: {', '.join(sorted(contracts))}")
            continue
        known = [c.name for c in contracts[grant.dataset].columns]
        for key, named in (("columns", grant.columns or []), ("masks", grant.masks),
                           ("unmasked", grant.unmasked)):
            problems += [f"{at}.{key}: dataset {grant.dataset} has no column {column!r}"
                         f"{closest(column, known)}" for column in sorted(set(named) - set(known))]
    return problems
