"""Group commit of audit records (hub.audit.GroupCommit) against the real warehouse."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from hub.audit import AuditEvent, GroupCommit
from tests.conftest import own_warehouse

KIND = "test.group_commit"


@pytest.fixture(scope="module")
def url(server_url):
    with own_warehouse(server_url, "hub_group") as url:
        yield url


def run_writer(url: str, body: Callable[[GroupCommit], Awaitable[object]]) -> object:
    async def main() -> object:
        pool = AsyncConnectionPool(url, min_size=1, max_size=1, open=False,
                                   kwargs={"autocommit": True})
        await pool.open(wait=True)
        try:
            return await body(GroupCommit(pool))
        finally:
            await pool.close()

    return asyncio.run(main())


def written(url: str, marker: str) -> tuple[int, int]:
    """(records, transactions that wrote them) for one test's marker."""
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*), count(distinct xmin::text) from audit.events"
                            " where request_id like %s", [f"{marker}%"]).fetchone()


def event(marker: str, i: int, **fields: object) -> AuditEvent:
    return AuditEvent(kind=KIND, request_id=f"{marker}-{i}", **fields)


def test_concurrent_records_land_once_each_in_fewer_commits(url):
    marker = uuid.uuid4().hex
    run_writer(url, lambda w: asyncio.gather(*(w.write(event(marker, i)) for i in range(50))))
    records, transactions = written(url, marker)
    assert records == 50
    assert 1 <= transactions < 50  # batched: the first record alone, the rest together


def test_every_field_lands_as_written(url):
    # The batch travels as one JSON array (hub.audit.INSERT): arrays, JSON, nulls,
    # quotes and non-ASCII text must come back as the event held them.
    marker = uuid.uuid4().hex
    full = event(marker, 0, decision="allow", reason="grant 'x'\t\"y\" ☃", status_code=200,
                 client_id="c", role="r", department="d", purpose=None, dataset="a.b",
                 dataset_version=3, columns=["sr_number", "zip code"], unmasked_personal=[],
                 filters={"query": [["status", "eq.O'Brien; drop table x"]]},
                 rows_returned=100, grant_id=None, source_address="127.0.0.1",
                 detail={"valid_from": "2026-01-01", "n": 1.5, "nested": {"k": [None]}})
    run_writer(url, lambda w: asyncio.gather(w.write(full), w.write(event(marker, 1))))
    names = [f.name for f in dataclasses.fields(AuditEvent)]
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"select {', '.join(names)} from audit.events where request_id"
                            " like %s order by event_id", [f"{marker}%"]).fetchall()
    assert [dict(zip(names, row, strict=True)) for row in rows] == [
        dataclasses.asdict(full), dataclasses.asdict(event(marker, 1))]


def test_a_lone_record_is_committed_when_write_returns(url):
    marker = uuid.uuid4().hex

    async def body(writer: GroupCommit) -> tuple[int, int]:
        await writer.write(event(marker, 0))
        return await asyncio.to_thread(written, url, marker)  # seen from another session

    assert run_writer(url, body) == (1, 1)


def test_a_bad_record_fails_only_its_own_write(url):
    marker = uuid.uuid4().hex
    writes = [event(marker, i) for i in range(10)]
    writes[4] = event(marker, 4, decision="maybe")  # refused by the table's check

    async def body(writer: GroupCommit) -> list[object]:
        return await asyncio.gather(*(writer.write(e) for e in writes), return_exceptions=True)

    outcomes = run_writer(url, body)
    assert isinstance(outcomes[4], psycopg.errors.CheckViolation)
    assert [o for i, o in enumerate(outcomes) if i != 4] == [None] * 9
    assert written(url, marker)[0] == 9


def test_a_request_that_goes_away_leaves_the_writer_working(url):
    marker = uuid.uuid4().hex

    async def body(writer: GroupCommit) -> None:
        tasks = [asyncio.create_task(writer.write(event(marker, i))) for i in range(5)]
        await asyncio.sleep(0)  # all queued
        tasks[2].cancel()  # its client disconnected while the batch was written
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[2], asyncio.CancelledError)
        await writer.write(event(marker, 99))  # the writer still writes

    run_writer(url, body)
    assert written(url, marker)[0] >= 5  # the four that waited, the one after, maybe the 5th


def test_a_killed_connection_loses_no_record(url):
    marker = uuid.uuid4().hex

    async def body(writer: GroupCommit) -> list[object]:
        async with writer.pool.connection() as conn:
            pid = conn.info.backend_pid
        await asyncio.to_thread(_terminate, url, pid)  # the writer's session dies
        return await asyncio.gather(*(writer.write(event(marker, i)) for i in range(3)),
                                    return_exceptions=True)

    assert run_writer(url, body) == [None, None, None]  # retried one by one, reconnected
    assert written(url, marker)[0] == 3


def test_writes_fail_loudly_when_no_connection_can_be_had(url):
    async def body(writer: GroupCommit) -> list[object]:
        await writer.pool.close()
        return await asyncio.gather(*(writer.write(event("closed", i)) for i in range(3)),
                                    return_exceptions=True)

    outcomes = run_writer(url, body)
    assert len(outcomes) == 3 and all(isinstance(o, psycopg.Error) for o in outcomes)


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_terminate_backend(%s)", [pid])
