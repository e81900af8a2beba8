"""The FastAPI application: OAuth2 token endpoint and the shared-data routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI
from psycopg import sql
from psycopg_pool import ConnectionPool

from access_policies import load_policies
from api import errors
from api.deps import AppState, RequestGrants
from api.idp import ExternalIdP
from api.ratelimit import RateLimiter
from api.routes import (
    access_requests,
    audit,
    authorize,
    datasets,
    notifications,
    oauth,
    transparency,
)
from api.routes import contracts as contract_routes
from api.security import load_pseudonym_key, load_signing_key, verification_keys
from contracts import load_all
from hub.audit import AuditEvent, record, record_file_changes
from hub.sealer import Sealer
from hub.settings import Settings


def _as_role(role: str, timeout_ms: int) -> Callable[[psycopg.Connection], None]:
    # Every API connection works as the application role: it can read what it serves and
    # append audit rows, and has no UPDATE or DELETE privilege on the audit log. Its
    # queries, which callers shape with filters, are bounded by a statement timeout.
    def configure(conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("set statement_timeout = {}").format(sql.Literal(timeout_ms)))
        conn.commit()

    return configure


def create_app(settings: Settings, warehouse_url: str,
               on_ready: Callable[[], None] | None = None) -> FastAPI:
    """Build the app; contracts and policies are loaded (and checked) now, not per request."""
    contracts = load_all(settings.contracts_dir)
    policy = load_policies(settings.policies_dir, contracts)
    key = load_signing_key(settings.keys_dir)
    pool = ConnectionPool(warehouse_url, min_size=1, max_size=10, open=False,
                          configure=_as_role(settings.app_role, settings.statement_timeout_ms))
    sealer = Sealer(warehouse_url, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=True)
        with pool.connection() as conn:  # the policies now in force are on record
            record_file_changes(conn, "policy.changed", sorted(
                settings.policies_dir.glob("*.yaml")), settings.policies_dir.parent)
            if not settings.audit_reads:
                record(conn, AuditEvent(kind="audit.disabled", reason="HUB_AUDIT_READS=false:"
                                        " reads are served without per-read records"))
        sealer.start()
        if on_ready:
            on_ready()
        yield
        sealer.stop()
        pool.close()

    app = FastAPI(title="Civic Data Hub", version="0.1.0", lifespan=lifespan,
                  description="Shared city datasets under data contracts and access policies.")
    keys = verification_keys(settings.keys_dir, key, settings.token_ttl_seconds)
    app.state.hub = AppState(settings, pool, contracts, policy, key, keys,
                             load_pseudonym_key(settings),
                             RateLimiter(settings.rate_limit_per_minute), RequestGrants(pool),
                             ExternalIdP(settings) if settings.idp_issuer else None)
    errors.install(app)
    app.include_router(oauth.router)
    app.include_router(authorize.router)
    app.include_router(datasets.router)
    app.include_router(access_requests.router)
    app.include_router(contract_routes.router)
    app.include_router(notifications.router)
    app.include_router(audit.router)
    app.include_router(transparency.router)
    return app
