"""Read replicas (docs/replicas.md): a primary and a standby made by `pg_basebackup -R`,
both started here from the machine's PostgreSQL 15 binaries, once for the module.

The API reads rows from the standby and writes audit records to the primary; a standby
behind the published version (its replay paused) is not read, and neither is a stopped
one: reads go to the primary, never to a version older than the one published.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr, ValidationError

from api.errors import ApiError
from api.main import create_app
from api.replicas import ReadReplicas
from contracts import load_all
from flows.publish import publish
from hub import clients
from hub.bootstrap import bootstrap
from hub.settings import Settings
from hub_cli.main import setting_problem
from tests.conftest import RUN_TAG, bearer, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATASET = "transport.bike_counts"
TABLE = "transport__bike_counts"
# A small, fast throwaway cluster: nothing here must survive a crash.
FAST = ["fsync = off", "synchronous_commit = off", "full_page_writes = off",
        "shared_buffers = 16MB", "max_connections = 40", "listen_addresses = '127.0.0.1'"]


def _pg(*args: str) -> None:
    """A PostgreSQL program, as the postgres user when run as root (the server refuses root)."""
    command = [str(PG_BIN / args[0]), *args[1:]]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(args[:2])} failed: {done.stderr}"


def _start(data: Path, port: int, socket_dir: Path, extra: list[str]) -> None:
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\n".join([*FAST, *extra, f"port = {port}",
                              f"unix_socket_directories = '{socket_dir}'"]) + "\n")
    _pg("pg_ctl", "-D", str(data), "-l", str(data.parent / f"{data.name}.log"), "-w", "start")


def _stop(data: Path) -> None:
    if (data / "postmaster.pid").exists():
        _pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")


def _version(url: str) -> int | None:
    with psycopg.connect(url) as conn:
        return conn.execute("select max(version) from hub.dataset_versions where dataset = %s",
                            [DATASET]).fetchone()[0]


def _until_replayed(standby: str, version: int) -> None:
    deadline = time.monotonic() + 30
    while (_version(standby) or 0) < version:
        assert time.monotonic() < deadline, f"the standby never replayed version {version}"
        time.sleep(0.02)


def _publish(primary: str, contract, hours: int, total: int) -> int:
    """Publish `hours` rows, each counting `total` bikes, through the hub's own publish."""
    with psycopg.connect(primary) as conn:
        conn.execute(f"drop table if exists candidate.{TABLE}, candidate.{TABLE}__quarantine")
        conn.execute(f"create table candidate.{TABLE} (counted_at timestamp, east integer,"
                     " west integer, total integer)")
        conn.execute(f"insert into candidate.{TABLE} select timestamp '2026-11-01' + i *"
                     f" interval '1 hour', 1, 1, %s from generate_series(1, %s) i",
                     [total, hours])
        conn.execute(f"create table candidate.{TABLE}__quarantine"
                     f" (like candidate.{TABLE})")
    return publish(primary, contract, uuid.uuid4()).version


