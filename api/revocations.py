"""Which access tokens still hold: the deny-list check of every request, remembered per worker.

Every authenticated request must refuse a token whose `jti` was revoked, or whose client
or user was removed. Asking the warehouse each time cost a round trip on every request
(bench/api.py). Instead each worker remembers the tokens it found good and forgets them
all as soon as anything is revoked or removed: triggers on hub.revoked_tokens, hub.clients
and hub.users notify channel `hub_revocations` (hub/migrations/), each worker LISTENs on a
connection of its own, and every check first reads what has arrived there.

A notification committed by another process may not have reached this worker's socket
when that process's next request does (the listening backend sends it when the operating
system next runs it: 6 removals in 100 were missed that way under load). So before a
remembered answer is used the worker makes a round trip on the listening connection:
PostgreSQL sends a backend's pending notifications before it answers a query, so every
removal committed before the request arrived has then been read. Requests arriving
together share one round trip (`caught_up`), and it takes no pooled connection.

While the listening connection is down nothing is remembered: every request asks the
warehouse (it checks the database; it does not fail closed). A remembered answer is also
dropped after `ttl` seconds, which bounds the damage of a notification that never
arrives (a connection that died without a word).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from cachetools import TTLCache
from psycopg import AsyncConnection
from psycopg.pq import ConnStatus

log = logging.getLogger(__name__)
CHANNEL = "hub_revocations"
REVOKED = ("select exists (select 1 from hub.revoked_tokens where jti = %s)"
           " or not (exists (select 1 from hub.clients where client_id = %s)"
           "         or exists (select 1 from hub.users where 'user:' || username = %s))")


async def is_revoked(conn: AsyncConnection, jti: str, subject: str) -> bool:
    """True if the token's jti was revoked or its subject (a client, or `user:<name>`) no
    longer exists: the warehouse's answer, now."""
    (revoked,) = await (await conn.execute(REVOKED, [jti, subject, subject])).fetchone()
    return bool(revoked)


class Revocations:
    """The good tokens one worker has seen, forgotten on every notification."""

    def __init__(self, url: str, connect_options: dict[str, Any], ttl: float = 30.0,
                 size: int = 10_000, retry_seconds: float = 1.0) -> None:
        self.url, self.options, self.ttl, self.size = url, connect_options, ttl, size
        self.retry_seconds = retry_seconds
        # (jti, subject) of the tokens found good, each kept `ttl` seconds (monotonic clock);
        # when full, the expired entries go first, then the oldest.
        self._good: TTLCache[tuple[str, str], bool] = TTLCache(maxsize=size, ttl=ttl)
        self._generation = 0  # bumped by every forget: answers read across one are not kept
        self._listener: AsyncConnection | None = None
        self._dying = False  # the server said FATAL on the listener; its close may lag
        self._reconnect: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        # The round trip on the listener in flight, and the next one, which callers arriving
        # now share: the one in flight may have been sent before their removal committed.
        self._in_flight: asyncio.Task[bool] | None = None
        self._queued: asyncio.Task[bool] | None = None

    async def start(self) -> None:
        """Listen; if the warehouse refuses now, keep trying in the background."""
        if not await self._listen():
            self._reconnect = asyncio.create_task(self._keep_trying())

    async def stop(self) -> None:
        for task in (self._reconnect, self._queued, self._in_flight):
            if task is not None:
                task.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    async def known_good(self, jti: str, subject: str) -> bool:
        """True if this worker found the token good and nothing was revoked since, up to
        this call: a (shared) round trip on the listener, no pooled connection."""
        if not (self.listening and (jti, subject) in self._good):
            return False  # no I/O here: a round trip may be reading the listener now
        return await self.caught_up() and (jti, subject) in self._good

    async def caught_up(self) -> bool:
        """Wait until every notification committed before this call has been read; False
        when there is no listening connection (then nothing is remembered)."""
        if self._queued is None:
            self._queued = asyncio.get_running_loop().create_task(
                self._round_trip(self._in_flight))
        # Shielded: one caller's cancelled request must not cancel the others' round trip.
        return await asyncio.shield(self._queued)

    async def _round_trip(self, previous: asyncio.Task[bool] | None) -> bool:
        if previous is not None:
            await asyncio.wait([previous])
        # This task leaves the queue: who comes now may have committed after its query.
        self._in_flight, self._queued = self._queued, None
        listener = self._listener
        if listener is None:
            return False
        try:
            # Notifications read with the answer reach _on_notify, which forgets.
            await listener.execute("select")
        except psycopg.Error:
            if listener is self._listener:
                self._lost()
            return False
        return self._drain()

    async def ask(self, conn: AsyncConnection, jti: str, subject: str) -> bool:
        """The warehouse's answer (is_revoked), remembered if good and still current."""
        listening, generation = self.listening, self._generation
        revoked = await is_revoked(conn, jti, subject)
        if not revoked and listening and generation == self._generation:
            self._good[jti, subject] = True
        return revoked

    def forget(self) -> None:
        self._good.clear()
        self._generation += 1

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def _drain(self) -> bool:
        """Read the notifications that have arrived, without waiting; False (and forget
        everything) when there is no listening connection. Only between round trips: it
        reads the socket under psycopg."""
        if self._listener is None:
            return False
        pgconn = self._listener.pgconn
        try:
            # Never blocks: libpq reads what the socket holds and returns.
            pgconn.consume_input()
        except psycopg.OperationalError:
            self._lost()
            return False
        news = False
        while pgconn.notifies() is not None:  # parsing what was read also runs _on_notice
            news = True
        if self._dying or pgconn.status != ConnStatus.OK:
            self._lost()
            return False
        if news:
            self.forget()
        return True

    def _lost(self) -> None:
        log.warning("lost the connection listening for token revocations; every request "
                    "asks the warehouse until it is back")
        self.forget()
        listener, self._listener = self._listener, None
        # Kept in an attribute: a task nobody references may be collected before it runs.
        self._closing = asyncio.get_running_loop().create_task(listener.close())
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = asyncio.create_task(self._keep_trying())

    async def _listen(self) -> bool:
        listener = None
        try:
            listener = await AsyncConnection.connect(self.url, autocommit=True, **self.options)
            await listener.execute(f"listen {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot listen for token revocations (%s); retrying", exc)
            if listener is not None:
                await listener.close()
            return False
        except asyncio.CancelledError:  # stopped between connect and LISTEN: no leak
            if listener is not None:
                await listener.close()
            raise
        # libpq hands an error that arrives between queries (a terminated backend's FATAL)
        # to the notice handlers; the connection's close is only read on a later call.
        listener.add_notice_handler(self._on_notice)
        listener.add_notify_handler(self._on_notify)
        self.forget()  # what was remembered before this connection may have missed news
        self._dying, self._listener = False, listener
        return True

    def _on_notify(self, notify: psycopg.Notify) -> None:
        self.forget()

    def _on_notice(self, notice: psycopg.errors.Diagnostic) -> None:
        if notice.severity_nonlocalized in ("FATAL", "PANIC"):
            self._dying = True

    async def _keep_trying(self) -> None:
        while not await self._listen():
            await asyncio.sleep(self.retry_seconds)
