"""`hub users ...`: the people who sign in to the console (authorization code + PKCE)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hub.settings import get_settings
from hub.users import UserError, add_user, list_users, remove_user
from hub_cli.common import (
    AttributeOption,
    UsageError,
    known_role,
    parse_attributes,
    record_admin,
    warehouse,
)

app = typer.Typer(help="people who sign in to the console", no_args_is_help=True)
Username = Annotated[str, typer.Argument(help="the name they sign in with")]


@app.command("add")
def add(username: Username,
        role: Annotated[str, typer.Option(help="a role from access_policies/*.yaml")],
        attribute: AttributeOption = None) -> int:
    """Create a user; prints a generated password once."""
    attributes = parse_attributes(attribute)
    settings = get_settings()
    known_role(settings, role)
    with warehouse(settings) as conn:
        try:
            password = add_user(conn, username, role, attributes)
        except UserError as exc:
            raise UsageError(str(exc)) from None
        record_admin(conn, "user.added", f"user:{username}", role,
                     {"attributes": attributes} if attributes else None)
    print(f"username={username}\npassword={password}\nrole={role}")
    print("The password is shown once; the hub keeps only its hash.", file=sys.stderr)
    return 0


@app.command("list")
def list_() -> int:
    """List users and their roles."""
    with warehouse(get_settings()) as conn:
        for username, role in list_users(conn):
            print(f"{username:<24} {role}")
    return 0


@app.command("remove")
def remove(username: Username) -> int:
    """Delete a user; their tokens stop working at once."""
    with warehouse(get_settings()) as conn:
        try:
            remove_user(conn, username)
        except UserError as exc:
            raise UsageError(str(exc)) from None
        record_admin(conn, "user.removed", f"user:{username}", None)
    print(f"removed {username}: their tokens stop working at once")
    return 0
