"""Where a dataset stands on its way to publication, derived from the warehouse's records.

`next_publish` says when a contract just registered will first publish: the hub publishes on
a pipeline pass, either `hub run` (every dataset in force) or the scheduled deployment of
the dataset in the deployments file, if it has one. `onboarding_state` reads the registry
(hub.contracts), the pipeline's passes (hub.runs, each with its report's failures) and the
published versions (hub.dataset_versions): nothing is kept in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.rows import dict_row

from contracts import Contract
from contracts.advice import source_settings
from hub.registry import Registration

log = logging.getLogger(__name__)
NEXT_PASS = "on the next pipeline pass: the next `hub run`"
UNSAID = {"rule": "pipeline", "engine": "hub", "message": "no reason was recorded"}


def next_publish(contract: Contract, deployments_file: Path) -> dict[str, Any]:
    """When the dataset publishes under this contract, and what the pipeline needs for it."""
    found = {"deployment": None, "schedule": None, "needs": source_settings(contract)}
    if contract.retired:
        return found | {"when": "never: this version retires the dataset"}
    if contract.source is None:
        return found | {"when": "never, until a version with customProperties.hubSource is "
                                "registered: the next pipeline pass fails its contract step"}
    deployment = _deployment(deployments_file, contract.dataset_id)
    if deployment is None:
        return found | {"when": f"{NEXT_PASS} (no deployment in {deployments_file.name} runs "
                                "this dataset on a schedule; the next `hub deploy` registers "
                                "one on its hubSource.schedule)"}
    schedule = (deployment.get("schedules") or [{}])[0]
    cron, zone = schedule.get("cron"), schedule.get("timezone", "UTC")
    return found | {"deployment": deployment.get("name"), "schedule": cron,
                    "when": f"{NEXT_PASS}, or the next run of the deployment "
                            f"{deployment.get('name')} (cron {cron!r}, {zone}), whichever "
                            "comes first"}


def _deployment(deployments_file: Path, dataset: str) -> dict[str, Any] | None:
    """The deployment whose parameters name `dataset`, if the file has one."""
    try:
        document = yaml.safe_load(deployments_file.read_text()) or {}
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:  # the operator's file: logged, not the caller's
        log.warning("%s cannot be read (%s): no deployment is assumed", deployments_file, exc)
        return None
    return next((d for d in document.get("deployments") or []
                 if (d.get("parameters") or {}).get("dataset_id") == dataset), None)


def onboarding_state(conn: psycopg.Connection, dataset: str) -> dict[str, Any] | None:
    """registered | awaiting_first_load | published | failing | retired, with the facts that
    say so; None when no contract is registered for the dataset."""
    with conn.cursor(row_factory=dict_row) as cur:
        latest = cur.execute(
            "select version, status, registered_at from hub.contracts where dataset = %s"
            " order by string_to_array(version, '.')::int[] desc limit 1", [dataset]).fetchone()
        if latest is None:
            return None
        published = cur.execute(
            "select version, contract_version, published_at, row_count as rows, quarantined"
            " from hub.dataset_versions where dataset = %s order by version desc limit 1",
            [dataset]).fetchone()
        last = cur.execute(
            "select run_id, status, finished_at, rows_loaded, report->'failures' as failures"
            " from hub.runs where dataset = %s and finished_at >= %s"
            " order by finished_at desc limit 1", [dataset, latest["registered_at"]]).fetchone()
    state = _state(latest, published, last)
    return state | {"contract_version": latest["version"], "published": published,
                    "last_pass": _last_pass(last)}


def _state(latest: dict, published: dict | None, last: dict | None) -> dict[str, Any]:
    if latest["status"] == "retired":
        return {"state": "retired", "detail": f"retired by version {latest['version']} on "
                f"{latest['registered_at']:%Y-%m-%d}: no longer built, its rows answer 410"}
    if last is not None and last["status"] == "failed":
        first = (last["failures"] or [UNSAID])[0]
        return {"state": "failing", "detail": f"the last pass failed at {first['rule']} "
                f"[{first['engine']}]: {first['message']}"}
    if published is not None and published["rows"] + published["quarantined"] > 0:
        return {"state": "published", "detail": f"version {published['version']} published "
                f"{published['published_at']:%Y-%m-%d %H:%M:%S %Z} with {published['rows']} "
                f"row(s), {published['quarantined']} quarantined"}
    if last is not None:
        return {"state": "awaiting_first_load", "detail": "the pipeline ran, but the source "
                "has delivered no rows yet"}
    return {"state": "registered", "detail": f"version {latest['version']} is registered and "
            "waits for the next pipeline pass"}


def _last_pass(last: dict | None) -> dict[str, Any] | None:
    if last is None:
        return None
    return {"run_id": last["run_id"], "status": last["status"], "at": last["finished_at"],
            "rows_loaded": last["rows_loaded"],
            "failures": [{"step": f["rule"], "kind": f["engine"], "reason": f["message"]}
                         for f in last["failures"] or []]}


def verdict(done: Registration) -> str:
    """The breaking-change verdict of a registration against the version in force."""
    if done.compared_with is None:
        return f"first version of {done.dataset}: nothing to compare it with"
    if done.status == "unchanged":
        return f"version {done.version} is registered already with this content: no change"
    if not done.breaking_changes:
        others = f" ({len(done.other_changes)} other change(s))" if done.other_changes else ""
        return f"no breaking change against {done.compared_with}{others}"
    said = (f"{len(done.breaking_changes)} breaking change(s) against {done.compared_with}, "
            f"allowed by the new major version {done.version}")
    if done.deprecated_after:
        said += (f"; the previous major stays served until {done.deprecated_after}"
                 + (f" and {', '.join(done.notified)} were notified" if done.notified else ""))
    return said


HIDDEN = "shown to the owning department only"


def for_outsider(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the failures' reasons, which can quote the data's values."""
    if state["last_pass"] is None or not state["last_pass"]["failures"]:
        return state
    failures = [f | {"reason": HIDDEN} for f in state["last_pass"]["failures"]]
    hidden = state | {"last_pass": state["last_pass"] | {"failures": failures}}
    if state["state"] == "failing":
        first = failures[0]
        hidden["detail"] = (f"the last pass failed at {first['step']} [{first['kind']}]; the "
                            f"reason is {HIDDEN}")
    return hidden
