"""Read replicas: dataset reads served by streaming standbys (HUB_READ_DATABASE_URL).

What may go to a standby: reading a dataset's rows (pages, cursor pages, exports, change
feeds). What never does: authentication, grants, tokens, audit records, the catalog and
anything that writes; those stay on the primary (the request's own connection), so a
read's audit record is committed on the primary before its rows leave.

The guarantee: a read never returns a version older than the one the primary has
published, hence never older than the one the catalog (read from the primary) announced
to the same caller. Before a standby serves a read, the primary's newest version of the
dataset is compared with the standby's; a standby behind is waited for up to
HUB_READ_REPLICA_WAIT_MS, then the read goes to the primary. Versions are compared, not
WAL positions: every read appends an audit row on the primary, so the primary's WAL
position is always a little ahead of any standby's, and an LSN comparison would wait on
every request although the dataset had not changed.

A standby that cannot be reached, or was still behind after the wait, is left out for
HUB_READ_REPLICA_RETRY_SECONDS: one failure costs one request a wait, not every request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.errors import ApiError

log = logging.getLogger(__name__)

# The newest published version (of one major, when given). api/rows.py reads it in the
# same statement as the rows, so a page is labelled with the version it was read from.
VERSION = ("select max(version) from hub.dataset_versions where dataset = %s"
           " and (%s::int is null or split_part(contract_version, '.', 1)::int = %s)")
POLL_SECONDS = 0.02  # how often a lagging standby is asked again while a read waits
CONNECT_SECONDS = 2.0  # a standby that gives no connection within this is left out


async def newest_version(conn: AsyncConnection, dataset: str,
                         major: int | None = None) -> int | None:
    (version,) = await (await conn.execute(VERSION, [dataset, major, major])).fetchone()
    return version


@dataclass(frozen=True)
class Read:
    """The connection a read uses, and what served it: None without replicas configured,
    else "primary" or the standby's host:port (the audit record names it)."""

    conn: AsyncConnection
    served_by: str | None = None


class Replica:
    """One standby: its pool, its name in logs and audit records, and until when it is
    left out after a failure."""

    def __init__(self, url: str, options: dict[str, str]) -> None:
        info = psycopg.conninfo.conninfo_to_dict(url)
        self.label = f"{info.get('host', 'local')}:{info.get('port', 5432)}"
        # Autocommit like the primary's async pool; a bounded connect so an unreachable
        # host is found out within CONNECT_SECONDS, not the kernel's TCP timeout.
        self.pool = AsyncConnectionPool(
            url, min_size=1, max_size=10, open=False, name=f"replica {self.label}",
            kwargs=options | {"autocommit": True, "connect_timeout": "2"})
        self.out_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.out_until


class ReadReplicas:
    """The standbys dataset reads may use, and the primary's pool to fall back on."""

    def __init__(self, urls: list[str], options: dict[str, str], primary: AsyncConnectionPool,
                 wait_seconds: float, retry_seconds: float) -> None:
        self.replicas = [Replica(url, options) for url in urls]
        self.primary = primary
        self.wait, self.retry = wait_seconds, retry_seconds
        self._turn = itertools.count()  # spreads reads over the standbys in turn

    async def open(self) -> None:
        # Not waiting: a standby down at startup must not keep the API from serving.
        for replica in self.replicas:
            await replica.pool.open(wait=False)

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.pool.close()

    @asynccontextmanager
    async def reading(self, dataset: str, major: int | None = None,
                      primary: AsyncConnection | None = None,
                      announced: int | None = None) -> AsyncIterator[Read]:
        """A connection to read `dataset` from: a standby holding at least the version the
        primary has published (`announced`, else asked of the primary now), or else the
        primary (`primary`, else one from its pool)."""
        if not self.replicas:
            async with self._primary(primary) as conn:
                yield Read(conn)
            return
        if announced is None:
            async with self._primary(primary) as conn:
                announced = await newest_version(conn, dataset, major)
        found = await self._standby(dataset, major, announced) \
            if announced is not None else None
        if found is None:
            async with self._primary(primary) as conn:
                yield Read(conn, "primary")
            return
        replica, conn = found
        try:
            yield Read(conn, replica.label)
        except psycopg.Error as exc:
            if not gone(conn, exc):  # a timeout or a bad filter: the caller's, answered so
                raise
            self._leave_out(replica, _first_line(exc))
            raise ApiError(503, "replica_unavailable", "the read replica serving this "
                           "request failed while reading; ask again (the next read goes "
                           "elsewhere)") from None
        finally:
            await replica.pool.putconn(conn)

    @asynccontextmanager
    async def _primary(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        if conn is not None:
            yield conn
            return
        async with self.primary.connection() as own:
            yield own

    async def _standby(self, dataset: str, major: int | None,
                       announced: int) -> tuple[Replica, AsyncConnection] | None:
        """The first available standby, in turn, that has replayed `announced`; a
        connection of its pool (to put back), or None: read from the primary."""
        start = next(self._turn)
        ordered = self.replicas[start % len(self.replicas):] + \
            self.replicas[:start % len(self.replicas)]
        for replica in (r for r in ordered if r.available):
            conn = await self._caught_up(replica, dataset, major, announced)
            if conn is not None:
                return replica, conn
        return None

    async def _caught_up(self, replica: Replica, dataset: str, major: int | None,
                         announced: int) -> AsyncConnection | None:
        try:
            conn = await replica.pool.getconn(timeout=CONNECT_SECONDS)
        except PoolTimeout:
            self._leave_out(replica, f"no connection within {CONNECT_SECONDS:g} s")
            return None
        try:
            if await self._replayed(conn, dataset, major, announced):
                return conn
            self._leave_out(replica, f"still behind version {announced} of {dataset} after "
                            f"{self.wait * 1000:g} ms")
        except psycopg.Error as exc:
            self._leave_out(replica, _first_line(exc))
        await replica.pool.putconn(conn)
        return None

    async def _replayed(self, conn: AsyncConnection, dataset: str, major: int | None,
                        announced: int) -> bool:
        """Whether the standby holds version `announced` (or newer), waiting up to the
        bound for its replay to get there."""
        deadline = time.monotonic() + self.wait
        while True:
            version = await newest_version(conn, dataset, major)
            if version is not None and version >= announced:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)

    def _leave_out(self, replica: Replica, why: str) -> None:
        replica.out_until = time.monotonic() + self.retry
        log.warning("read replica %s left out for %g s, reads go to the primary or another "
                    "replica: %s", replica.label, self.retry, why)


def gone(conn: AsyncConnection, exc: psycopg.Error) -> bool:
    """Whether `exc` means the server went away (shut down, restarting, connection lost),
    not that the statement failed (a statement timeout is 57014, not 57P..)."""
    return conn.broken or (exc.sqlstate or "").startswith("57P")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
