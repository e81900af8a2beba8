"""The FastAPI application: OAuth2 token endpoint and the shared-data routes."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI
from joserfc.jwk import ECKey
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from access_policies import Policy, load_policies
from api import console, errors, openapi, refusals
from api.catalog import Catalog
from api.deps import AppState, RequestGrants
from api.idp import ExternalIdP
from api.metrics import Meters, RequestMetrics
from api.ratelimit import (
    PostgresRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    check_redis,
)
from api.replicas import ReadReplicas
from api.request_ids import RequestIds
from api.revocations import Revocations
from api.routes import (
    access_requests,
    audit,
    authorize,
    changes,
    datasets,
    health,
    notifications,
    oauth,
    open_data,
    quarantine,
    transparency,
    versions,
)
from api.routes import contracts as contract_routes
from api.routes import feedback as feedback_routes
from api.routes import open_catalog as catalog_routes
from api.security import (
    VerifiedTokens,
    load_pseudonym_key,
    load_signing_key,
    verification_keys,
)
from api.signin_throttle import (
    PostgresSignInThrottle,
    RedisSignInThrottle,
    SignInThrottle,
)
from api.transport import TransportSecurity
from contracts import load_all
from hub import feedback
from hub.audit import AuditEvent, GroupCommit, record, record_file_changes
from hub.refusals import RefusalLog
from hub.sealer import Sealer
from hub.settings import Settings

log = logging.getLogger(__name__)

def _connection_options(settings: Settings) -> dict[str, str]:
    # Every API connection works as the application role: it can read what it serves and
    # append audit rows, and has no UPDATE or DELETE privilege on the audit log. Its
    # queries, which callers shape with filters, are bounded by a statement timeout.
    # Set as startup options, so a new pooled connection needs no extra round trips.
    # Generic plans: the API's statements are prepared (psycopg does so on their fifth run)
    # and differ only in their values; PostgreSQL's default kept re-planning the rows
    # statement for every request, a fifth of its server time (bench/api.py).
    return {"options": f"-c role={settings.app_role}"
                       f" -c statement_timeout={settings.statement_timeout_ms}"
                       " -c plan_cache_mode=force_generic_plan"}


def create_app(settings: Settings, warehouse_url: str,
               on_ready: Callable[[], None] | None = None) -> FastAPI:
    """Build the app; contracts and policies are loaded (and checked) now, not per request."""
    catalog = _catalog(settings, warehouse_url)
    policy = load_policies(settings.policies_dir, catalog.contracts)
    key = load_signing_key(settings.keys_dir)
    tokens = VerifiedTokens(verification_keys(settings.keys_dir, key, settings.token_ttl_seconds),
                            settings)
    sealer = Sealer(warehouse_url, settings)
    if settings.redis_url:  # checked now: a wrong address stops the start, in one line
        check_redis(settings.redis_url.get_secret_value())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await _open_state(settings, warehouse_url, catalog, policy, key, tokens)
        app.state.hub = state
        _record_startup(state.pool, settings)
        _tune_gc()
        sealer.start()
        if on_ready:
            on_ready()
        yield
        await state.refusals.close()  # refusals still counted: on record before the seal
        _stop_sealer(sealer)
        await _close_state(state)

    app = FastAPI(title="Civic Data Hub", version="0.1.0", lifespan=lifespan,
                  description="Shared city datasets under data contracts and access policies.")
    errors.install(app, refusals.record_refusal, console.error_page)
    app.add_middleware(RequestIds)  # before anything can fail: every error carries the id
    app.state.meters = Meters()
    # Outermost: it times and counts the 500s RequestIds makes of unhandled errors too.
    app.add_middleware(RequestMetrics, meters=app.state.meters)
    if settings.tls_enabled:
        app.add_middleware(TransportSecurity)
    openapi.install(app)
    _include_routes(app)
    console.install(app)  # the pages for people, at / (api/console/)
    return app


async def _close_state(state: AppState) -> None:
    await state.revocations.stop()
    await state.limiter.aclose()
    if state.feedback_limiter is not None:
        await state.feedback_limiter.aclose()
    await state.audit.pool.close()
    await state.reads.close()
    await state.apool.close()
    state.pool.close()


def _catalog(settings: Settings, warehouse_url: str) -> Catalog:
    """The repository's contract files, with the registry's newest versions over them."""
    catalog = Catalog(load_all(settings.contracts_dir))
    with psycopg.connect(warehouse_url) as conn:
        catalog.load(conn)
    return catalog


async def _open_state(settings: Settings, warehouse_url: str, catalog: Catalog,
                      policy: Policy, key: ECKey, tokens: VerifiedTokens) -> AppState:
    """The pools, listeners and limits of a serving app."""
    # Pools belong to the event loop that serves: built here, not at import.
    options = _connection_options(settings)
    pool = ConnectionPool(warehouse_url, min_size=1, max_size=10, kwargs=options, open=False)
    # Autocommit: a lone statement (a revocation check, an audit insert) needs no
    # BEGIN/COMMIT round trips; routes open a transaction where they need one.
    apool = AsyncConnectionPool(warehouse_url, min_size=2, max_size=10,
                                kwargs=options | {"autocommit": True}, open=False)
    audit_pool = AsyncConnectionPool(warehouse_url, min_size=1, max_size=1,
                                     kwargs=options | {"autocommit": True}, open=False)
    pool.open(wait=True)
    await apool.open(wait=True)
    await audit_pool.open(wait=True)
    revocations = Revocations(warehouse_url, options)
    await revocations.start()
    audit = GroupCommit(audit_pool)
    reads = ReadReplicas(settings.read_urls(), options, apool,
                         settings.read_replica_wait_ms / 1000,
                         settings.read_replica_retry_seconds)
    await reads.open()
    limiter, signin, posts = _shared_limits(settings, apool)
    return AppState(
        settings, pool, apool, audit, catalog.contracts, policy, key, tokens, revocations,
        load_pseudonym_key(settings), limiter, RequestGrants(), RefusalLog(audit.write),
        ExternalIdP(settings) if settings.idp_issuer else None, catalog, signin, reads,
        posts, feedback.load_key(settings.keys_dir))


def _stop_sealer(sealer: Sealer) -> None:
    try:
        sealer.stop()
    except psycopg.Error as exc:  # the warehouse is gone: the next seal chains them, in order
        log.warning("the last audit entries are not sealed yet (%s); `hub audit seal` or the "
                    "next `hub serve` seals them", exc)


def _shared_limits(settings: Settings, apool: AsyncConnectionPool
                   ) -> tuple[RateLimiter, SignInThrottle, RateLimiter]:
    """The rate limits, failed sign-ins and residents' posts per address that every
    instance shares: in Redis when HUB_REDIS_URL is set, else in the warehouse
    (api/ratelimit.py)."""
    counts = (settings.signin_failures_per_user, settings.signin_failures_per_address,
              settings.signin_window_seconds)
    if settings.redis_url is None:
        return (PostgresRateLimiter(apool, settings.rate_limit_per_minute),
                PostgresSignInThrottle(apool, *counts),
                PostgresRateLimiter(apool, settings.feedback_per_hour, window=3600.0))
    url = settings.redis_url.get_secret_value()
    limiter = RedisRateLimiter(url, settings.redis_prefix, settings.rate_limit_per_minute)
    return (limiter, RedisSignInThrottle(limiter.client, settings.redis_prefix, *counts),
            RedisRateLimiter(url, settings.redis_prefix, settings.feedback_per_hour,
                             window=3600.0))


def _tune_gc() -> None:
    # What startup loaded (~100k objects) lives as long as the app: keep it out of the
    # cyclic GC, whose full passes over it stalled every request in flight (~20 ms).
    gc.freeze()
    # A page of rows allocates thousands of containers: at the default threshold (700)
    # a collection ran every few requests, ~4% of a worker's time. Cycles are rare
    # here (most garbage goes by reference counting), so collect far less often.
    gc.set_threshold(20_000, 10, 10)


def _include_routes(app: FastAPI) -> None:
    # The error responses are documented per router: those needing a token add 401/403/429.
    for public in (oauth.router, authorize.router, transparency.router, open_data.router):
        app.include_router(public, responses=errors.RESPONSES)
    app.include_router(health.router)  # for load balancers and Prometheus, not in the schema
    for needs_token in (datasets.router, changes.router, access_requests.router,
                        contract_routes.router, notifications.router, audit.router,
                        quarantine.router, versions.router):
        app.include_router(needs_token, responses=errors.RESPONSES | errors.TOKEN_RESPONSES)
    # The open catalog and residents' feedback (docs/open-catalog.md): public, but for the
    # departments' queue.
    app.include_router(catalog_routes.router, responses=errors.RESPONSES)
    app.include_router(feedback_routes.public, responses=errors.RESPONSES)
    app.include_router(feedback_routes.router,
                       responses=errors.RESPONSES | errors.TOKEN_RESPONSES)


def _record_startup(pool: ConnectionPool, settings: Settings) -> None:
    with pool.connection() as conn:  # the policies now in force are on record
        record_file_changes(conn, "policy.changed", sorted(
            settings.policies_dir.glob("*.yaml")), settings.policies_dir.parent)
        if not settings.audit_reads:
            record(conn, AuditEvent(kind="audit.disabled", reason="HUB_AUDIT_READS=false:"
                                    " reads are served without per-read records"))
