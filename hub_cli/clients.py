"""`hub clients ...` (OAuth2 clients of other systems) and `hub keys rotate`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hub import clients as registry
from hub.settings import get_settings
from hub_cli.common import (
    AttributeOption,
    UsageError,
    known_role,
    parse_attributes,
    record_admin,
    warehouse,
)

app = typer.Typer(help="OAuth2 clients", no_args_is_help=True)
keys = typer.Typer(help="token signing keys", no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="the client's name")]
Role = Annotated[str, typer.Option(help="a role from access_policies/*.yaml")]


@app.command("add")
def add(name: Name, role: Role, attribute: AttributeOption = None) -> int:
    """Register a client; prints its id and secret."""
    attributes = parse_attributes(attribute)
    settings = get_settings()
    known_role(settings, role)
    with warehouse(settings) as conn:
        client, secret = _refused_as_usage(registry.add_client, conn, name=name, role=role,
                                           attributes=attributes)
        record_admin(conn, "client.added", client.client_id, client.role,
                     {"attributes": attributes} if attributes else None)
    _show_secret(client, secret)
    return 0


@app.command("rotate")
def rotate(name: Name) -> int:
    """Issue a new secret for a client."""
    with warehouse(get_settings()) as conn:
        client, secret = _refused_as_usage(registry.rotate_secret, conn, name)
        record_admin(conn, "client.secret_rotated", client.client_id, client.role)
    _show_secret(client, secret)
    return 0


@app.command("list")
def list_() -> int:
    """List clients (ids, names, roles; never secrets)."""
    with warehouse(get_settings()) as conn:
        found = registry.list_clients(conn)
    print(f"{'client_id':<22} {'name':<24} {'role':<24} created")
    for client, created in found:
        print(f"{client.client_id:<22} {client.name:<24} {client.role:<24} {created}")
    return 0


@app.command("remove")
def remove(name: Name) -> int:
    """Delete a client; its tokens stop working at once."""
    with warehouse(get_settings()) as conn:
        client = _refused_as_usage(registry.remove_client, conn, name)
        record_admin(conn, "client.removed", client.client_id, client.role)
    print(f"removed {client.name} ({client.client_id}); its tokens no longer work")
    return 0


@keys.command("rotate")
def rotate_key() -> int:
    """Sign new tokens with a new key; old tokens stay valid until they expire (restart
    `hub serve` to pick it up)."""
    from hub.signing_keys import rotate_signing_key

    settings = get_settings()
    key = rotate_signing_key(settings.keys_dir)
    with warehouse(settings) as conn:
        record_admin(conn, "key.rotated", None, None, {"kid": key.kid})
    print(f"new signing key {key.kid}; restart `hub serve` to sign with it")
    return 0


def _refused_as_usage(action, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return action(*args, **kwargs)
    except registry.ClientError as exc:
        raise UsageError(str(exc)) from None


def _show_secret(client: registry.Client, secret: str) -> None:
    print(f"client_id={client.client_id}\nclient_secret={secret}\nrole={client.role}")
    print("The secret is shown once; the hub keeps only its hash.", file=sys.stderr)
