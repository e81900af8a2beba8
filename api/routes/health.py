"""Health for load balancers and metrics for Prometheus (docs/production.md#health-and-metrics).

`/health/live`: the process answers (restart it if not). `/health/ready`: it can serve, that
is the warehouse answers and the key material is in place (send it traffic only if so).
Neither needs a token, neither writes an audit record: a load balancer asks every few
seconds. They and `/metrics` are operations endpoints, not part of the API's schema.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from joserfc.jwk import ECKey
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout

from api.deps import AppState, StateDep
from api.errors import ensure_request_id
from api.metrics import Meters
from hub.settings import Settings

router = APIRouter(include_in_schema=False)
READY_SECONDS = 2.0  # a warehouse slower than this to answer `select 1` is not ready


@router.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "live"}


@router.get("/health/ready")
async def ready(request: Request, state: StateDep) -> Response:
    problems = await _warehouse_problems(state) + key_problems(state.settings)
    if problems:  # the one error body (api/errors.py), saying what is wrong
        return JSONResponse({"error": "not_ready", "error_description": "; ".join(problems),
                             "request_id": ensure_request_id(request)}, 503)
    return JSONResponse({"status": "ready", "checks": {"warehouse": "ok", "keys": "ok"}})


async def _warehouse_problems(state: AppState) -> list[str]:
    try:
        async with state.apool.connection(timeout=READY_SECONDS) as conn:
            await conn.execute("select 1")
    except (psycopg.Error, PoolTimeout) as exc:
        return [f"warehouse: {str(exc).strip() or type(exc).__name__}"]
    return []


def key_problems(settings: Settings) -> list[str]:
    """The key files the running API and its sealer sign and pseudonymise with: present
    and readable. Read only: the loaders would create a missing one (a new key would make
    every token issued and every checkpoint signed so far fail to verify)."""
    keys = settings.keys_dir
    checks: list[tuple[str, Any]] = [
        ("signing.jwk.json", lambda data: ECKey.import_key(json.loads(data))),
        ("audit-ed25519.pem", lambda data: serialization.load_pem_private_key(data, None))]
    if settings.pseudonym_key is None:
        checks.append(("pseudonym.key", lambda data: data or None))
    problems = []
    for name, parse in checks:
        try:
            if parse((keys / name).read_bytes()) is None:
                raise ValueError("empty")
        except Exception as exc:  # any reason it cannot be used: missing, unreadable, garbled
            problems.append(f"keys: {keys / name} cannot be read ({exc})")
    return problems


@router.get("/metrics")
def metrics(request: Request, state: StateDep) -> Response:
    meters: Meters = request.app.state.meters
    meters.audit_queue.set(state.audit.pending)
    try:
        with state.pool.connection(timeout=READY_SECONDS) as conn:
            meters.read_warehouse(conn)
    except (psycopg.Error, PoolTimeout):  # the request metrics still matter most then
        pass  # the warehouse's gauges keep their last values; /health/ready says why
    return Response(generate_latest(meters.registry), media_type=CONTENT_TYPE_LATEST)
