"""Shared dependencies: the app's state, the request id and the caller's identity."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
import psycopg
from fastapi import Depends, Query, Request, Response
from joserfc.jwk import ECKey, KeySet
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from starlette.concurrency import run_in_threadpool

from access_policies import Grant, Policy
from api.catalog import Catalog
from api.errors import ApiError, ensure_request_id, forbidden, unauthorized
from api.idp import ExternalIdP
from api.ratelimit import RateLimiter
from api.replicas import ReadReplicas
from api.revocations import Revocations
from api.security import VerifiedTokens
from api.signin_throttle import SignInThrottle
from contracts import Contract
from hub import clock
from hub.access_requests import approved_grants
from hub.audit import AuditEvent, GroupCommit
from hub.refusals import RefusalLog
from hub.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """Everything a request needs, built once at startup (api/main.py).

    Two pools to one warehouse: the async one serves the event loop (authentication, the
    dataset routes, audit writes of async routes), the sync one the admin routes that run
    in the thread pool. Both connect as the application role with a statement timeout.
    With HUB_READ_DATABASE_URL, `reads` adds the standbys' pools for dataset reads."""

    settings: Settings
    pool: ConnectionPool
    apool: AsyncConnectionPool
    audit: GroupCommit  # audit records of the async routes, committed in batches
    contracts: dict[str, Contract]
    policy: Policy
    signing_key: ECKey
    tokens: VerifiedTokens
    revocations: Revocations
    pseudonym_key: bytes
    limiter: RateLimiter
    request_grants: RequestGrants
    refusals: RefusalLog  # refused requests' records, at most one per client and reason a second
    idp: ExternalIdP | None = None
    catalog: Catalog | None = None  # keeps `contracts` in step with the registry
    signin: SignInThrottle | None = None  # failed sign-ins per user and address
    # Where dataset reads go: standbys that have replayed the published version, else the
    # primary (api/replicas.py). None: every read on the primary, as without standbys.
    reads: ReadReplicas | None = None
    # Residents' feedback (api/routes/feedback.py): posts per address, the contact-hash key
    feedback_limiter: RateLimiter | None = None
    feedback_key: bytes = b""

    @property
    def keys(self) -> KeySet:
        return self.tokens.keys


class RequestGrants:
    """Grants from approved access requests, re-read at most every few seconds per worker
    (an approval in this worker clears the cache at once)."""

    def __init__(self, ttl_seconds: float = 2.0) -> None:
        self.ttl = ttl_seconds
        self._grants: tuple[Grant, ...] = ()
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def current(self, conn: AsyncConnection) -> tuple[Grant, ...]:
        if time.monotonic() - self._read_at <= self.ttl:  # the common case: no lock, no I/O
            return self._grants
        async with self._lock:  # one request re-reads; the others wait for its answer
            if time.monotonic() - self._read_at > self.ttl:
                self._grants = await approved_grants(conn, clock.today())
                self._read_at = time.monotonic()
            return self._grants

    def invalidate(self) -> None:
        self._read_at = float("-inf")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, from a verified access token."""

    client_id: str
    role: str
    department: str
    scopes: frozenset[str]
    # From the token's `attributes` claim (or the identity provider's mapped claims).
    attributes: dict[str, str] = field(default_factory=dict, hash=False)

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise forbidden(f"this route needs scope {scope!r}; the token has "
                            f"{' '.join(sorted(self.scopes)) or 'none'}", "insufficient_scope")


async def get_state(request: Request) -> AppState:
    # Dependencies are async so FastAPI does not hop to the thread pool for them.
    return request.app.state.hub


def client_address(request: Request) -> str | None:
    """The caller's address, as the audit log records it."""
    return request.client.host if request.client else None


def request_event(request: Request, kind: str, principal: Principal | None = None,
                  **fields: Any) -> AuditEvent:
    """An audit event about this request: its id, the caller's address and identity."""
    identity = {}
    if principal is not None:
        identity = {"client_id": principal.client_id, "role": principal.role,
                    "department": principal.department}
    return AuditEvent(kind=kind, request_id=request.state.request_id,
                      source_address=client_address(request), **(identity | fields))


