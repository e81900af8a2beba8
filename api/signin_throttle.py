"""Failed sign-ins, counted per user and per address, so that passwords cannot be guessed
at the speed of the server.

After `per_user` failures for one username, or `per_address` from one address, within
`window` seconds, further attempts are refused without checking the password until the
oldest failure leaves the window. The failures are kept where every API instance sees them
(hub.signin_failures in the warehouse, or Redis sorted sets with HUB_REDIS_URL), timed by
that store's clock: a guesser spreading tries over instances gets no more of them.
"""

from __future__ import annotations

import math
import uuid
from typing import Protocol

import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from api.errors import ApiError

# The age in seconds of the limit-th newest failure within the window, per key: null when
# there are fewer failures than the limit.
AGES_SQL = """
select (select extract(epoch from statement_timestamp() - failed_at)::float8
          from hub.signin_failures where key = %(user)s
           and failed_at > statement_timestamp() - make_interval(secs => %(window)s)
         order by failed_at desc offset %(per_user)s - 1 limit 1),
       (select extract(epoch from statement_timestamp() - failed_at)::float8
          from hub.signin_failures where key = %(address)s
           and failed_at > statement_timestamp() - make_interval(secs => %(window)s)
         order by failed_at desc offset %(per_address)s - 1 limit 1)"""
# A failure, and the end of every failure that left the window (the table stays small).
FAILED_SQL = """
with gone as (delete from hub.signin_failures
              where failed_at <= statement_timestamp() - make_interval(secs => %(window)s))
insert into hub.signin_failures (key, failed_at)
values (%(user)s, statement_timestamp()), (%(address)s, statement_timestamp())"""

AGES_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ages = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', tostring(now - tonumber(ARGV[1])))
  local limit = tonumber(ARGV[i + 1])
  local hit = redis.call('ZREVRANGE', key, limit - 1, limit - 1, 'WITHSCORES')
  ages[i] = hit[2] and tostring(now - tonumber(hit[2])) or ''
end
return ages
"""
FAILED_LUA = """
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) + tonumber(t[2]) / 1000000)
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[1])) + 1)
end
return 1
"""


class SignInThrottle(Protocol):
    async def wait(self, username: str, address: str | None) -> int | None:
        """Seconds until this user may try again from this address, or None: try now."""

    async def failed(self, username: str, address: str | None) -> None: ...

    async def succeeded(self, username: str) -> None:
        """The person knows the password: the user's count starts over (the address's does
        not, so one right password cannot unlock guessing at other users)."""


class _Limits:
    def __init__(self, per_user: int, per_address: int, window: float) -> None:
        self.per_user, self.per_address, self.window = per_user, per_address, window

    def longest(self, ages: list[float | None]) -> int | None:
        waits = [max(1, math.ceil(self.window - age)) for age in ages if age is not None]
        return max(waits) if waits else None


def _keys(username: str, address: str | None) -> tuple[str, str]:
    return f"user:{username}", f"address:{address or '?'}"


class PostgresSignInThrottle(_Limits):
    def __init__(self, pool: AsyncConnectionPool, per_user: int, per_address: int,
                 window: float) -> None:
        super().__init__(per_user, per_address, window)
        self.pool = pool

    async def wait(self, username: str, address: str | None) -> int | None:
        user, place = _keys(username, address)
        async with self.pool.connection() as conn:
            ages = await (await conn.execute(AGES_SQL, {
                "user": user, "address": place, "window": self.window,
                "per_user": self.per_user, "per_address": self.per_address})).fetchone()
        return self.longest(list(ages))

    async def failed(self, username: str, address: str | None) -> None:
        user, place = _keys(username, address)
        async with self.pool.connection() as conn:
            await conn.execute(FAILED_SQL, {"user": user, "address": place,
                                            "window": self.window})

    async def succeeded(self, username: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("delete from hub.signin_failures where key = %s",
                               [_keys(username, None)[0]])


class RedisSignInThrottle(_Limits):
    """Sorted sets `<prefix>:signin:user:<name>` and `...:address:<ip>`, scored by time."""

    def __init__(self, client: aioredis.Redis, prefix: str, per_user: int, per_address: int,
                 window: float) -> None:
        super().__init__(per_user, per_address, window)
        self.client, self.prefix = client, prefix
        self._ages = client.register_script(AGES_LUA)
        self._failed = client.register_script(FAILED_LUA)

    def _redis_keys(self, username: str, address: str | None) -> list[str]:
        return [f"{self.prefix}:signin:{key}" for key in _keys(username, address)]

    async def wait(self, username: str, address: str | None) -> int | None:
        try:
            ages = await self._ages(keys=self._redis_keys(username, address),
                                    args=[self.window, self.per_user, self.per_address])
        except redis.RedisError:
            # Unlike the rate limit, this guards passwords: no count, no password check.
            raise ApiError(503, "signin_unavailable", "sign-in is paused: the hub cannot reach the "
                           "Redis that counts failed sign-ins (HUB_REDIS_URL); try again "
                           "shortly") from None
        return self.longest([float(a) if a not in (b"", "") else None for a in ages])

    async def failed(self, username: str, address: str | None) -> None:
        # A unique member per failure: two failing at the same instant both count.
        await self._failed(keys=self._redis_keys(username, address),
                           args=[self.window, uuid.uuid4().hex])

    async def succeeded(self, username: str) -> None:
        await self.client.delete(self._redis_keys(username, None)[0])
