"""`hub run`, `hub serve`, `hub demo`: a pipeline pass, the API, or both with a demo client."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from hub.settings import Settings, get_settings
from hub_cli.common import UsageError
from hub_cli.run_log import run_log

Host = Annotated[str | None, typer.Option(help="address to listen on (default HUB_API_HOST)")]
Port = Annotated[int | None, typer.Option(help="port to listen on (default HUB_API_PORT)")]


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("serve")(serve)
    app.command("demo")(demo)


def run(dataset: Annotated[str | None, typer.Option(
        help="only this dataset, e.g. public_works.service_requests")] = None,
        verbose: Annotated[bool, typer.Option(
            "--verbose", help="show Prefect's and dbt's logs on the terminal too")] = False,
        ) -> int:
    """One pipeline pass: ingest, build, validate, publish. Logs go to HUB_HOME/logs."""
    settings = get_settings()
    with run_log(settings, verbose) as log_file:
        reports = run_pipeline(settings, dataset)
    print(format_reports(reports))
    _point_to(log_file, reports)
    return exit_code(reports)


def exit_code(reports: list) -> int:
    """0 every dataset published, 2 a contract or policy file to fix, 1 anything else."""
    from flows.problems import BAD_FILES

    if any(f.engine in BAD_FILES for r in reports for f in r.failures):
        return 2
    return 0 if all(r.status == "published" for r in reports) else 1


def _point_to(log_file: Path, reports: list) -> None:
    """One line saying where the traceback of an internal error is."""
    from flows.problems import INTERNAL

    if any(f.engine == INTERNAL for r in reports for f in r.failures):
        print(f"internal error: its traceback is in {log_file}; please report it to the "
              "hub's maintainers", file=sys.stderr)


CertFile = Annotated[Path | None, typer.Option(
    help="TLS certificate (PEM) to serve https with (default HUB_TLS_CERTFILE)")]
KeyFile = Annotated[Path | None, typer.Option(
    help="its private key (PEM, mode 0600; default HUB_TLS_KEYFILE)")]


def serve(host: Host = None, port: Port = None, ssl_certfile: CertFile = None,
          ssl_keyfile: KeyFile = None) -> int:
    """Serve the API; with a certificate and key, over https only (HSTS, Secure cookies)."""
    settings = listening(get_settings(), host, port)
    return _serve(with_tls(settings, ssl_certfile, ssl_keyfile), on_ready=None)


def with_tls(settings: Settings, certfile: Path | None, keyfile: Path | None) -> Settings:
    """The settings with the TLS files given; both or neither, existing, the key private."""
    from hub.keyfiles import check_private

    settings = settings.model_copy(update={"tls_certfile": certfile or settings.tls_certfile,
                                           "tls_keyfile": keyfile or settings.tls_keyfile})
    given = [f for f in (settings.tls_certfile, settings.tls_keyfile) if f is not None]
    if len(given) == 1:
        raise UsageError("TLS needs both a certificate and its key: give --ssl-certfile and "
                         "--ssl-keyfile (or HUB_TLS_CERTFILE and HUB_TLS_KEYFILE)")
    for path in given:
        if not path.is_file():
            raise UsageError(f"TLS file {path} does not exist")
    if given:
        check_private(settings.tls_keyfile)
    return settings


def demo(host: Host = None, port: Port = None) -> int:
    """Run the pipeline, then serve with a demo client."""
    settings = listening(get_settings(), host, port)
    with run_log(settings, verbose=False) as log_file:
        reports = run_pipeline(settings, None)
    print(format_reports(reports))
    _point_to(log_file, reports)
    client_id, secret = _demo_client(settings)
    return _serve(settings, on_ready=lambda: print(_demo_instructions(
        settings.api_host, settings.api_port, client_id, secret), flush=True))


def listening(settings: Settings, host: str | None, port: int | None) -> Settings:
    """The settings with the address the API will listen on (the issuer follows it)."""
    return settings.model_copy(update={"api_host": host or settings.api_host,
                                       "api_port": port or settings.api_port})


def run_pipeline(settings: Settings, dataset: str | None) -> list:
    from demo.sources import stand_in
    from flows import progress
    from flows.pipeline import run_all
    from hub_cli.progress_bars import ProgressBars

    try:
        with ProgressBars() as bars:
            progress.use(bars)
            return run_all(dataset, settings, stand_in if settings.demo_sources else None)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    except ValueError as exc:  # ContractError / PolicyError: a file to fix
        raise UsageError(str(exc)) from None
    finally:
        progress.use(None)


def format_reports(reports: list) -> str:
    """The summary table: a row per dataset, each problem on a line of its own under it."""
    lines = [f"{'dataset':<34} {'status':<10} {'loaded':>7} {'version':>7} {'rows':>7}"]
    for r in reports:
        version = "-" if r.version is None else str(r.version)
        rows = "-" if r.row_count is None else str(r.row_count)
        lines.append(f"{r.dataset:<34} {r.status:<10} {r.rows_loaded:>7} {version:>7} {rows:>7}")
        lines += [f"    {r.dataset} {f.rule} [{f.engine}]: {f.message}" for f in r.failures]
        lines += [f"    {r.dataset} warning: {w}" for w in r.warnings]
    return "\n".join(lines + _verdict(reports))


def _verdict(reports: list) -> list[str]:
    failed = [r for r in reports if r.status != "published"]
    if any(r.status == "not run" for r in reports):
        return [f"{len(failed)} of {len(reports)} dataset(s) not published: nothing ran; fix "
                "the contract file(s) above (`hub contracts lint FILE` checks one)."]
    if failed:
        return [f"{len(failed)} of {len(reports)} dataset(s) not published: see the lines "
                "above; the last good version stays served."]
    return []


def _serve(settings: Settings, on_ready: Callable[[], None] | None) -> int:
    """Serve until SIGTERM or SIGINT (to the process or its group), then stop gracefully:
    requests in flight are answered (for HUB_SHUTDOWN_GRACE_SECONDS at most), the audit
    sealer's last batch is sealed, one line is printed. 0 once stopped; 1 if it never
    started serving (uvicorn has said why, e.g. the port is taken)."""
    import uvicorn

    from api.main import create_app
    from hub.bootstrap import bootstrap
    from hub.warehouse import resolve_url
    from hub_cli.stopping import stop_signals_tell

    url = resolve_url(settings)
    bootstrap(url)
    app = create_app(settings, url, on_ready=on_ready)
    tls = ({"ssl_certfile": str(settings.tls_certfile), "ssl_keyfile": str(settings.tls_keyfile)}
           if settings.tls_enabled else {})
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, log_level="warning",
        timeout_graceful_shutdown=settings.shutdown_grace_seconds, **tls))
    with stop_signals_tell(server) as noted:
        server.run()
    if noted:
        print(f"hub serve stopped on {noted[0]}", flush=True)
    return 0 if server.started or noted else 1


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