async def record_now(state: AppState, event: AuditEvent) -> None:
    """Write one audit event; return once it is committed. If it cannot be written, the
    request ends here with 503: what it was about to send never leaves unrecorded."""
    try:
        await state.audit.write(event)
    except psycopg.Error as exc:
        log.error("audit record of request %s not written: %s", event.request_id, exc)
        raise ApiError(503, "audit_unavailable", "the hub could not record this request in "
                       "its audit log, so it sent nothing; try again shortly, and if it keeps "
                       "failing quote the request_id to the hub's operators") from None


async def request_id(request: Request) -> str:
    return ensure_request_id(request)


async def authenticate(request: Request, state: AppState,
                       conn: AsyncConnection | None = None) -> Principal:
    """Verify the bearer token; raise 401 (with the reason) when there is none or it is bad.
    The revocation check runs on `conn` when the caller already holds one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("send an access token: Authorization: Bearer <token> "
                           "(get one from POST /oauth/token)")
    token = token.strip()
    if state.idp is not None and state.idp.handles(token):
        # In the thread pool: the provider's key set may have to be fetched over HTTP.
        principal = await run_in_threadpool(_from_idp, state, token)
    else:
        claims = state.tokens.claims(token)
        if await token_revoked(state, str(claims.get("jti", "")), str(claims["sub"]), conn):
            raise unauthorized("the access token was revoked, or its client was removed")
        principal = Principal(
            client_id=str(claims["sub"]), role=str(claims.get("role", "")),
            department=str(claims.get("department", "")),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            attributes={str(k): str(v) for k, v in (claims.get("attributes") or {}).items()},
        )
    request.state.principal = principal  # who a refusal from here on is recorded against
    wait = await state.limiter.retry_after(principal.client_id, conn)
    if wait is not None:
        # The wait differs request by request; the recorded reason does not, so a flood
        # of 429s shares one record a second (hub/refusals.py).
        raise ApiError(429, "rate_limited", f"too many requests; retry in {wait} s",
                       {"Retry-After": str(wait)}, audit={"reason": "over the rate limit"})
    return principal


def _from_idp(state: AppState, token: str) -> Principal:
    # Department and scopes come from the mapped hub role, never from the provider's claims.
    claims, role_name = state.idp.verify(token, state.policy)
    role = state.policy.roles[role_name]
    return Principal(client_id=f"idp:{claims['sub']}", role=role.name,
                     department=role.department, scopes=role.scopes,
                     attributes=state.idp.attributes(claims))


def json_response(body: dict[str, Any]) -> Response:
    """JSON via orjson: several times faster than the default encoder for row data."""
    return Response(orjson.dumps(body), media_type="application/json")


async def token_revoked(state: AppState, jti: str, subject: str,
                        conn: AsyncConnection | None = None) -> bool:
    """True if the token was revoked or its subject removed (api/revocations.py): the
    worker's memory while it holds, else the warehouse on `conn` or a pooled connection."""
    if await state.revocations.known_good(jti, subject):  # common: no pooled connection
        return False
    if conn is None:
        async with state.apool.connection() as own:
            return await state.revocations.ask(own, jti, subject)
    return await state.revocations.ask(conn, jti, subject)


StateDep = Annotated[AppState, Depends(get_state)]


async def current_principal(request: Request, state: StateDep) -> Principal:
    # As a dependency it runs before FastAPI validates a request body, so a caller without
    # a token gets 401, not a 400 about a body it was never allowed to send.
    return await authenticate(request, state)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def scoped(*any_of: str) -> object:
    """A dependency: the caller, holding at least one of these scopes (else 403)."""
    async def check(principal: PrincipalDep) -> Principal:
        if not principal.scopes & set(any_of):
            raise forbidden(f"this route needs scope {' or '.join(any_of)}", "insufficient_scope")
        return principal

    return Depends(check)
RequestIdDep = Annotated[str, Depends(request_id)]


# ---------- query parameters of the routes that page through rows (rows, changes, export)

Limit = Annotated[int, Query(ge=1, description="rows per page")]
Offset = Annotated[int, Query(ge=0, description="rows to skip (or use cursor)")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Select = Annotated[str | None, Query(description="columns, e.g. sr_number,status")]
Order = Annotated[str | None, Query(description="e.g. created_date.desc")]
PageFormat = Annotated[Literal["json", "ndjson", "csv"], Query()]
