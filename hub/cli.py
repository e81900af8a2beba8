"""`hub`: the command line. Exit codes: 0 done, 1 a dataset did not publish, 2 bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from contracts import ContractError
from hub.settings import Settings, get_settings


class UsageError(Exception):
    """Bad input or configuration; the message says what to fix."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    from hub.runtime import configure

    configure(settings)
    try:
        return args.handler(args, settings)
    except (UsageError, ContractError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Civic Data Hub")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    run = _command(sub, "run", "one pipeline pass: ingest, build, validate, publish", cmd_run)
    run.add_argument("--dataset", help="only this dataset, e.g. public_works.service_requests")
    serve = _command(sub, "serve", "serve the API", cmd_serve)
    demo = _command(sub, "demo", "run the pipeline, then serve with a demo client", cmd_demo)
    for p in (serve, demo):
        p.add_argument("--host", default=None)
        p.add_argument("--port", type=int, default=None)
    clients = sub.add_parser("clients", help="OAuth2 clients").add_subparsers(required=True)
    add = _command(clients, "add", "register a client; prints its id and secret", cmd_clients_add)
    add.add_argument("name")
    add.add_argument("--role", required=True, help="a role from access_policies/*.yaml")
    rotate = _command(clients, "rotate", "issue a new secret for a client", cmd_clients_rotate)
    rotate.add_argument("name")
    _command(clients, "list", "list clients (ids, names, roles; never secrets)",
             cmd_clients_list)
    remove = _command(clients, "remove", "delete a client; its tokens stop working at once",
                      cmd_clients_remove)
    remove.add_argument("name")
    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(required=True)
    _command(keys, "rotate", "sign new tokens with a new key; old tokens stay valid until "
             "they expire (restart `hub serve` to pick it up)", cmd_keys_rotate)
    _audit_commands(sub)
    _contract_commands(sub)
    _user_commands(sub)
    return parser


def _user_commands(sub: argparse._SubParsersAction) -> None:
    from hub import users_cli

    users = sub.add_parser("users", help="people who sign in to the console")
    commands = users.add_subparsers(required=True)
    add = _command(commands, "add", "create a user; prints a generated password once",
                   users_cli.cmd_add)
    add.add_argument("username")
    add.add_argument("--role", required=True, help="a role from access_policies/*.yaml")
    _command(commands, "list", "list users and their roles", users_cli.cmd_list)
    remove = _command(commands, "remove", "delete a user; their tokens stop working at once",
                      users_cli.cmd_remove)
    remove.add_argument("username")


def _contract_commands(sub: argparse._SubParsersAction) -> None:
    from hub import contracts_cli as cc

    contracts = sub.add_parser("contracts", help="data contracts").add_subparsers(required=True)
    lint = _command(contracts, "lint", "check a contract file (offline)", cc.cmd_lint)
    lint.add_argument("files", nargs="+", type=Path)
    comp = _command(contracts, "compile", "write the dbt files compiled from contracts",
                    cc.cmd_compile)
    comp.add_argument("--check", action="store_true", help="fail if a file is out of date")
    diff = _command(contracts, "diff", "list the changes from OLD to NEW, breaking ones first "
                    "(offline)", cc.cmd_diff)
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)
    reg = _command(contracts, "register", "store a contract version in the registry",
                   cc.cmd_register)
    reg.add_argument("file", type=Path)
    reg.add_argument("--by", default="hub-cli", help="who registers it (recorded)")


def _audit_commands(sub: argparse._SubParsersAction) -> None:
    from hub import audit_cli

    audit = sub.add_parser("audit", help="the audit ledger").add_subparsers(required=True)
    _command(audit, "seal", "chain and sign the audit rows written since the last seal",
             audit_cli.cmd_seal)
    verify = _command(audit, "verify", "check the whole chain and every checkpoint",
                      audit_cli.cmd_verify)
    verify.add_argument("--export", type=Path, help="verify this export file instead")
    verify.add_argument("--public-key", type=Path, help="PEM file (with --export)")
    export = _command(audit, "export", "write entries of a time range, with their checkpoints",
                      audit_cli.cmd_export)
    export.add_argument("--since", required=True, help="ISO date or time, inclusive")
    export.add_argument("--until", required=True, help="ISO date or time, exclusive")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--output", "-o", type=Path, required=True)
    _command(audit, "public-key", "print the ledger's public key (PEM)", audit_cli.cmd_public_key)
    archive = _command(audit, "archive", "move entries past retention into archive files",
                       audit_cli.cmd_archive)
    archive.add_argument("--before", help="ISO time (default: HUB_AUDIT_RETENTION_DAYS ago)")


def _command(sub: argparse._SubParsersAction, name: str, help_: str,
             handler: Callable) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_, description=help_)
    parser.set_defaults(handler=handler)
    return parser


# ---------- pipeline


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    reports = _run_pipeline(settings, args.dataset)
    print(format_reports(reports))
    return 0 if all(r.status == "published" for r in reports) else 1


def _run_pipeline(settings: Settings, dataset: str | None) -> list:
    from flows import progress
    from flows.pipeline import run_all
    from hub.progress_bars import ProgressBars

    try:
        with ProgressBars() as bars:
            progress.use(bars)
            return run_all(dataset, settings)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    except ValueError as exc:  # ContractError / PolicyError: a file to fix
        raise UsageError(str(exc)) from None
    finally:
        progress.use(None)


