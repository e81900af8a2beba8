"""Per-client rate limits: one token bucket per client id, shared by every API instance.

Any number of `hub serve` processes (and their workers) may sit behind a load balancer, so a
bucket kept in one worker's memory would let a client have the rate once per worker. The
bucket lives where every instance sees it: a row of hub.rate_limits in the warehouse, or,
with HUB_REDIS_URL set, a Redis hash. Either way one atomic statement (an upsert, a Lua
script) refills and takes a token, with the store's own clock: instances on machines whose
clocks differ still agree. The limit is a guard against runaway scripts, not an
accounting tool: if Redis stops answering, requests are let through (and a warning logged)
rather than refused by a cache's outage.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

import redis
import redis.asyncio as aioredis
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from hub.settings import masked_url

log = logging.getLogger(__name__)

# What the bucket holds now: refilled by the seconds since the last request, at most its
# capacity. A bucket kept under another capacity starts full: a changed limit applies at
# once, rather than a lowered one's empty bucket throttling the new, higher rate.
_NOW = """(case when b.capacity = %(capacity)s::float8 then least(%(capacity)s::float8, b.tokens
    + extract(epoch from statement_timestamp() - b.at)::float8 * %(rate)s::float8)
    else %(capacity)s::float8 end)"""
# Take one token if a whole one is there: one statement, atomic under concurrent requests.
TAKE_SQL = f"""
insert into hub.rate_limits as b (client_id, capacity, tokens, granted, at)
values (%(client)s, %(capacity)s::float8, %(capacity)s::float8 - 1, true, statement_timestamp())
on conflict (client_id) do update set
    granted = {_NOW} >= 1,
    tokens = {_NOW} - case when {_NOW} >= 1 then 1 else 0 end,
    capacity = %(capacity)s::float8,
    at = statement_timestamp()
returning granted, tokens"""
# A bucket untouched for longer than its window is full again, the same as no row: such rows
# are deleted now and then (not on every request), so that the table holds the clients and
# residents' addresses of the last hour rather than every one ever seen. An hour is the
# longest window in use (residents' feedback); a limiter with a longer one is refused.
PRUNE_AFTER = 3600.0
PRUNE_SQL = ("delete from hub.rate_limits"
             " where at < statement_timestamp() - make_interval(secs => %s)")
PRUNE_SECONDS = 600.0  # per instance: a scan of the small table, not one per request

# The same bucket in Redis. Redis replies truncate Lua numbers to integers: tokens go back
# as text. The key expires once a full bucket would have refilled anyway.
TAKE_LUA = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'capacity')
local tokens, at = tonumber(held[1]) or capacity, tonumber(held[2]) or now
if tonumber(held[3]) ~= capacity then tokens = capacity end  -- a changed limit: start full
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local granted = 0
if tokens >= 1 then tokens = tokens - 1; granted = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now),
           'capacity', tostring(capacity))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {granted, tostring(tokens)}
"""


class RateLimiter(Protocol):
    async def retry_after(self, client_id: str,
                          conn: AsyncConnection | None = None) -> int | None:
        """Take one request's token; None if allowed, else seconds to wait."""

    async def aclose(self) -> None: ...


class _Bucket:
    """`per_window` requests a window (a minute unless told), in bursts of as many; residents'
    feedback takes a few an hour per address."""

    def __init__(self, per_window: int, window: float = 60.0) -> None:
        self.rate = per_window / window  # tokens per second
        self.capacity = float(per_window)

    def wait(self, granted: bool, tokens: float) -> int | None:
        return None if granted else max(1, math.ceil((1 - tokens) / self.rate))

    async def aclose(self) -> None:
        """Nothing of its own to close (the warehouse's pool is the app's)."""


class PostgresRateLimiter(_Bucket):
    """Buckets in hub.rate_limits (unlogged: counters need no crash safety)."""

    def __init__(self, pool: AsyncConnectionPool, per_minute: int, window: float = 60.0,
                 prune_seconds: float = PRUNE_SECONDS) -> None:
        super().__init__(per_minute, window)
        if window > PRUNE_AFTER:
            raise ValueError(f"a {window} s window is longer than PRUNE_AFTER ({PRUNE_AFTER} s):"
                             " its buckets would be pruned before they are full")
        self.pool = pool
        self.prune_seconds = prune_seconds
        self._next_prune = 0.0  # the first request prunes what the last run left

    async def retry_after(self, client_id: str,
                          conn: AsyncConnection | None = None) -> int | None:
        # The caller's connection only outside a transaction: inside one the bucket's row
        # would stay locked, and the client's other requests wait, until it ends.
        if conn is not None and conn.autocommit \
                and conn.info.transaction_status == TransactionStatus.IDLE:
            return await self._take(conn, client_id)
        async with self.pool.connection() as own:
            return await self._take(own, client_id)

    async def _take(self, conn: AsyncConnection, client_id: str) -> int | None:
        params = {"client": client_id, "capacity": self.capacity, "rate": self.rate}
        wait = self.wait(*await (await conn.execute(TAKE_SQL, params)).fetchone())
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_seconds
            await conn.execute(PRUNE_SQL, [PRUNE_AFTER])
        return wait


class RedisRateLimiter(_Bucket):
    """Buckets in Redis hashes `<prefix>:rate:<client id>`."""

    def __init__(self, url: str, prefix: str, per_minute: int, window: float = 60.0) -> None:
        super().__init__(per_minute, window)
        # Short timeouts: a Redis that hangs must not hold every request for long.
        self.client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.prefix = prefix
        self._take = self.client.register_script(TAKE_LUA)
        self._warned = False

    async def retry_after(self, client_id: str,
                          conn: AsyncConnection | None = None) -> int | None:
        try:
            granted, tokens = await self._take(keys=[f"{self.prefix}:rate:{client_id}"],
                                               args=[self.capacity, self.rate])
        except redis.RedisError as exc:
            if not self._warned:  # once per outage, not once per request
                log.warning("rate limits not enforced: Redis does not answer (%s)", exc)
                self._warned = True
            return None
        self._warned = False
        return self.wait(bool(granted), float(tokens))

    async def aclose(self) -> None:
        await self.client.aclose()


class LimitsUnavailable(Exception):
    """HUB_REDIS_URL is set but Redis does not answer: the message says what to do."""


def check_redis(url: str) -> None:
    """Raise LimitsUnavailable (one line) if the Redis at `url` does not answer now: a
    mistyped address stops `hub serve` at once rather than leaving every instance unlimited."""
    where = masked_url(url)
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5) as probe:
            probe.ping()
    except (redis.RedisError, ValueError) as exc:
        raise LimitsUnavailable(
            f"HUB_REDIS_URL={where}: Redis does not answer ({exc}); start it or fix the "
            "address, or unset HUB_REDIS_URL to keep the limits in the warehouse") from None
