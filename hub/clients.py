"""OAuth2 client registry: ids, roles and scrypt-hashed secrets in `hub.clients`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    role: str
    attributes: dict[str, str] = field(default_factory=dict)  # e.g. {"district": "7"}


class ClientError(ValueError):
    """A client operation that cannot be done; the message says why."""


def add_client(conn: psycopg.Connection, *, name: str, role: str,
               attributes: dict[str, str] | None = None) -> tuple[Client, str]:
    """Register a client; return it and its secret (shown once, stored only hashed)."""
    taken = conn.execute("select 1 from hub.clients where name = %s", [name]).fetchone()
    if taken:
        raise ClientError(f"a client named {name!r} exists; pick another name or rotate its secret")
    client = Client(f"cdh_{secrets.token_hex(8)}", name, role, dict(attributes or {}))
    secret = secrets.token_urlsafe(32)
    conn.execute("insert into hub.clients (client_id, name, role, secret_hash, attributes) "
                 "values (%s, %s, %s, %s, %s)", [client.client_id, name, role,
                                                 hash_secret(secret), Jsonb(client.attributes)])
    return client, secret


def rotate_secret(conn: psycopg.Connection, name: str) -> tuple[Client, str]:
    client = find_by_name(conn, name)
    if client is None:
        raise ClientError(f"no client named {name!r}")
    secret = secrets.token_urlsafe(32)
    conn.execute("update hub.clients set secret_hash = %s where client_id = %s",
                 [hash_secret(secret), client.client_id])
    return client, secret


def find_by_name(conn: psycopg.Connection, name: str) -> Client | None:
    with conn.cursor(row_factory=class_row(Client)) as cur:
        return cur.execute("select client_id, name, role, attributes from hub.clients"
                           " where name = %s",
                           [name]).fetchone()


def authenticate(conn: psycopg.Connection, client_id: str, secret: str) -> Client | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select client_id, name, role, attributes, secret_hash from hub.clients "
                          "where client_id = %s", [client_id]).fetchone()
    # Hash even for an unknown id so response time does not reveal which ids exist.
    stored = row.pop("secret_hash") if row else hash_secret("unknown-client")
    ok = verify_secret(secret, stored)
    return Client(**row) if row and ok else None


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_secret(secret: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    actual = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), **SCRYPT)
    return hmac.compare_digest(actual, base64.b64decode(digest))


def list_clients(conn: psycopg.Connection) -> list[tuple[Client, str]]:
    """Every client with its creation time (never its secret)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("select client_id, name, role, attributes, created_at"
                           " from hub.clients order by name").fetchall()
    return [(Client(row["client_id"], row["name"], row["role"], row["attributes"]),
             row["created_at"].isoformat())
            for row in rows]


def remove_client(conn: psycopg.Connection, name: str) -> Client:
    """Delete a client; its tokens stop working at once (the API checks the client exists)."""
    client = find_by_name(conn, name)
    if client is None:
        raise ClientError(f"no client named {name!r}")
    conn.execute("delete from hub.clients where client_id = %s", [client.client_id])
    return client
