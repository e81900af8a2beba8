"""`hub deploy`: register the hub's deployments on the Prefect server at PREFECT_API_URL."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.settings import Settings, get_settings
from hub_cli.common import UsageError, prefect_api


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)


def deploy(pool: Annotated[str | None, typer.Option(
        help="the work pool every deployment goes to (default: each deployment's own in "
             "HUB_DEPLOYMENTS_FILE, civic-data-hub)")] = None,
        schedules: Annotated[bool, typer.Option(
            "--schedules/--no-schedules",
            help="switch the deployments' schedules on (default) or register them off: "
                 "runs start only when triggered")] = True,
        ) -> int:
    """Register on the Prefect server (PREFECT_API_URL) a process work pool, the
    deployments of HUB_DEPLOYMENTS_FILE and one per dataset in the registry, a concurrency
    limit per source system and the automations that rerun a crashed run elsewhere."""
    from flows import deployments

    settings = get_settings()
    url = prefect_api("hub deploy")
    registry, files = _contracts(settings)
    found = deployments.specs(settings.deployments_file, registry)
    try:
        names = deployments.register(found, settings.project_dir.resolve(), pool, schedules)
        _limits(list({**files, **registry}.values()), settings)
        deployments.ensure_recovery(settings.run_heartbeat_seconds,
                                    settings.run_start_seconds)
    except _unreachable() as exc:
        raise UsageError(f"no Prefect server answers at PREFECT_API_URL={url} ({exc}): start "
                         "one (`prefect server start`) or correct the address") from None
    for name in names:
        print(f"deployment {name}")
    state = "on" if schedules else "off (runs start when triggered)"
    print(f"{len(names)} deployments registered at {url}; schedules {state}")
    return 0


def _contracts(settings: Settings) -> tuple[dict, dict]:
    """The datasets in force in the registry, and the repository's contract files."""
    from contracts import load_all
    from hub.catalog import in_force
    from hub_cli.common import warehouse

    with warehouse(settings) as conn:
        registry = in_force(conn)
    return registry, load_all(settings.contracts_dir)


def _limits(contracts: list, settings: Settings) -> None:
    from flows.pipeline import ensure_source_limits

    ensure_source_limits(contracts, settings)


def _unreachable() -> tuple[type[Exception], ...]:
    import httpx

    return (httpx.ConnectError, httpx.ConnectTimeout)
