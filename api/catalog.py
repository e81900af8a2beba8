"""The datasets the API serves: the registry's newest version of each dataset's contract
(hub/catalog.py) over the repository's files (which `hub run` registers), and the date each
retired one was retired.

Each worker re-reads the registry's list of newest versions at most every few seconds (one
small query) and parses only a version it has not seen; a registration in this worker
clears the wait at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date

import psycopg
from psycopg import AsyncConnection

from contracts import Contract, ContractError
from hub.catalog import NEWEST, RETIRED_ON, TEXT, parse

log = logging.getLogger(__name__)


class Catalog:
    """`contracts` is the very dict AppState.contracts holds: updated in place."""

    def __init__(self, contracts: dict[str, Contract], ttl_seconds: float = 2.0) -> None:
        self.contracts = contracts
        self.retired: dict[str, date] = {}  # dataset -> the day it was retired
        self.ttl = ttl_seconds
        self._seen: dict[str, tuple[str, str]] = {}  # dataset -> (version, status) parsed
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    def load(self, conn: psycopg.Connection) -> None:
        """Read the registry at startup (policies are checked against what it holds)."""
        for dataset, version, status, _ in self._changed(conn.execute(NEWEST).fetchall()):
            [text] = conn.execute(TEXT, [dataset, version]).fetchone()
            retired = conn.execute(RETIRED_ON, {"d": dataset}).fetchone()[0]
            self._take(dataset, version, status, text, retired)
        self._read_at = time.monotonic()

    async def refresh(self, conn: AsyncConnection) -> None:
        """Re-read the registry if the last read is older than the ttl."""
        if time.monotonic() - self._read_at <= self.ttl:  # the common case: no I/O
            return
        async with self._lock:  # one request re-reads; the others wait for its answer
            if time.monotonic() - self._read_at > self.ttl:
                await self._read(conn)
                self._read_at = time.monotonic()

    def invalidate(self) -> None:
        self._read_at = float("-inf")

    async def _read(self, conn: AsyncConnection) -> None:
        found = await (await conn.execute(NEWEST)).fetchall()
        for dataset, version, status, _ in self._changed(found):
            [text] = await (await conn.execute(TEXT, [dataset, version])).fetchone()
            [retired] = await (await conn.execute(RETIRED_ON, {"d": dataset})).fetchone()
            self._take(dataset, version, status, text, retired)

    def _changed(self, rows: list[tuple]) -> list[tuple]:
        return [row for row in rows if self._seen.get(row[0]) != (row[1], row[2])]

    def _take(self, dataset: str, version: str, status: str, text: str,
              retired: date | None) -> None:
        try:
            self.contracts[dataset] = parse(dataset, version, text)
        except ContractError as exc:  # linted when registered; a newer hub may lint harder
            log.warning("registered contract %s %s is not served: %s", dataset, version, exc)
        if retired is not None and status == "retired":
            self.retired[dataset] = retired
        else:
            self.retired.pop(dataset, None)
        self._seen[dataset] = (version, status)
