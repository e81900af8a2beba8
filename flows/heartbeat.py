"""A deployed run's own heartbeat: how the Prefect server learns that a run's worker died.

Prefect's flow-run heartbeats come at most every 30 s, so a crash would be seen a minute
or more after it. Each deployed pipeline run emits `hub.flow-run.alive` for its flow run
every HUB_RUN_HEARTBEAT_SECONDS; the automation `hub deploy` creates (flows/deployments.py)
marks a run Crashed when three are missed, and another runs its deployment again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

ALIVE = "hub.flow-run.alive"


@contextmanager
def alive(seconds: float) -> Iterator[None]:
    """Emit the current flow run's heartbeat every `seconds` while the block runs. Outside a
    flow run, or without a Prefect server (PREFECT_API_URL unset), nobody listens: none."""
    from prefect.context import FlowRunContext
    from prefect.settings import get_current_settings

    context = FlowRunContext.get()
    if context is None or context.flow_run is None or not get_current_settings().api.url:
        yield
        return
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(str(context.flow_run.id), seconds, stop),
                            name="hub-heartbeat", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=seconds)


def _beat(flow_run_id: str, seconds: float, stop: threading.Event) -> None:
    from prefect.events import emit_event

    resource = {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}"}
    while True:
        emit_event(event=ALIVE, resource=resource)
        if stop.wait(seconds):
            return
