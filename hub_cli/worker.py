"""`hub worker`: run the hub's flow runs from a Prefect work pool, and stop like a service
(flows/worker.py says why not `prefect worker start`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from hub.settings import get_settings
from hub_cli.common import UsageError, prefect_api


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(pool: Annotated[str, typer.Option(
        help="the work pool to take runs from")] = "civic-data-hub",
        limit: Annotated[int | None, typer.Option(
            min=1, help="how many runs at once (default: no limit; the first worker to "
                        "poll takes every waiting run)")] = None,
        name: Annotated[str | None, typer.Option(
            help="the worker's name in Prefect (default: one is made up)")] = None,
        ) -> int:
    """Take flow runs of the hub's deployments from a Prefect work pool (PREFECT_API_URL)
    and run each in a process of its own. On SIGTERM or SIGINT: take no more, give the runs
    in flight HUB_WORKER_GRACE_SECONDS to end, hand the rest back (Crashed: the hub's
    automation runs them again on another worker) and print one line."""
    from flows.worker import Worker, WorkerFailed
    from hub_cli.stopping import stop_signals_call

    url = prefect_api("hub worker")
    hub_worker = Worker(pool, limit, name, get_settings().worker_grace_seconds)
    with stop_signals_call(lambda _: hub_worker.stop()) as noted:
        try:
            stop = asyncio.run(hub_worker.run(say=lambda line: print(line, flush=True)))
        except WorkerFailed as failed:
            raise UsageError(f"the Prefect server at PREFECT_API_URL={url} did not take the "
                             f"worker ({failed}): is it a Prefect server's API?") from None
    on = f" on {noted[0]}" if noted else ""
    print(f"hub worker stopped{on}: {stop.summary()}", flush=True)
    return 0
