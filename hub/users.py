"""People who sign in to the console: `hub users add/list/remove`. Passwords are kept only
as scrypt hashes (the same scheme as client secrets)."""

from __future__ import annotations

import secrets
from functools import cache

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hub.clients import hash_secret, verify_secret


class UserError(ValueError):
    """A user operation that cannot be done; the message says why."""


def add_user(conn: psycopg.Connection, username: str, role: str,
             attributes: dict[str, str] | None = None) -> str:
    """Create the user with a generated password; return the password (shown once)."""
    password = secrets.token_urlsafe(18)
    try:
        conn.execute("insert into hub.users (username, role, password_hash, attributes)"
                     " values (%s, %s, %s, %s)",
                     [username, role, hash_secret(password), Jsonb(attributes or {})])
    except psycopg.errors.UniqueViolation:
        raise UserError(f"a user named {username!r} already exists") from None
    return password


def check_password(conn: psycopg.Connection, username: str, password: str) -> str | None:
    """The user's role if the password is right, else None."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select role, password_hash from hub.users where username = %s",
                          [username]).fetchone()
    if row is None:
        verify_secret(password, _dummy_hash())  # the same work whether or not they exist
        return None
    return row["role"] if verify_secret(password, row["password_hash"]) else None


@cache
def _dummy_hash() -> str:
    return hash_secret(secrets.token_urlsafe(18))


def list_users(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("select username, role from hub.users order by username").fetchall()


def remove_user(conn: psycopg.Connection, username: str) -> None:
    if conn.execute("delete from hub.users where username = %s", [username]).rowcount == 0:
        raise UserError(f"no user named {username!r}")


def attributes_of(conn: psycopg.Connection, username: str) -> dict[str, str]:
    """The user's attributes ({} for an unknown user): they go into the user's tokens."""
    row = conn.execute("select attributes from hub.users where username = %s",
                       [username]).fetchone()
    return row[0] if row else {}