def format_reports(reports: list) -> str:
    lines = [f"{'dataset':<34} {'status':<10} {'loaded':>7} {'version':>7} {'rows':>7}"]
    for r in reports:
        version = "-" if r.version is None else str(r.version)
        rows = "-" if r.row_count is None else str(r.row_count)
        lines.append(f"{r.dataset:<34} {r.status:<10} {r.rows_loaded:>7} {version:>7} {rows:>7}")
        lines += [f"    {f.rule} [{f.engine}]: {f.message}" for f in r.failures]
        lines += [f"    warning: {w}" for w in r.warnings]
    failed = [r for r in reports if r.status != "published"]
    if failed:
        lines.append(f"{len(failed)} of {len(reports)} dataset(s) not published: the rules above "
                     "failed; the last good version stays served.")
    return "\n".join(lines)


# ---------- serving


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    _serve(settings, args.host, args.port, on_ready=None)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    reports = _run_pipeline(settings, None)
    print(format_reports(reports))
    client_id, secret = _demo_client(settings)
    host, port = args.host or settings.api_host, args.port or settings.api_port
    _serve(settings, host, port, on_ready=lambda: print(_demo_instructions(
        host, port, client_id, secret), flush=True))
    return 0


def _serve(settings: Settings, host: str | None, port: int | None,
           on_ready: Callable[[], None] | None) -> None:
    import uvicorn

    from api.main import create_app
    from hub.bootstrap import bootstrap
    from hub.warehouse import resolve_url

    url = resolve_url(settings)
    bootstrap(url)
    app = create_app(settings, url, on_ready=on_ready)
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port,
                log_level="warning")


def _demo_client(settings: Settings) -> tuple[str, str]:
    from hub import clients
    from hub.warehouse import resolve_url, transaction

    with transaction(resolve_url(settings)) as conn:
        if clients.find_by_name(conn, "demo-transport") is None:
            client, secret = clients.add_client(conn, name="demo-transport",
                                                role="transport_analyst")
        else:  # secrets are stored hashed: a new one is the only way to show one
            client, secret = clients.rotate_secret(conn, "demo-transport")
    return client.client_id, secret


def _demo_instructions(host: str, port: int, client_id: str, secret: str) -> str:
    base = f"http://{host}:{port}"
    return "\n".join([
        f"serving the Civic Data Hub API on {base} (OpenAPI docs: {base}/docs)",
        "Paste into another shell to get a token and read masked rows as a transport analyst:",
        "",
        f"  TOKEN=$(curl -s -u '{client_id}:{secret}' -d grant_type=client_credentials "
        f"{base}/oauth/token | python3 -c 'import json,sys; print(json.load(sys.stdin)"
        "[\"access_token\"])')",
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" "
        f"'{base}/datasets/public_works.service_requests/rows?limit=3' | python3 -m json.tool",
        "",
        "Press Ctrl+C to stop.",
    ])


# ---------- clients


def cmd_clients_add(args: argparse.Namespace, settings: Settings) -> int:
    from hub import clients

    known_role(settings, args.role)
    with warehouse(settings) as conn:
        try:
            client, secret = clients.add_client(conn, name=args.name, role=args.role)
        except clients.ClientError as exc:
            raise UsageError(str(exc)) from None
        record_admin(conn, "client.added", client.client_id, client.role)
    _show_secret(client, secret)
    return 0


def cmd_clients_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from hub import clients

    with warehouse(settings) as conn:
        try:
            client, secret = clients.rotate_secret(conn, args.name)
        except clients.ClientError as exc:
            raise UsageError(str(exc)) from None
        record_admin(conn, "client.secret_rotated", client.client_id, client.role)
    _show_secret(client, secret)
    return 0


def _show_secret(client, secret: str) -> None:  # noqa: ANN001 - a hub.clients.Client
    print(f"client_id={client.client_id}\nclient_secret={secret}\nrole={client.role}")
    print("The secret is shown once; the hub keeps only its hash.", file=sys.stderr)


def cmd_clients_list(args: argparse.Namespace, settings: Settings) -> int:
    from hub import clients

    with warehouse(settings) as conn:
        found = clients.list_clients(conn)
    print(f"{'client_id':<22} {'name':<24} {'role':<24} created")
    for client, created in found:
        print(f"{client.client_id:<22} {client.name:<24} {client.role:<24} {created}")
    return 0


def cmd_clients_remove(args: argparse.Namespace, settings: Settings) -> int:
    from hub import clients

    with warehouse(settings) as conn:
        try:
            client = clients.remove_client(conn, args.name)
        except clients.ClientError as exc:
            raise UsageError(str(exc)) from None
        record_admin(conn, "client.removed", client.client_id, client.role)
    print(f"removed {client.name} ({client.client_id}); its tokens no longer work")
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from api.security import rotate_signing_key

    key = rotate_signing_key(settings.keys_dir)
    with warehouse(settings) as conn:
        record_admin(conn, "key.rotated", None, None, {"kid": key.kid})
    print(f"new signing key {key.kid}; restart `hub serve` to sign with it")
    return 0


def record_admin(conn, kind: str, client_id: str | None, role: str | None,  # noqa: ANN001
                  detail: dict | None = None) -> None:
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


def warehouse(settings: Settings):  # noqa: ANN202 - a context manager of a connection
    from hub.bootstrap import bootstrap
    from hub.warehouse import resolve_url, transaction

    url = resolve_url(settings)
    bootstrap(url)
    return transaction(url)
