"""A worker remembers good tokens (api/revocations.py) and still refuses a revoked one.

The revocations here are written straight to the warehouse from another connection, as
another worker or `hub clients remove` would: only the notification tells this worker.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import warnings

import psycopg
import pytest

from api.revocations import Revocations, is_revoked
from tests.conftest import bearer, count, own_warehouse, token_for

ROWS = "/datasets/public_works.service_requests/rows"


def _revoke_elsewhere(url: str, app_client, token: str) -> None:
    claims = app_client.app.state.hub.tokens.claims(token)
    with psycopg.connect(url) as conn:
        conn.execute("insert into hub.revoked_tokens (jti, client_id, expires_at)"
                     " values (%s, %s, to_timestamp(%s))",
                     [claims["jti"], claims["sub"], claims["exp"]])


def test_a_remembered_token_revoked_by_another_process_is_refused(app_client, credentials, url):
    token = token_for(app_client, credentials, "transport_analyst")
    for _ in range(2):  # the second request is answered from the worker's memory
        assert app_client.get(ROWS, params={"limit": 1}, headers=bearer(token)).status_code == 200
    _revoke_elsewhere(url, app_client, token)
    refused = app_client.get(ROWS, params={"limit": 1}, headers=bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]


@pytest.fixture
def own_app(settings, url, first_run):
    """An API of this test's own: the session's app_client keeps its listener untouched."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(settings, url)) as client:
        yield client


def test_with_its_listener_gone_the_worker_asks_the_warehouse_then_listens_again(
        own_app, credentials, url):
    app_client = own_app
    revocations = app_client.app.state.hub.revocations
    token = token_for(app_client, credentials, "transport_analyst")
    assert app_client.get(ROWS, params={"limit": 1}, headers=bearer(token)).status_code == 200
    with psycopg.connect(url) as conn:
        # With a timeout it returns once the backend has gone, its socket closed.
        conn.execute("select pg_terminate_backend(%s, 5000)",
                     [revocations._listener.pgconn.backend_pid])  # this app's, not another's
    _revoke_elsewhere(url, app_client, token)  # no notification can reach this worker now
    refused = app_client.get(ROWS, params={"limit": 1}, headers=bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]
    deadline = time.monotonic() + 10
    while not revocations.listening and time.monotonic() < deadline:
        app_client.get("/.well-known/jwks.json")  # lets the app's event loop run
        time.sleep(0.05)
    assert revocations.listening, "the worker did not listen again within 10 s"
    with psycopg.connect(url) as conn:
        assert conn.execute("select query from pg_stat_activity where pid = %s",
                            [revocations._listener.pgconn.backend_pid]).fetchone() == \
            ("listen hub_revocations",)


def test_a_warehouse_refusing_the_listener_leaves_every_check_to_the_warehouse(url, first_run):
    async def scenario() -> None:
        down = Revocations("postgresql://postgres@127.0.0.1:9/none", {}, retry_seconds=0.05)
        await down.start()
        assert not down.listening
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            gone = f"user:nobody-{uuid.uuid4().hex}"  # no such client or user: refused
            assert not await down.known_good("some-jti", gone)
            assert await down.ask(conn, "some-jti", gone)
            assert await is_revoked(conn, "some-jti", gone)
        assert down._reconnect is not None and not down._reconnect.done()  # still trying
        await down.stop()

    asyncio.run(scenario())


def test_a_good_answer_is_remembered_for_ttl_seconds_and_at_most_size_of_them(
        url, credentials):
    subject = credentials["transport_analyst"][0]  # a client that exists: never revoked

    async def scenario() -> None:
        memory = Revocations(url, {}, ttl=0.5, size=2)
        await memory.start()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for jti in ("first", "second", "third"):
                assert not await memory.ask(conn, jti, subject)
        assert [await memory.known_good(j, subject) for j in ("first", "second", "third")] == [
            False, True, True]  # the oldest made room
        await asyncio.sleep(0.6)
        assert not await memory.known_good("third", subject)  # older than ttl: ask again
        await memory.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("table", ["clients", "users"])
