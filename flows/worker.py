"""`hub worker`: a Prefect process worker that stops like a service (docs/workers.md).

Prefect's own `prefect worker start` (3.8) does not: given SIGTERM or SIGINT it forwards
SIGINT to itself and goes on polling (an idle worker was still running 30 s later); only a
second signal ends it, with SIGKILL, dropping whatever it ran. The hub therefore runs
Prefect's ProcessWorker in its own event loop and stops it in four steps:

1. it takes no more runs (the next poll finds none);
2. runs in flight get `HUB_WORKER_GRACE_SECONDS` to end on their own;
3. each run still going is handed back: SIGTERM to its process group (Prefect's engine
   marks it Crashed, and the hub's automation runs its deployment again on another worker,
   from the positions it committed); one still alive after HANDBACK_SECONDS is killed and
   marked Crashed here;
4. the worker leaves the pool, and its caller prints one line (`Stop.summary`).

Each flow run is a process group of its own (Prefect starts it so), so a signal to the
worker's group reaches the worker alone; a service manager that signals every process
(systemd's KillMode=control-group) hands every run back at once, which is safe as well.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

HANDBACK_SECONDS = 5.0  # a run sent SIGTERM marks itself Crashed and exits within this
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RUN_ID = "PREFECT__FLOW_RUN_ID"  # in the environment of each run's process


@dataclass
class Stop:
    """What a stop found and did, for its one line."""

    finished: list[str] = field(default_factory=list)  # flow run ids that ended in the grace
    handed_back: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not (self.finished or self.handed_back):
            return "no run in flight"
        parts = []
        if self.finished:
            parts.append(f"{_runs(len(self.finished))} finished")
        if self.handed_back:
            parts.append(f"{_runs(len(self.handed_back))} handed back (Crashed; the hub's "
                         "automation runs each again on another worker)")
        return "; ".join(parts)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


class WorkerFailed(Exception):
    """The Prefect worker ended by itself: the message says why."""


class Worker:
    """A process worker on `pool`. `run()` serves until `stop()` is called (from a signal
    handler: it only schedules), then stops as the module says and returns the Stop."""

    def __init__(self, pool: str, limit: int | None, name: str | None, grace: float) -> None:
        self.pool, self.limit, self.name, self.grace = pool, limit, name, grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._hurry: asyncio.Event | None = None
        self._asked = 0  # stops asked before the loop ran

    def stop(self) -> None:
        """Ask to stop; a second call cuts the grace period short (a second Ctrl+C)."""
        if self._loop is None:
            self._asked += 1
        else:
            self._loop.call_soon_threadsafe(self._note_stop)

    def _note_stop(self) -> None:
        (self._hurry if self._stopping.is_set() else self._stopping).set()

    async def run(self, say: Callable[[str], None]) -> Stop:
        self._loop = asyncio.get_running_loop()
        self._stopping, self._hurry = asyncio.Event(), asyncio.Event()
        for _ in range(self._asked):
            self._note_stop()
        worker = self._prefect_worker()
        serving = asyncio.create_task(worker.start(printer=self._printer(say)))
        try:
            await _first(serving, self._stopping.wait())
        except Exception as exc:  # it could not start, or lost its server for good
            raise WorkerFailed(f"{type(exc).__name__}: {exc}") from exc
        worker.taking = False
        outcome = await self._finish_runs()
        serving.cancel()
        with suppress(asyncio.CancelledError):
            await serving  # an error of the worker's own surfaces here
        return outcome

    def _prefect_worker(self) -> Any:
        from prefect.workers.process import ProcessWorker

        worker = ProcessWorker(work_pool_name=self.pool, limit=self.limit, name=self.name)
        worker.taking = True
        polling = worker.get_and_submit_flow_runs

        async def poll() -> list:  # the worker's loop looks this up on the instance
            return await polling() if worker.taking else []

        worker.get_and_submit_flow_runs = poll
        return worker

    def _printer(self, say: Callable[[str], None]) -> Callable[..., None]:
        def printer(message: str, **_: Any) -> None:  # Prefect's "Worker '...' started!"
            if str(message).endswith("started!"):
                limit = f", {self.limit} at a time" if self.limit else ""
                say(f"hub worker: taking runs from pool {self.pool}{limit}; SIGTERM or "
                    "Ctrl+C stops it")
        return printer

    async def _finish_runs(self) -> Stop:
        """Wait out the grace period for the runs in flight, then hand back the rest."""
        seen, states = in_flight(), RunStates()
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and not self._hurry.is_set():
            seen |= in_flight()
            if not await states.unfinished(seen):
                break
            await asyncio.sleep(0.25)
        seen |= in_flight()  # a submission under way at the stop has started by now
        going = await states.unfinished(seen)
        await hand_back({pid: run for pid, run in seen.items() if run in going}, states)
        return Stop(finished=sorted(set(seen.values()) - going), handed_back=sorted(going))


async def _first(*waiting: Any) -> None:
    """Wait until the first of these ends (the worker failing, or a stop asked)."""
    tasks = [asyncio.ensure_future(w) for w in waiting]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        if task is not tasks[0]:  # the worker itself goes on until it is stopped
            task.cancel()
    for task in done:
        if task is tasks[0]:
            task.result()  # the worker ended by itself: its error is the caller's


def in_flight() -> dict[int, str]:
    """The flow runs this worker's child processes run now: {pid: flow run id}."""
    found = {}
    for child in psutil.Process().children():
        with suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE and RUN_ID in (env := child.environ()):
                found[child.pid] = env[RUN_ID]
    return found


class RunStates:
    """The runs' states from the Prefect server; once it stops answering (it may stop
    first, as in `docker compose down`), from whether each run's process still lives."""

    def __init__(self) -> None:
        self.server_gone = False

    async def unfinished(self, runs: dict[int, str]) -> set[str]:
        """Of these runs, those not ended yet."""
        if not self.server_gone:
            try:
                return await _unfinished_per_server(set(runs.values()))
            except httpx.TransportError:
                self.server_gone = True
        return {run for pid, run in runs.items() if _alive(pid)}

    async def mark_crashed(self, runs: set[str]) -> None:
        """Runs that did not mark themselves: Crashed (without a server, the heartbeat
        watch of docs/workers.md does it once the server is back)."""
        if runs and not self.server_gone:
            with suppress(httpx.TransportError):
                await _mark_crashed(runs)


async def _unfinished_per_server(runs: set[str]) -> set[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        states = [await client.read_flow_run(run) for run in runs]
    return {str(r.id) for r in states if r.state is None or r.state.type.value not in FINAL}


def _alive(pid: int) -> bool:
    with suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


async def hand_back(runs: dict[int, str], states: RunStates) -> None:
    """SIGTERM each run's process group; SIGKILL the ones still there HANDBACK_SECONDS
    later, and mark Crashed the runs that did not mark themselves."""
    if not runs:
        return
    _signal(runs, signal.SIGTERM)
    deadline = time.monotonic() + HANDBACK_SECONDS
    while time.monotonic() < deadline and await states.unfinished(runs):
        await asyncio.sleep(0.25)
    _signal([pid for pid in runs if _alive(pid)], signal.SIGKILL)
    await states.mark_crashed(await states.unfinished(runs))


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)


async def _mark_crashed(runs: set[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    async with get_client() as client:
        for run in runs:
            await client.set_flow_run_state(run, Crashed(
                message="handed back: its worker stopped (hub worker) and the run did not "
                        f"end within {HANDBACK_SECONDS:g} s of SIGTERM"), force=True)