@pytest.fixture(scope="module")
def pair() -> Iterator[dict]:
    """A primary with the hub's schema and version 1 of bike counts, and its standby."""
    assert (PG_BIN / "pg_basebackup").exists(), f"PostgreSQL 15 binaries missing: {PG_BIN}"
    # Under /tmp, not pytest's basetemp: the postgres user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix=f"hub-replica-{RUN_TAG}-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    ports = {"primary": free_port(), "standby": free_port()}
    primary_dir, standby_dir = root / "primary", root / "standby"
    try:
        _pg("initdb", "-D", str(primary_dir), "-U", "postgres", "--auth=trust", "-N")
        _start(primary_dir, ports["primary"], root, ["wal_level = replica"])
        primary = f"postgresql://postgres@127.0.0.1:{ports['primary']}/postgres"
        bootstrap(primary)
        contract = load_all(Settings(_env_file=None).contracts_dir)[DATASET]
        _publish(primary, contract, hours=20, total=2)
        _pg("pg_basebackup", "-h", "127.0.0.1", "-p", str(ports["primary"]), "-U", "postgres",
            "-D", str(standby_dir), "-R", "-X", "stream", "-c", "fast", "-N", "-C", "-S",
            f"standby_{RUN_TAG}")
        _start(standby_dir, ports["standby"], root, ["hot_standby = on"])
        standby = f"postgresql://postgres@127.0.0.1:{ports['standby']}/postgres"
        _until_replayed(standby, 1)
        yield {"primary": primary, "standby": standby, "contract": contract,
               "standby_dir": standby_dir, "label": f"127.0.0.1:{ports['standby']}"}
    finally:
        _stop(standby_dir)
        _stop(primary_dir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def api(pair: dict, settings: Settings) -> Iterator[tuple[TestClient, dict]]:
    """The API on the primary, reading from the standby; a transport analyst's token."""
    own = settings.model_copy(update={
        "database_url": SecretStr(pair["primary"]),
        "read_database_url": SecretStr(pair["standby"]),
        "read_replica_wait_ms": 200, "read_replica_retry_seconds": 0.5})
    with psycopg.connect(pair["primary"]) as conn:
        client, secret = clients.add_client(conn, name="replica-reader", role="transport_analyst")
    with TestClient(create_app(own, pair["primary"])) as http:
        token = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client.client_id, secret)).json()["access_token"]
        http.headers.update(bearer(token))
        yield http, pair


def _served_by(primary: str, request_id: str, kind: str = "data.read") -> str | None:
    """Where the audit record (on the primary) says the request's rows came from."""
    with psycopg.connect(primary) as conn:
        found = conn.execute("select detail->>'served_by' from audit.events where"
                             " request_id = %s and kind = %s", [request_id, kind]).fetchone()
    assert found is not None, f"no {kind} audit record of {request_id} on the primary"
    return found[0]


def _get(http: TestClient, path: str, **params: object) -> tuple[dict | str, str]:
    """The answer's JSON (or text) and the request's id, which its audit record carries."""
    rid = uuid.uuid4().hex
    response = http.get(f"/datasets/{DATASET}/{path}", params=params,
                        headers={"X-Request-Id": rid})
    assert response.status_code == 200, response.text
    is_json = response.headers["content-type"].startswith("application/json")
    return (response.json() if is_json else response.text), rid


def _until_served_by_standby(http: TestClient, pair: dict) -> dict:
    """Read until the standby serves again (it is left out for the retry period after a
    failure, and may be replaying or restarting)."""
    deadline = time.monotonic() + 30
    while True:
        body, rid = _get(http, "rows", limit=50)
        if _served_by(pair["primary"], rid) == pair["label"]:
            return body
        assert time.monotonic() < deadline, "reads never went back to the standby"
        time.sleep(0.1)


def test_rows_come_from_the_standby_and_never_an_older_version(api) -> None:
    http, pair = api
    primary, standby = pair["primary"], pair["standby"]
    before = _until_served_by_standby(http, pair)["version"]
    assert before == _version(primary) == _version(standby)
    with psycopg.connect(standby, autocommit=True) as conn:
        conn.execute("select pg_wal_replay_pause()")
    try:
        # Changed on the primary without a new version: the paused standby still holds
        # the rows as published, and serves them, which shows where a page comes from.
        with psycopg.connect(primary) as conn:
            conn.execute(f"update shared.{TABLE} set total = -1")
        body, rid = _get(http, "rows", limit=50)
        assert body["rows"] and -1 not in {r["total"] for r in body["rows"]}
        assert _served_by(primary, rid) == pair["label"]  # the record is on the primary
        # A new version on the primary, which the paused standby cannot have: the read
        # waits its bound, then goes to the primary; the old version is not served.
        assert _publish(primary, pair["contract"], hours=30, total=before + 10) == before + 1
        body, rid = _get(http, "rows", limit=50)
        assert (body["version"], len(body["rows"])) == (before + 1, 30)
        assert {r["total"] for r in body["rows"]} == {before + 10}
        assert _served_by(primary, rid) == "primary"
        assert _version(standby) == before  # it was still behind when read
    finally:
        with psycopg.connect(standby, autocommit=True) as conn:
            conn.execute("select pg_wal_replay_resume()")
    _until_replayed(standby, before + 1)
    assert _until_served_by_standby(http, pair)["version"] == before + 1


