"""The contract registry: every version of every contract, kept in hub.contracts.

Registering checks the new version against the latest one: a breaking change without a new
major version is refused with the list of breaks. With one it is accepted, the older majors
get a deprecation date (they stay queryable until then), and every department holding a
grant on the dataset gets a notification. Each registration is audited.

The registry is the source of truth for what the hub builds and serves: the newest version
of each dataset's contract, whichever way it arrived (a repository file registered by
`hub run`, `hub contracts register`, `POST /contracts`). A newest version with `status:
retired` stops the dataset (`retire` writes one), and the act is audited.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg
import yaml
from psycopg.rows import class_row, dict_row

from access_policies.model import Policy
from contracts import Contract, load_contract_text
from contracts.diff import diff, version_problem
from contracts.mapping import pg_type
from hub import clock
from hub.audit import AuditEvent, record
from hub.notifications import notify

DEPRECATION_DAYS = 90  # how long consumers keep the old major after a breaking change


class RegistrationRefused(ValueError):
    """The contract cannot be registered; `breaks` lists the breaking changes, if any."""

    def __init__(self, message: str, breaks: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.breaks = breaks


class UnknownType(RegistrationRefused):
    """A column's physicalType is no type the warehouse has: the models compiled from the
    contract could not be built. Lint checks the type's shape only (it is offline)."""


@dataclass(frozen=True)
class StoredVersion:
    """One registered version of a contract, as hub.contracts keeps it."""

    version: str
    source_text: str  # the ODCS YAML exactly as registered
    checksum: str
    deprecated_after: date | None
    status: str  # the contract's ODCS status: a newest version `retired` stops the dataset


@dataclass
class Registration:
    dataset: str
    version: str
    status: str  # registered | unchanged
    breaking_changes: tuple[str, ...] = ()
    other_changes: tuple[str, ...] = ()
    notified: list[str] = field(default_factory=list)
    deprecated_after: date | None = None
    compared_with: str | None = None  # the version in force it was checked against


def register(conn: psycopg.Connection, contract: Contract, text: str, by: str,
             policy: Policy, today: date | None = None) -> Registration:
    """Store `contract` (parsed from `text`) as its dataset's newest version, in `conn`'s txn."""
    conn.execute("select pg_advisory_xact_lock(hashtext('contract ' || %s))",
                 [contract.dataset_id])
    checksum = _checksum(text)
    latest = latest_version(conn, contract.dataset_id)
    was_retired = latest is not None and latest.status == "retired"
    if latest is not None and latest.version == contract.version:
        if latest.checksum == checksum:
            return Registration(contract.dataset_id, contract.version, "unchanged",
                                compared_with=latest.version)
        raise RegistrationRefused(f"version {contract.version} of {contract.dataset_id} is "
                                  "already registered with other content: bump the version")
    _check_types(conn, contract)
    result = Registration(contract.dataset_id, contract.version, "registered",
                          compared_with=latest.version if latest else None)
    if latest is not None:
        old = load_contract_text(latest.source_text, f"{contract.dataset_id}@{latest.version}")
        changes = diff(old, contract)
        problem = version_problem(old, contract, changes)
        if problem:
            raise RegistrationRefused(problem, changes.breaking)
        result.breaking_changes, result.other_changes = changes.breaking, changes.other
        if contract.major > old.major:
            result.deprecated_after = (today or clock.today()) + timedelta(DEPRECATION_DAYS)
            _deprecate(conn, contract, result.deprecated_after)
            result.notified = _notify_consumers(conn, contract, result, policy)
    _insert(conn, contract, text, checksum, by, result)
    if contract.retired and not was_retired:
        _record_retirement(conn, contract, by)
    return result


def _check_types(conn: psycopg.Connection, contract: Contract) -> None:
    """Refuse a physicalType the warehouse does not know (`integr`, `numerc(10,2)`)."""
    for i, column in enumerate(contract.columns):
        try:
            with conn.transaction():  # a type name PostgreSQL cannot parse raises
                known = conn.execute("select to_regtype(%s)", [
                    pg_type(column.physical_type, column.logical_type)]).fetchone()[0]
        except psycopg.Error:
            known = None
        if known is None:
            raise UnknownType(
                f"schema.0.properties.{i}.physicalType: {column.physical_type!r} is no type "
                "the warehouse has, so the dataset's models cannot be compiled; write one such "
                "as text, integer, bigint, numeric(10,2), date or timestamp, or leave "
                "physicalType out (the logicalType's type is used)")


