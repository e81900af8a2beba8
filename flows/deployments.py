"""`hub deploy`: the hub's deployments, work pool, limits and crash recovery on a Prefect
server, all with Prefect's own machinery (docs/workers.md).

The deployments are those of the deployments file (deploy/prefect.yaml) plus one per
dataset in the registry the file does not name: a dataset onboarded through the API gets
its deployment on the next `hub deploy`, without a file edit. Registering is idempotent
(Prefect upserts a deployment by flow and name), so `hub deploy` is safe to run again.
"""

from __future__ import annotations

import importlib
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from contracts import Contract
from flows.heartbeat import ALIVE

POOL = "civic-data-hub"
TAG = "civic-data-hub"  # on every deployment, so on every run: the rerun automation's filter
PIPELINE = "flows/pipeline.py:scheduled_pipeline"
WATCH = "civic-data-hub: mark silent runs crashed"
START_WATCH = "civic-data-hub: mark runs that never started crashed"
RERUN = "civic-data-hub: run a crashed deployment again"
# The hub's runs (its tag), not other flows a shared Prefect server may run.
OURS = {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}
ENDED = ("prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Crashed",
         "prefect.flow-run.Cancelled", "prefect.flow-run.Cancelling")


@dataclass
class Spec:
    """One deployment, as deploy/prefect.yaml writes it."""

    name: str
    entrypoint: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, str]] = field(default_factory=list)
    pool: str = POOL

    @property
    def dataset(self) -> str | None:
        return self.parameters.get("dataset_id")


def specs(deployments_file: Path, registry: dict[str, Contract]) -> list[Spec]:
    """The file's deployments, then one per registered dataset with a source it lacks."""
    document = yaml.safe_load(deployments_file.read_text()) or {}
    found = [Spec(name=d["name"], entrypoint=d["entrypoint"],
                  description=d.get("description", ""), parameters=d.get("parameters") or {},
                  schedules=d.get("schedules") or [],
                  pool=(d.get("work_pool") or {}).get("name", POOL))
             for d in document.get("deployments") or []]
    named = {s.dataset for s in found}
    return found + [for_dataset(c) for d, c in sorted(registry.items())
                    if d not in named and c.source is not None]


def for_dataset(contract: Contract) -> Spec:
    """A registered dataset's deployment: its pipeline, on its hubSource.schedule (UTC)."""
    schedule = contract.source.schedule
    return Spec(name=contract.dataset_id.replace(".", "-").replace("_", "-"),
                entrypoint=PIPELINE, description=f"{contract.title} (from the registry)",
                parameters={"dataset_id": contract.dataset_id},
                schedules=[{"cron": schedule, "timezone": "UTC"}] if schedule else [])


def register(found: list[Spec], project_dir: Path, pool: str | None,
             schedules_active: bool) -> list[str]:
    """Create the work pools and upsert the deployments; their names, `flow/deployment`."""
    from prefect.client.orchestration import get_client

    names = []
    with get_client(sync_client=True) as client:
        for name in sorted({pool or s.pool for s in found}):
            ensure_pool(client, name)
        for spec in found:
            names.append(_upsert(client, spec, project_dir, pool or spec.pool,
                                 schedules_active))
    return names


def ensure_pool(client: Any, name: str) -> None:
    """A process work pool: each run in a fresh process of the worker's machine."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        client.read_work_pool(name)
    except ObjectNotFound:
        # A process worker started first creates the same pool: either is the pool.
        with suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(
                name=name, type="process",
                base_job_template=ProcessWorker.get_default_base_job_template()))


def _upsert(client: Any, spec: Spec, project_dir: Path, pool: str, active: bool) -> str:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.utilities.callables import parameter_schema

    flow = _flow(spec.entrypoint)
    client.create_deployment(
        flow_id=client.create_flow_from_name(flow.name), name=spec.name,
        description=spec.description, parameters=spec.parameters, work_pool_name=pool,
        entrypoint=spec.entrypoint, tags=[TAG],
        # Workers run the flow from their checkout of the project, at this path.
        pull_steps=[{"prefect.deployments.steps.set_working_directory":
                     {"directory": str(project_dir)}}],
        parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi(),
        schedules=[DeploymentScheduleCreate(
            schedule=CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC")),
            active=active, slug=f"hub-{number}") for number, s in enumerate(spec.schedules)])
    return f"{flow.name}/{spec.name}"


def _flow(entrypoint: str) -> Any:
    """The flow an entrypoint (`flows/pipeline.py:scheduled_pipeline`) names."""
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


def ensure_recovery(heartbeat_seconds: float, start_seconds: float) -> None:
    """The automations that carry a run whose worker died to another worker: a run silent
    for three heartbeats, or taken by a worker (Pending) and not started (Running) within
    `start_seconds`, is marked Crashed, and a crashed run of a hub deployment is run again.
    The rerun resumes from the committed positions, so loads nothing twice."""
    from prefect.client.orchestration import get_client

    automations = (_watch(heartbeat_seconds), _start_watch(start_seconds), _rerun())
    with get_client(sync_client=True) as client:
        for automation in automations:
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            client.create_automation(automation)


def _watch(heartbeat_seconds: float) -> Any:
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    silence = max(3 * heartbeat_seconds, 10)  # Prefect's least window for a proactive trigger
    return AutomationCore(
        name=WATCH, description="A deployed pipeline run sends hub.flow-run.alive every "
        f"HUB_RUN_HEARTBEAT_SECONDS; {silence:g} s without one, its worker has died.",
        trigger=EventTrigger(
            posture=Posture.Proactive, match={"prefect.resource.id": "prefect.flow-run.*"},
            after={ALIVE}, expect={ALIVE, *ENDED}, for_each={"prefect.resource.id"},
            threshold=1, within=timedelta(seconds=silence)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=(
            f"no heartbeat for {silence:g} s: its worker or machine stopped"))])


def _start_watch(start_seconds: float) -> Any:
    """The heartbeat starts with the run's flow: a worker whose machine dies while the run's
    process is still starting (Pending: the worker took it) would leave it Pending for good."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return AutomationCore(
        name=START_WATCH, description="A run a worker took (Pending) starts (Running) within "
        f"HUB_RUN_START_SECONDS ({start_seconds:g} s), or its worker has died.",
        trigger=EventTrigger(
            posture=Posture.Proactive, match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=OURS, after={"prefect.flow-run.Pending"},
            expect={"prefect.flow-run.Running", *ENDED}, for_each={"prefect.resource.id"},
            threshold=1, within=timedelta(seconds=start_seconds)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=(
            f"not started within {start_seconds:g} s of its worker taking it: the worker or "
            "its machine stopped"))])


def _rerun() -> Any:
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return AutomationCore(
        name=RERUN, description="A crashed run of a hub deployment is run again, by any "
        "worker of its pool; it resumes from the positions the crashed run committed.",
        trigger=EventTrigger(
            posture=Posture.Reactive, expect={"prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=OURS,
            threshold=1, within=timedelta(0)),
        actions=[RunDeployment(source="inferred")])
