"""`hub users ...`: the people who sign in to the console (authorization code + PKCE)."""

from __future__ import annotations

import argparse
import sys

from hub.settings import Settings


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from hub.cli import UsageError, known_role, record_admin, warehouse
    from hub.users import UserError, add_user

    known_role(settings, args.role)
    with warehouse(settings) as conn:
        try:
            password = add_user(conn, args.username, args.role)
        except UserError as exc:
            raise UsageError(str(exc)) from None
        record_admin(conn, "user.added", f"user:{args.username}", args.role)
    print(f"username={args.username}\npassword={password}\nrole={args.role}")
    print("The password is shown once; the hub keeps only its hash.", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from hub.cli import warehouse
    from hub.users import list_users

    with warehouse(settings) as conn:
        for username, role in list_users(conn):
            print(f"{username:<24} {role}")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from hub.cli import UsageError, record_admin, warehouse
    from hub.users import UserError, remove_user

    with warehouse(settings) as conn:
        try:
            remove_user(conn, args.username)
        except UserError as exc:
            raise UsageError(str(exc)) from None
        record_admin(conn, "user.removed", f"user:{args.username}", None)
    print(f"removed {args.username}: their tokens stop working at once")
    return 0
