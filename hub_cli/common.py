"""What every command shares: the usage error, the warehouse connection, admin audit records."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Annotated

import psycopg
import typer

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


# `--attribute district=7`, repeatable: what a grant's row filter compares rows with.
AttributeOption = Annotated[list[str] | None, typer.Option(
    "--attribute", help="NAME=VALUE, e.g. district=7 (repeatable): an attribute that row "
    "filters of grants compare rows with")]
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_attributes(given: list[str] | None) -> dict[str, str]:
    """`NAME=VALUE` options as a mapping; UsageError names the bad one and the fix."""
    found: dict[str, str] = {}
    for item in given or []:
        name, equals, value = item.partition("=")
        if not equals or not ATTRIBUTE_NAME.fullmatch(name) or not value:
            raise UsageError(f"--attribute {item!r}: write NAME=VALUE, e.g. district=7")
        if name in found:
            raise UsageError(f"--attribute {name} is given twice; give each attribute once")
        found[name] = value
    return found


def prefect_api(command: str) -> str:
    """PREFECT_API_URL, once its server has answered; else one line saying what to do."""
    import httpx
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise UsageError(f"{command} needs a Prefect server: set PREFECT_API_URL, e.g. "
                         "http://127.0.0.1:4200/api (see docs/workers.md)")
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise UsageError(f"no Prefect server answers at PREFECT_API_URL={url} ({exc}): "
                         "start one (`prefect server start`) or correct the address") from None
    return url