def _checksum(text: str) -> str:
    """sha256 of the parsed document: comments and layout are not content."""
    document = yaml.safe_load(text)
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


NEWEST_FIRST = " order by string_to_array(version, '.')::int[] desc"  # semver, not text
STORED = ("select version, source_text, checksum, deprecated_after, status"
          " from hub.contracts")


def latest_version(conn: psycopg.Connection, dataset: str) -> StoredVersion | None:
    """The newest registered version of the dataset's contract."""
    with conn.cursor(row_factory=class_row(StoredVersion)) as cur:
        return cur.execute(STORED + " where dataset = %s" + NEWEST_FIRST + " limit 1",
                           [dataset]).fetchone()


def history(conn: psycopg.Connection, dataset: str) -> list[dict[str, Any]]:
    """Every registered version of the dataset's contract, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select version, status, registered_by, registered_at, breaking_changes,"
            " deprecated_after, checksum as sha256 from hub.contracts where dataset = %s"
            + NEWEST_FIRST, [dataset]).fetchall()


def newest_of_major(conn: psycopg.Connection, dataset: str, major: int) -> StoredVersion | None:
    """The newest registered version of one major of the dataset's contract."""
    with conn.cursor(row_factory=class_row(StoredVersion)) as cur:
        return cur.execute(STORED + " where dataset = %s and major = %s" + NEWEST_FIRST
                           + " limit 1", [dataset, major]).fetchone()


def _insert(conn: psycopg.Connection, contract: Contract, text: str, checksum: str, by: str,
            result: Registration) -> None:
    conn.execute(
        "insert into hub.contracts (dataset, version, major, department, source_text, checksum,"
        " breaking_changes, registered_by, status) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [contract.dataset_id, contract.version, contract.major, contract.department, text,
         checksum, list(result.breaking_changes), by, contract.status])
    record(conn, AuditEvent(
        kind="contract.registered", client_id=by, department=contract.department,
        dataset=contract.dataset_id, reason=f"version {contract.version} registered",
        detail={"version": contract.version, "sha256": checksum,
                "breaking_changes": list(result.breaking_changes),
                "other_changes": list(result.other_changes)}))


def _record_retirement(conn: psycopg.Connection, contract: Contract, by: str) -> None:
    # Its own event besides contract.registered: auditors look for retirements by kind.
    record(conn, AuditEvent(
        kind="contract.retired", client_id=by, department=contract.department,
        dataset=contract.dataset_id, reason=f"retired by version {contract.version}: no "
        "longer built, and its rows are gone (410)", detail={"version": contract.version}))


def _deprecate(conn: psycopg.Connection, contract: Contract, after: date) -> None:
    conn.execute("update hub.contracts set deprecated_after = %s where dataset = %s"
                 " and major < %s and deprecated_after is null",
                 [after, contract.dataset_id, contract.major])


def consumers(conn: psycopg.Connection, policy: Policy, dataset: str, owner: str) -> list[str]:
    """Departments other than the owner holding a grant on `dataset` (policy or request)."""
    found = {policy.roles[r].department for g in policy.grants if g.dataset == dataset
             for r in g.roles if r in policy.roles}
    found |= {d for (d,) in conn.execute(
        "select distinct department from hub.access_requests where dataset = %s and"
        " status = 'approved' and valid_until >= %s", [dataset, clock.today()])}
    return sorted(found - {owner})


def _notify_consumers(conn: psycopg.Connection, contract: Contract, result: Registration,
                      policy: Policy) -> list[str]:
    departments = consumers(conn, policy, contract.dataset_id, contract.department)
    for department in departments:
        notify(conn, department, contract.dataset_id, "contract.breaking_change",
               f"{contract.dataset_id} {contract.version} changes in a breaking way: "
               + "; ".join(result.breaking_changes)
               + f". The previous major version is served until {result.deprecated_after}.",
               {"version": contract.version, "breaking_changes": list(result.breaking_changes),
                "deprecated_after": str(result.deprecated_after)})
    return departments
