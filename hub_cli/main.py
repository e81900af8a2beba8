"""`hub`: the command line. Exit codes: 0 done, 1 a dataset did not publish or a check
failed, 2 bad input (the message says what to fix)."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

# Typer 0.29 vendors its own Click (pinned in pyproject.toml): its exceptions live there.
from typer._click import exceptions as click_errors

from access_policies import PolicyError
from api.ratelimit import LimitsUnavailable
from contracts import ContractError
from hub.keyfiles import ExposedKeyFile
from hub.migrations import MigrationError
from hub.runtime import configure
from hub.settings import get_settings, masked_url
from hub_cli import (
    audit,
    backup,
    clients,
    contracts,
    deploy,
    pipeline,
    policies,
    users,
    warehouse,
    worker,
)
from hub_cli.common import UsageError
from hub_cli.stopping import Stopped, stop_signals_raise

app = typer.Typer(name="hub", help="Civic Data Hub", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
pipeline.register(app)
deploy.register(app)
worker.register(app)
app.add_typer(clients.app, name="clients")
app.add_typer(clients.keys, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(contracts.app, name="contracts")
app.add_typer(users.app, name="users")
app.add_typer(policies.app, name="policies")
app.add_typer(backup.app, name="backup")
app.add_typer(warehouse.app, name="warehouse")


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code. Mistakes of the caller's print one line."""
    try:
        configure(get_settings())
    except ValidationError as exc:  # a HUB_ variable that does not parse: say which
        print(f"error: {setting_problem(exc)}", file=sys.stderr)
        return 2
    try:
        with stop_signals_raise():
            return _run(argv)
    except Stopped as stop:  # the command has unwound; its cleanups have run
        print(f"stopped on {stop.name}", file=sys.stderr)
        return 128 + stop.signum  # the shell's convention for "ended by this signal"


def _run(argv: list[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="hub", standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except click_errors.ClickException as exc:  # a usage mistake Click found: it says which
        exc.show()
        return exc.exit_code
    except typer.Abort:
        print("stopped", file=sys.stderr)
        return 130
    except (UsageError, ContractError, PolicyError, MigrationError, FileNotFoundError,
            ExposedKeyFile, LimitsUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


def setting_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = "HUB_" + "_".join(str(part) for part in first["loc"][:1]).upper()
    given = first.get("input")
    if isinstance(given, str):
        given = masked_url(given)
    return f"{name}={given!r}: {first['msg']}"
