"""Access policy files: roles and grants, checked against the contracts when loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from contracts import Contract
from contracts.model import MASK_KINDS

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


@dataclass(frozen=True)
class Policy:
    roles: dict[str, Role]
    grants: tuple[Grant, ...]


def load_policies(directory: Path, contracts: dict[str, Contract]) -> Policy:
    """Every `*.yaml` in `directory`, merged; unknown names are errors now, not at request time."""
    roles: dict[str, Role] = {}
    grants: list[Grant] = []
    for path in sorted(directory.glob("*.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        problems: list[str] = []
        roles.update(_roles(document.get("roles") or {}, problems))
        grants += [_grant(i, g, problems) for i, g in enumerate(document.get("grants") or [])]
        problems += _cross_check(grants, roles, contracts)
        if problems:
            raise PolicyError(str(path), problems)
    return Policy(roles, tuple(grants))


def _roles(raw: dict[str, Any], problems: list[str]) -> dict[str, Role]:
    roles = {}
    for name, spec in raw.items():
        scopes = frozenset(spec.get("scopes") or [])
        for scope in sorted(scopes - KNOWN_SCOPES):
            problems.append(f"roles.{name}.scopes: unknown scope {scope!r}; "
                            f"use one of {', '.join(sorted(KNOWN_SCOPES))}")
        if not spec.get("department"):
            problems.append(f"roles.{name}.department: missing; name the role's department")
        roles[name] = Role(name, str(spec.get("department", "")), scopes)
    return roles


def _grant(i: int, raw: dict[str, Any], problems: list[str]) -> Grant:
    for key in ("id", "dataset", "roles", "purpose"):
        if not raw.get(key):
            problems.append(f"grants.{i}.{key}: missing; every grant states it")
    columns = raw.get("columns", "all")
    masks = dict(raw.get("masks") or {})
    for column, kind in masks.items():
        if kind not in MASK_KINDS:
            problems.append(f"grants.{i}.masks.{column}: unknown mask {kind!r}; "
                            f"use one of {', '.join(sorted(MASK_KINDS))}")
    return Grant(
        id=str(raw.get("id", f"grant-{i}")), dataset=str(raw.get("dataset", "")),
        roles=frozenset(raw.get("roles") or []), purpose=str(raw.get("purpose", "")),
        columns=None if columns == "all" else frozenset(columns), masks=masks,
        unmasked=frozenset(raw.get("unmasked") or []),
        valid_from=raw.get("valid_from"), valid_until=raw.get("valid_until"),
    )


def _cross_check(grants: list[Grant], roles: dict[str, Role],
                 contracts: dict[str, Contract]) -> list[str]:
    problems = []
    for grant in grants:
        for role in sorted(grant.roles - roles.keys()):
            problems.append(f"grant {grant.id}: unknown role {role!r}; define it under roles")
        if grant.dataset not in contracts:
            problems.append(f"grant {grant.id}: unknown dataset {grant.dataset!r}; "
                            f"known: {', '.join(sorted(contracts))}")
            continue
        known = {c.name for c in contracts[grant.dataset].columns}
        named = (grant.columns or frozenset()) | grant.unmasked | grant.masks.keys()
        for column in sorted(named - known):
            problems.append(f"grant {grant.id}: dataset {grant.dataset} has no column {column!r}")
    return problems
