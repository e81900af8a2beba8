"""Prometheus metrics of one API process, served at /metrics (docs/production.md#metrics).

Counted as requests pass: requests and their latency per route template (the template, not
the path: a path per dataset and row would make a series per value). Read at each scrape:
the audit records waiting in this process's group commit, the audit entries not sealed yet,
and the pipeline's outcomes from `hub.runs` (written by `hub run` and Prefect workers on
other machines: the warehouse is where every instance sees the same numbers).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds; the API's reads answer in milliseconds, exports and slow queries in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

UNSEALED = """
select count(*) from audit.events
where event_id > coalesce((select max(event_id) from audit.chain), 0)
"""
RUNS = "select dataset, status, count(*) from hub.runs group by dataset, status"


class Meters:
    """The metrics of one app, in a registry of its own (a process may build several apps:
    the tests do; one global registry would refuse the second's names)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("hub_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("hub_http_request_duration_seconds",
                                 "Time from a request's arrival to the end of its answer",
                                 ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.audit_queue = Gauge("hub_audit_queue_depth", "Audit records of this process "
                                 "waiting for their group commit", registry=self.registry)
        self.unsealed = Gauge("hub_audit_unsealed_entries", "Audit entries written but not "
                              "yet chained and signed by the sealer", registry=self.registry)
        self.runs = Gauge("hub_pipeline_runs", "Pipeline passes recorded in the warehouse, "
                          "by dataset and outcome", ["dataset", "status"],
                          registry=self.registry)
        # The labelled children, looked up once per label set rather than per request
        # (`labels()` validates and locks on every call: bench/metrics.py).
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: str, seconds: float) -> None:
        counted = self._counted.get((method, route, status))
        if counted is None:
            counted = self._counted[method, route, status] = self.requests.labels(
                method, route, status)
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self._timed[method, route] = self.latency.labels(method, route)
        counted.inc()
        timed.observe(seconds)

    def read_warehouse(self, conn: psycopg.Connection) -> None:
        """The gauges kept in the warehouse, as of now."""
        self.unsealed.set(conn.execute(UNSEALED).fetchone()[0])
        self.runs.clear()  # a dataset removed from the registry leaves no stale series
        for dataset, status, count in conn.execute(RUNS):
            self.runs.labels(dataset, status).set(count)


class RequestMetrics:
    """Pure ASGI middleware (no per-request task or body buffering) timing every request."""

    def __init__(self, app: ASGIApp, meters: Meters) -> None:
        self.app, self.meters = app, meters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500  # an answer never started is a 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            # The router puts the matched route in the scope; an unknown path has none.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.meters.observe(scope["method"], route, str(status),
                                time.perf_counter() - started)