def test_cursor_pages_exports_and_change_feeds_read_the_standby(api) -> None:
    http, pair = api
    _until_served_by_standby(http, pair)
    first, _ = _get(http, "rows", limit=5)
    second, rid = _get(http, "rows", limit=5, cursor=first["next_cursor"])
    assert second["rows"][0]["counted_at"] > first["rows"][-1]["counted_at"]
    assert _served_by(pair["primary"], rid) == pair["label"]
    lines, rid = _get(http, "export")
    assert len(lines.splitlines()) == _count(pair["primary"])
    assert _served_by(pair["primary"], rid, "data.export.completed") == pair["label"]
    if _version(pair["primary"]) == 1:  # a feed needs two versions
        _publish(pair["primary"], pair["contract"], hours=25, total=7)
        _until_replayed(pair["standby"], 2)
        _until_served_by_standby(http, pair)
    feed, rid = _get(http, "changes", since_version=1)
    assert feed["rows"], "every published version changed rows"
    assert _served_by(pair["primary"], rid) == pair["label"]


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"select count(*) from shared.{TABLE}").fetchone()[0]


def test_a_stopped_standby_sends_reads_to_the_primary(api) -> None:
    http, pair = api
    _until_served_by_standby(http, pair)
    _stop(pair["standby_dir"])
    try:
        version = _version(pair["primary"])
        for _ in range(3):  # the first finds it gone; the next go straight to the primary
            body, rid = _get(http, "rows", limit=50)
            assert body["version"] == version
            assert _served_by(pair["primary"], rid) == "primary"
    finally:  # started again for the module's other tests, in whatever order they run
        _pg("pg_ctl", "-D", str(pair["standby_dir"]), "-l",
            str(pair["standby_dir"].parent / "standby.log"), "-w", "start")


def test_a_standby_lost_mid_read_answers_503_and_is_left_out(pair) -> None:
    asyncio.run(_lost_mid_read(pair))


async def _lost_mid_read(pair: dict) -> None:
    unused = AsyncConnectionPool(pair["primary"], open=False)  # the request's own is given
    reads = ReadReplicas([pair["standby"]], {}, unused, wait_seconds=10, retry_seconds=60)
    await reads.open()
    try:
        async with await psycopg.AsyncConnection.connect(pair["primary"]) as primary:
            with pytest.raises(ApiError) as caught:
                async with reads.reading(DATASET, primary=primary) as read:
                    assert read.served_by == pair["label"]
                    async with await psycopg.AsyncConnection.connect(pair["standby"]) as other:
                        await other.execute("select pg_terminate_backend(%s, 10000)",
                                            [read.conn.info.backend_pid])
                    await read.conn.execute(f"select count(*) from shared.{TABLE}")
            assert (caught.value.status, caught.value.code) == (503, "replica_unavailable")
            async with reads.reading(DATASET, primary=primary) as read:
                assert read.served_by == "primary"  # left out after the failure
    finally:
        await reads.close()


def test_a_read_url_that_is_not_a_url_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(read_database_url="db.city.internal:5432", _env_file=None)
    assert setting_problem(caught.value).startswith(
        "HUB_READ_DATABASE_URL='db.city.internal:5432': Value error, give one or more "
        "postgresql://")


def test_a_password_in_a_bad_read_url_is_not_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(read_database_url="postgres://hub:s3cret@db.city:5432/hub x", _env_file=None)
    said = setting_problem(caught.value)
    assert "s3cret" not in said and "postgres://db.city:5432/hub x" in said