def test_removing_a_subject_notifies_the_workers(server_url, table):
    # A warehouse of its own: the session's gets its schema from whichever test runs first
    # (the sweep of each test alone found this one relying on that).
    with own_warehouse(server_url, "hub_test_notify") as url, \
            psycopg.connect(url, autocommit=True) as conn:
        conn.execute("listen hub_revocations")
        conn.execute(f"delete from hub.{table} where false")  # a statement, even of no rows
        notes = list(conn.notifies(timeout=5, stop_after=1))
    assert [n.payload for n in notes] == [table]


def test_a_failed_listen_closes_its_connection(url, monkeypatch):
    import api.revocations

    monkeypatch.setattr(api.revocations, "CHANNEL", "not a channel")  # LISTEN fails: syntax
    name = f"revocations-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        listener = Revocations(url, {"application_name": name}, retry_seconds=0.05)
        await listener.start()
        await asyncio.sleep(0.3)  # a few more tries in the background
        assert not listener.listening
        await listener.stop()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(scenario())
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    # A closed session's backend exits on its own time: on a machine at load 14 it took
    # more than 10 s. A session still held open stays for good, so a minute tells them apart.
    deadline = time.monotonic() + 60
    while count(url, "select count(*) from pg_stat_activity where application_name = %s",
                [name]):
        assert time.monotonic() < deadline, f"a session named {name} still open after 60 s"
        time.sleep(0.05)


# ---------- a removal committed elsewhere counts for the very next request


async def _remembered_then_removed(memory: Revocations, conn, admin, client_id: str) -> bool:
    """Add a client, have `memory` remember its token, remove the client from another
    connection (as `hub clients remove` would) and return what `memory` says right after."""
    await admin.execute("insert into hub.clients (client_id, name, role, secret_hash)"
                        " values (%s, %s, 'transport_analyst', 'x')", [client_id, client_id])
    assert not await memory.ask(conn, "jti", client_id)
    assert await memory.known_good("jti", client_id)
    await admin.execute("delete from hub.clients where client_id = %s", [client_id])
    return await memory.known_good("jti", client_id)


def _with_memory(url: str, scenario) -> None:
    async def run() -> None:
        memory = Revocations(url, {}, retry_seconds=0.05)
        await memory.start()
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn, \
                    await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
                await scenario(memory, conn, admin)
        finally:
            await memory.stop()

    asyncio.run(run())


@pytest.fixture
def own_url(server_url):
    from tests.conftest import own_warehouse

    with own_warehouse(server_url, "hub_revoke") as url:
        yield url


def test_a_removal_committed_elsewhere_is_never_missed_by_the_next_check(own_url):
    # Before the round trip on the listener, about 6 in 100 of these were still good.
    async def scenario(memory, conn, admin) -> None:
        missed = [i for i in range(100)
                  if await _remembered_then_removed(memory, conn, admin, f"gone-{i}")]
        assert missed == []

    _with_memory(own_url, scenario)


def test_after_the_listener_reconnected_a_removal_still_counts_at_once(own_url):
    async def scenario(memory, conn, admin) -> None:
        for round_ in range(3):
            await admin.execute("select pg_terminate_backend(%s, 5000)",
                                [memory._listener.pgconn.backend_pid])
            # The next round trip finds the listener dead: nothing remembered from now on.
            assert not await memory.caught_up() and not memory.listening
            deadline = time.monotonic() + 10
            while not memory.listening:
                assert time.monotonic() < deadline, "the listener did not come back in 10 s"
                await asyncio.sleep(0.05)
            assert not await _remembered_then_removed(memory, conn, admin, f"gone-{round_}")

    _with_memory(own_url, scenario)


def test_checks_arriving_together_all_see_a_removal(own_url):
    async def scenario(memory, conn, admin) -> None:
        assert not await _remembered_then_removed(memory, conn, admin, "first")
        await admin.execute("insert into hub.clients (client_id, name, role, secret_hash)"
                            " values ('many', 'many', 'transport_analyst', 'x')")
        assert not await memory.ask(conn, "jti", "many")
        before = await asyncio.gather(*(memory.known_good("jti", "many") for _ in range(20)))
        await admin.execute("delete from hub.clients where client_id = 'many'")
        after = await asyncio.gather(*(memory.known_good("jti", "many") for _ in range(20)))
        assert before == [True] * 20 and after == [False] * 20

    _with_memory(own_url, scenario)
