"""What every command shares: the usage error, the warehouse connection, admin audit records."""

from __future__ import annotations

from contextlib import AbstractContextManager

import psycopg

from hub.settings import Settings


class UsageError(Exception):
    """Bad input or configuration; the message says what to fix (exit code 2)."""


def warehouse(settings: Settings) -> AbstractContextManager[psycopg.Connection]:
    """A transaction on the warehouse, its schema brought up to date first."""
    from hub.bootstrap import bootstrap
    from hub.warehouse import resolve_url, transaction

    url = resolve_url(settings)
    bootstrap(url)
    return transaction(url)


def record_admin(conn: psycopg.Connection, kind: str, client_id: str | None,
                 role: str | None, detail: dict | None = None) -> None:
    """An administrative act done at the command line, on the audit record."""
    from hub.audit import AuditEvent, record

    record(conn, AuditEvent(kind=kind, decision="allow", reason="hub CLI",
                            client_id=client_id, role=role, detail=detail or {}))


def known_role(settings: Settings, role: str) -> None:
    from access_policies import load_policies
    from contracts import load_all

    roles = load_policies(settings.policies_dir, load_all(settings.contracts_dir)).roles
    if role not in roles:
        raise UsageError(f"unknown role {role!r}; roles defined in access_policies/: "
                         f"{', '.join(sorted(roles))}")
