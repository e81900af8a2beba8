"""The refusal log (hub.refusals.RefusalLog): refusals rate-limited in the audit log itself,
written through a real GroupCommit into a warehouse of this module's own."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from hub.audit import AuditEvent, GroupCommit
from hub.refusals import KEPT_REQUEST_IDS, MAX_REASONS, RefusalLog
from tests.conftest import own_warehouse


@pytest.fixture(scope="module")
def url(server_url):
    with own_warehouse(server_url, "hub_refusal_log") as url:
        yield url


def run_log(url: str, body: Callable[[RefusalLog], Awaitable[object]],
            interval: float = 1.0) -> object:
    async def main() -> object:
        pool = AsyncConnectionPool(url, min_size=1, max_size=1, open=False,
                                   kwargs={"autocommit": True})
        await pool.open(wait=True)
        log = RefusalLog(GroupCommit(pool).write, interval)
        try:
            return await body(log)
        finally:
            await log.close()
            await pool.close()

    return asyncio.run(main())


def refusal(marker: str, i: int, client: str = "c1", reason: str = "masked") -> AuditEvent:
    return AuditEvent(kind="data.denied", request_id=f"{marker}-{i}", decision="deny",
                      reason=f"{marker} {reason}", status_code=400, client_id=client,
                      detail={"probe": "masked_column"})


def records(url: str, marker: str) -> list[tuple]:
    """(client, reason, count, request_ids) of a test's records, oldest first."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select client_id, reason, (detail->>'count')::int, detail->'request_ids'"
            " from audit.events where reason like %s order by event_id",
            [f"{marker}%"]).fetchall()


def test_a_flood_within_a_second_is_two_records_counting_every_refusal(url):
    marker = uuid.uuid4().hex

    async def body(log: RefusalLog) -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(log.refuse(refusal(marker, i)) for i in range(200)))
        took = loop.time() - start
        await asyncio.sleep(1.5)  # the second ends: its timer writes what was counted
        return took

    assert run_log(url, body) < 1.0
    found = records(url, marker)
    assert [count for _, _, count, _ in found] == [1, 199]
    assert found[0][3] == [f"{marker}-0"]
    assert found[1][3] == [f"{marker}-{i}" for i in range(1, 1 + KEPT_REQUEST_IDS)]


def test_the_record_is_committed_when_the_first_refusal_returns(url):
    marker = uuid.uuid4().hex

    async def body(log: RefusalLog) -> list[tuple]:
        await log.refuse(refusal(marker, 0))
        return await asyncio.to_thread(records, url, marker)  # seen from another session

    assert run_log(url, body) == [("c1", f"{marker} masked", 1, [f"{marker}-0"])]


def test_close_writes_what_is_still_counted(url):
    marker = uuid.uuid4().hex

    async def body(log: RefusalLog) -> None:
        for i in range(3):
            await log.refuse(refusal(marker, i))

    run_log(url, body, interval=60)  # no timer fires: close writes the two counted
    assert [count for _, _, count, _ in records(url, marker)] == [1, 2]


def test_each_client_and_reason_has_its_own_record(url):
    marker = uuid.uuid4().hex
    events = [refusal(marker, 10 * c + r, client=f"c{c}", reason=f"r{r}")
              for c in range(3) for r in range(2)]

    async def body(log: RefusalLog) -> None:
        await asyncio.gather(*(log.refuse(e) for e in events))

    run_log(url, body)
    found = records(url, marker)
    assert sorted((client, reason, count) for client, reason, count, _ in found) == sorted(
        (e.client_id, e.reason, 1) for e in events)


def test_after_a_quiet_second_a_refusal_is_written_at_once_again(url):
    marker = uuid.uuid4().hex

    async def body(log: RefusalLog) -> list[tuple]:
        await log.refuse(refusal(marker, 0))
        await asyncio.sleep(0.5)  # more than two intervals: the client is forgotten
        await log.refuse(refusal(marker, 1))
        return await asyncio.to_thread(records, url, marker)

    found = run_log(url, body, interval=0.2)
    assert [(count, ids) for _, _, count, ids in found] == [
        (1, [f"{marker}-0"]), (1, [f"{marker}-1"])]


def test_varying_the_reason_does_not_escape_the_limit(url):
    # A prober naming a new column each time: past MAX_REASONS reasons in flight, the
    # client's refusals share one overflow record a second.
    marker = uuid.uuid4().hex
    events = [refusal(marker, i, reason=f"column c{i}") for i in range(MAX_REASONS + 30)]

    async def body(log: RefusalLog) -> None:
        await asyncio.gather(*(log.refuse(e) for e in events))

    run_log(url, body, interval=60)
    found = records(url, marker)
    assert sum(count for _, _, count, _ in found) == len(events)
    assert len(found) == MAX_REASONS + 2  # one each, then the overflow's first and the rest
    with psycopg.connect(url) as conn:
        overflow = conn.execute("select count(*) from audit.events where reason like %s"
                                " and (detail->>'overflow')::boolean", [f"{marker}%"]).fetchone()
    assert overflow == (2,)


def test_a_refusal_whose_record_cannot_be_written_fails_loudly(url):
    async def body(log: RefusalLog) -> None:
        pool = AsyncConnectionPool(url, open=False)  # never opened: no connection to be had
        log.write = GroupCommit(pool).write
        await log.refuse(refusal("closed", 0))

    with pytest.raises(psycopg.Error):
        run_log(url, body)


def test_a_counted_record_that_cannot_be_written_is_logged(url, caplog):
    marker = uuid.uuid4().hex

    async def body(log: RefusalLog) -> None:
        for i in range(3):
            await log.refuse(refusal(marker, i))
        log.write = GroupCommit(AsyncConnectionPool(url, open=False)).write  # gone
        await asyncio.sleep(0.3)  # the timer's write fails: nobody waits on it

    with caplog.at_level(logging.ERROR, logger="hub.refusals"):
        run_log(url, body, interval=0.1)
    assert "could not write the audit record of 2 refused requests" in caplog.text
    assert [count for _, _, count, _ in records(url, marker)] == [1]
