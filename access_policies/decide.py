"""The decision engine: may this role read this dataset, which columns, masked how.

Pure: the caller passes the clock. Deny by default; a personal column is masked unless
the deciding grant explicitly unmasks it.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from access_policies.model import Grant, Policy
from access_policies.row_filter import Bound, MissingAttribute, bind
from contracts import Column, Contract

# Mask used for a personal column whose contract names none.
DEFAULT_MASK = {"number": "null", "integer": "null", "date": "year_only", "timestamp": "year_only"}


@dataclass(frozen=True)
class ColumnAccess:
    name: str
    mask: str | None  # None: shown as stored


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    grant: Grant | None = None
    columns: tuple[ColumnAccess, ...] = ()
    # The grant's row filter bound to the caller's attributes; None: every row.
    rows: Bound | None = None
    missing_attribute: str | None = None  # refused: the filter needs it, the caller lacks it
    attributes: Mapping[str, str] | None = None  # the caller's, role's included

    def column(self, name: str) -> ColumnAccess | None:
        return next((c for c in self.columns if c.name == name), None)


def decide(policy: Policy, *, role: str, contract: Contract, today: date,
           client_id: str | None = None, extra: tuple[Grant, ...] = (),
           attributes: Mapping[str, str] | None = None) -> Decision:
    """The first valid grant of `contract`'s dataset to `role` (or to `client_id`) decides.

    `extra` holds grants from approved access requests, which name clients, not roles.
    `attributes` are the caller's own; the role's attributes win over them. A row filter
    naming an attribute the caller lacks refuses: never every row."""
    if role not in policy.roles:
        return Decision(False, f"unknown role {role!r}")
    candidates = [g for g in (*policy.grants, *extra)
                  if g.dataset == contract.dataset_id
                  and (role in g.roles or (client_id is not None and client_id in g.clients))]
    if not candidates:
        return Decision(False, f"no grant of {contract.dataset_id} to role {role}")
    current = [g for g in candidates if _valid(g, today)]
    if not current:
        return Decision(False, f"grant {candidates[0].id} is not valid on {today.isoformat()}")
    grant = current[0]
    columns = tuple(ColumnAccess(c.name, _mask(c, grant)) for c in contract.columns
                    if grant.columns is None or c.name in grant.columns)
    # The role's attributes win; a ChainMap looks each name up, never lists them all.
    merged = ChainMap(policy.roles[role].attributes, attributes if attributes is not None else {})
    if grant.row_filter is None:
        return Decision(True, f"grant {grant.id}: {grant.purpose}", grant, columns,
                        attributes=merged)
    try:
        rows = bind(grant.row_filter, merged)
    except MissingAttribute as missing:
        return Decision(False, f"grant {grant.id} filters rows by the attribute "
                        f"{missing.name!r}, which the caller lacks", grant,
                        missing_attribute=missing.name, attributes=merged)
    return Decision(True, f"grant {grant.id}: {grant.purpose}", grant, columns, rows, None,
                    merged)


def _valid(grant: Grant, today: date) -> bool:
    if grant.valid_from and today < grant.valid_from:
        return False
    return not (grant.valid_until and today > grant.valid_until)


def _mask(column: Column, grant: Grant) -> str | None:
    if column.name in grant.masks:
        return grant.masks[column.name]
    if not column.personal or column.name in grant.unmasked:
        return None
    return column.mask or DEFAULT_MASK.get(column.logical_type, "redact")
