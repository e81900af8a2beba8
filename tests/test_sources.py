"""Source connectors against real servers, folders and brokers: the REST API on loopback,
file drops in a folder, Mosquitto, MariaDB and PostgreSQL."""

from __future__ import annotations

import csv
import json
import logging
import time
import uuid

import httpx
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from psycopg.conninfo import make_conninfo

from contracts import load_all
from demo.api import DemoApi
from flows.sources.base import Cursor, SchemaDrift
from flows.sources.files import read_files
from flows.sources.guard import UnsafeSource, check_url
from flows.sources.mqtt import MqttSource, forget_session, read_messages, subscribe_once
from flows.sources.pg_copy import CHUNK_ROWS, copy_batches
from flows.sources.rest import Pagination, RestSource, SourceError, client_credentials, read_records
from flows.sources.sql import read_batches
from tests.stand_ins import DATA, REPO, publish

BIKES = DATA / "seattle_bike_counter" / "spokane-st.json"
FIELDS = {"counted_at": "date", "east": "east", "west": "west", "total": "spokane_st_bridge_total"}
LOOPBACK = ("127.0.0.1",)
SHELTER = DATA / "nyc_dhs_shelter_census" / "DHS_Daily_Report.csv"


def _api(**options) -> tuple[DemoApi, str]:
    api = DemoApi.from_file(BIKES, "date", **options)
    base, _ = api.start()
    return api, base


def _read(url: str, after: Cursor | None = None, **options) -> list[tuple]:
    source = RestSource(url, FIELDS, allowed_hosts=LOOPBACK, backoff_seconds=0.01, **options)
    return [row for batch in read_records(source, cursor_column="counted_at",
                                          key_column="counted_at", after=after)
            for row in batch.rows]


# ---------- REST


@pytest.mark.parametrize("path, pagination", [
    ("/resource/x.json", Pagination("offset", 5000, "$limit", "$offset")),
    ("/page/x.json", Pagination("page", 5000)),
    ("/cursor/x.json", Pagination("cursor", 5000, next_cursor_path="next_cursor")),
    ("/link/x.json", Pagination("link", 5000)),
])
def test_every_pagination_style_reads_every_record_once(path, pagination):
    _, base = _api()
    records_path = "data" if pagination.type == "cursor" else ""
    params = {"limit": 5000} if pagination.type == "link" else {}
    rows = _read(base + path, pagination=pagination, records_path=records_path, params=params)
    assert len(rows) == 38688  # the real file, DST repeats included
    assert rows[1] == ("2014-01-01T01:00:00.000", "0", "3", "3")  # strings, as served


def test_incremental_read_starts_after_the_cursor():
    _, base = _api()
    after = Cursor("2018-05-31T20:00:00.000", "2018-05-31T20:00:00.000")
    rows = _read(base + "/resource/x.json", after, params={"$order": "date"},
                 pagination=Pagination("offset", 5000, "$limit", "$offset"),
                 since_param="$where", since_format="date > '{value}'")
    assert [r[0] for r in rows] == ["2018-05-31T21:00:00.000", "2018-05-31T22:00:00.000",
                                    "2018-05-31T23:00:00.000"]


def test_api_key_is_sent_and_a_wrong_one_is_a_clear_error():
    _, base = _api(api_key="k-123")
    url = base + "/resource/x.json"
    assert len(_read(url, headers={"X-Api-Key": "k-123"},
                     pagination=Pagination("offset", 20000, "$limit", "$offset"))) == 38688
    with pytest.raises(SourceError, match="answered 401"):
        _read(url, headers={"X-Api-Key": "wrong"})


def test_oauth2_client_credentials_get_a_token_first():
    _, base = _api(client=("transport-hub", "s3cret"))
    token = client_credentials(base + "/token", "transport-hub", "s3cret", LOOPBACK)
    assert len(_read(base + "/resource/x.json", token=token,
                     pagination=Pagination("offset", 20000, "$limit", "$offset"))) == 38688
    bad = client_credentials(base + "/token", "transport-hub", "guess", LOOPBACK)
    with pytest.raises(SourceError, match="refused the client credentials"):
        _read(base + "/resource/x.json", token=bad)


def test_429_and_503_are_retried_honouring_retry_after():
    api, base = _api(fail_next=[429, 503])
    rows = _read(base + "/resource/x.json",
                 pagination=Pagination("offset", 20000, "$limit", "$offset"))
    assert len(rows) == 38688 and api.requests == 4  # two refusals, then two pages


def test_a_source_that_keeps_failing_gives_up_with_the_reason():
    api, base = _api(fail_next=[503] * 10)
    with pytest.raises(SourceError, match="answered 503 after 3 attempt"):
        _read(base + "/resource/x.json", retries=2)
    assert api.requests == 3


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("west", None), "column 'west' was removed from the source"),
    (lambda r: r.update(west_bound=r.pop("west", None)),
     "column 'west' is missing and 'west_bound' is new: renamed?"),
    (lambda r: r.update(temperature="12"), "column 'temperature' appeared in the source"),
])
def test_drift_in_the_records_stops_before_loading(change, message):
    api, base = _api()
    for record in api.records:
        change(record)
    with pytest.raises(SchemaDrift, match=message):
        _read(base + "/resource/x.json")


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:9/x", "loopback, link-local or reserved"),
    ("http://localhost:9/x", "loopback, link-local or reserved"),
    ("http://169.254.169.254/latest/meta-data/", "loopback, link-local or reserved"),
    ("http://[::1]:9/x", "loopback, link-local or reserved"),
    ("http://metadata.google.internal/", "cloud metadata endpoints"),
    ("http://0.0.0.0:9/", "loopback, link-local or reserved"),
])
def test_guard_refuses_internal_addresses(url, message):
    with pytest.raises(UnsafeSource, match=message):
        check_url(url)


def test_guard_allows_a_host_the_hub_settings_allow():
    check_url("http://127.0.0.1:9/x", ("127.0.0.1",))


@pytest.fixture
def served():
    """Start stand-in APIs (on any loopback address) and stop them after the test."""
    servers = []

    def start(host: str = "127.0.0.1", **options) -> tuple[DemoApi, str]:
        api = DemoApi.from_file(BIKES, "date", **options)
        base, server = api.start(host)
        servers.append(server)
        return api, base

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


LINKED = Pagination("link", 5000)
ONE_PAGE = Pagination("none")  # followed, a redirect would not loop over pages


def test_redirects_are_not_followed(served):
    # A real 302 from an allowed host to another server that would answer: refused with
    # the place it points to, and that server never asked.
    target, target_base = served()
    _, base = served(redirect_to=f"{target_base}/resource/x.json")
    followed = httpx.get(base + "/resource/x.json", follow_redirects=True)
    assert followed.status_code == 200 and len(followed.json()) == 1000  # a live redirect
    target.requests = 0
    with pytest.raises(SourceError, match=r"redirects to 'http://127\.0\.0\.1:\d+/resource/"
                                          r"x\.json'; configure the final URL \(redirects are"
                                          r" not followed\)"):
        _read(base + "/resource/x.json", pagination=ONE_PAGE)
    assert target.requests == 0


def test_a_redirect_to_the_metadata_address_is_not_followed(served):
    _, base = served(redirect_to="http://169.254.169.254/latest/meta-data/")
    with pytest.raises(SourceError, match="redirects to 'http://169.254.169.254/latest/"):
        _read(base + "/resource/x.json", pagination=ONE_PAGE)


def test_a_link_to_another_loopback_address_is_refused_before_it_is_asked(served):
    internal, internal_base = served("127.0.0.2")  # answers, but no setting allows it
    first, base = served(link_base=internal_base)
    with pytest.raises(UnsafeSource, match="127.0.0.2 resolves to 127.0.0.2, a loopback, "
                                           "link-local or reserved address"):
        _read(base + "/link/x.json", pagination=LINKED, params={"limit": 5000})
    assert (first.requests, internal.requests) == (1, 0)
    # The same pages with that host allowed: the link was live, only the guard stopped it.
    source = RestSource(base + "/link/x.json", FIELDS, pagination=LINKED,
                        params={"limit": "5000"}, allowed_hosts=("127.0.0.1", "127.0.0.2"))
    rows = [r for b in read_records(source, cursor_column="counted_at",
                                    key_column="counted_at") for r in b.rows]
    assert len(rows) == 38688 and internal.requests == 7


def test_a_link_to_the_metadata_address_is_refused(served):
    _, base = served(link_base="http://169.254.169.254")
    with pytest.raises(UnsafeSource, match="169.254.169.254 resolves to 169.254.169.254"):
        _read(base + "/link/x.json", pagination=LINKED, params={"limit": 5000})


# ---------- file drops

SHELTER_FIELDS = load_all(REPO / "contracts")["social_services.shelter_census"].field_map


def _drop(folder, name: str) -> None:
    with SHELTER.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if name.endswith(".csv"):
        (folder / name).write_bytes(SHELTER.read_bytes())
    elif name.endswith(".jsonl"):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), folder / name)


def _files(folder, manifest=None, changed=None, size=1000) -> list:
    return list(read_files(folder.as_uri(), fields=SHELTER_FIELDS, manifest=manifest,
                           batch_size=size,
                           on_changed=changed.append if changed is not None else None))


@pytest.mark.parametrize("name", ["census.csv", "census.jsonl", "census.parquet"])
def test_each_file_format_is_read_with_its_manifest_entry(tmp_path, name):
    _drop(tmp_path, name)
    batches = _files(tmp_path)
    assert sum(len(b.rows) for b in batches) == 3728
    first = dict(zip(SHELTER_FIELDS, batches[0].rows[0], strict=True))
    assert (first["census_date"], first["total_adults"],
            first["individuals_in_families_with_children"]) == ("07/17/2023", "53732", "54148")
    last = batches[-1].file
    assert (last["rows_done"], last["complete"]) == (3728, True)


def test_a_loaded_file_is_never_read_again_and_a_changed_one_is_reported(tmp_path):
    _drop(tmp_path, "census.csv")
    entry = _files(tmp_path)[-1].file
    manifest = {entry["path"]: entry}
    assert _files(tmp_path, manifest) == []
    (tmp_path / "census.csv").write_text(SHELTER.read_text().replace("53732", "53733"))
    changed: list = []
    assert _files(tmp_path, manifest, changed) == []
    assert [c.path for c in changed] == [entry["path"]]


def test_a_file_cut_off_mid_way_resumes_after_its_last_commit(tmp_path):
    _drop(tmp_path, "census.csv")
    first = _files(tmp_path)[0].file  # only the first 1,000 rows were committed
    rest = _files(tmp_path, {first["path"]: first})
    assert sum(len(b.rows) for b in rest) == 3728 - 1000


def test_a_header_fixed_upstream_is_drift_naming_the_near_match(tmp_path):
    fixed = SHELTER.read_text().replace("in Shelter ,", "in Shelter,", 1)
    (tmp_path / "census.csv").write_text(fixed)
    with pytest.raises(SchemaDrift, match="spacing or case differs"):
        _files(tmp_path)


def test_a_file_of_unknown_format_is_refused_by_name(tmp_path):
    (tmp_path / "census.xlsx").write_bytes(b"PK")
    with pytest.raises(SchemaDrift, match="not .csv, .jsonl, .ndjson, .json or .parquet"):
        _files(tmp_path)


# ---------- MQTT


@pytest.fixture
def feed():
    source = MqttSource("mqtt://127.0.0.1:1883", f"hub-test/{uuid.uuid4().hex}",
                        {"reading": "id", "value": "value"}, f"hub-test-{uuid.uuid4().hex}",
                        batch_size=50, idle_seconds=1.0, allowed_hosts=LOOPBACK)
    subscribe_once(source)
    yield source
    forget_session(source)


def test_feed_is_read_in_micro_batches_and_bad_payloads_are_kept(feed):
    payloads = [json.dumps({"id": str(i), "value": i / 10}).encode() for i in range(120)]
    publish(feed.topic, payloads + [b"not json", b"[1, 2]"])
    batches = list(read_messages(feed))
    for batch in batches:
        batch.acknowledge()
    rows = [r for b in batches for r in b.rows]
    assert len(rows) == 120 and rows[0] == ("0", "0.0")
    assert max(len(b.rows) for b in batches) <= 50
    assert sorted(reason for b in batches for _, reason in b.rejects) == [
        "not JSON: Expecting value", "not a JSON object"]


def test_unacknowledged_messages_come_again(feed):
    publish(feed.topic, [json.dumps({"id": "1", "value": 1}).encode()])
    first = next(read_messages(feed))  # read, never acknowledged: as if the hub crashed
    assert first.rows == [("1", "1")]
    again = list(read_messages(feed))
    assert [r for b in again for r in b.rows] == [("1", "1")]


def test_feed_drift_is_named(feed):
    publish(feed.topic, [json.dumps({"id": "1", "val": 1}).encode()])
    with pytest.raises(SchemaDrift, match="column 'value' is missing and 'val' is new"):
        list(read_messages(feed))


# ---------- SQL: MariaDB as well as PostgreSQL

MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture
def mariadb_table():
    engine = sa.create_engine(MARIADB)
    name = f"hub_test_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"create table {name} (id int primary key, salary decimal(10,2),"
                                 " updated_at datetime not null)"))
            conn.execute(sa.text(f"insert into {name} values (1, 100.50, '2023-01-01 10:00'),"
                                 " (2, 200, '2023-01-02 10:00'), (3, null, '2023-01-02 10:00')"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"no MariaDB at {MARIADB}: {exc}")
    yield engine, name
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop table {name}"))
    engine.dispose()


def _sql(name: str, after: Cursor | None = None, size: int = 2) -> list:
    return list(read_batches(MARIADB, table=name, columns=["id", "salary", "updated_at"],
                             cursor_column="updated_at", key_column="id", after=after,
                             batch_size=size))


def test_mariadb_is_read_in_batches_and_incrementally(mariadb_table):
    engine, name = mariadb_table
    batches = _sql(name)
    assert [len(b.rows) for b in batches] == [2, 1]
    assert batches[-1].cursor == Cursor("2023-01-02T10:00:00", "3")
    with engine.begin() as conn:
        conn.execute(sa.text(f"insert into {name} values (4, 50, '2023-01-03 09:00')"))
    assert [b.rows for b in _sql(name, batches[-1].cursor)] == [[(4, 50, _dt("2023-01-03 09:00"))]]


def test_mariadb_column_retyped_is_drift(mariadb_table):
    engine, name = mariadb_table
    with engine.begin() as conn:
        conn.execute(sa.text(f"alter table {name} modify salary varchar(20)"))
    with pytest.raises(SchemaDrift, match="column 'salary' is text in the source; the "
                                          "contract expects number: retyped"):
        list(read_batches(MARIADB, table=name, columns=["id", "salary", "updated_at"],
                          cursor_column="updated_at", key_column="id",
                          types={"id": "integer", "salary": "number",
                                 "updated_at": "timestamp"}))


def test_mariadb_column_added_is_drift(mariadb_table):
    engine, name = mariadb_table
    with engine.begin() as conn:
        conn.execute(sa.text(f"alter table {name} add column bonus int"))
    with pytest.raises(SchemaDrift, match="column 'bonus' appeared in the source"):
        _sql(name)


def _dt(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


# ---------- PostgreSQL fast path: COPY text straight through


@pytest.fixture
def pg_table(server_url):
    from hub.warehouse import drop_database, ensure_database

    name = f"hub_test_copy_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    with psycopg.connect(url) as conn:
        conn.execute("create table readings (id bigint, at timestamp, note text)")
        conn.execute("insert into readings values (1, '2024-01-01 10:00', 'tab\there'),"
                     " (2, '2024-01-01 10:00', e'two\\nlines'), (3, null, 'no time'),"
                     " (null, '2024-01-02 00:00', 'no key'), (4, '2024-01-03 00:00', null)")
    yield url
    drop_database(server_url, name)


def _copied(url: str, after: Cursor | None = None, size: int = 2) -> list:
    batches = []
    for batch in copy_batches(url, table="readings", columns=["id", "at", "note"],
                              cursor_column="at", key_column="id", after=after,
                              batch_size=size):
        batch.copy_text = b"".join(batch.copy_text)  # read in order, as the loader does
        batches.append(batch)
    return batches


def test_copy_path_batches_rows_with_escapes_and_keeps_the_cursor(pg_table):
    batches = _copied(pg_table)
    text = b"".join(b.copy_text for b in batches)
    assert sum(b.copy_rows for b in batches) == 5 and text.count(b"\n") == 5
    assert b"tab\\there" in text and b"two\\nlines" in text  # escapes travel as is
    assert batches[0].copy_text.startswith(b"3\t\\N\t")  # the row without a time first
    assert _copied(pg_table, size=1)[0].cursor is None  # ...and leaves no position alone
    assert batches[-1].cursor == Cursor("2024-01-03 00:00:00", "4")
    assert _copied(pg_table, batches[-1].cursor) == []


def test_copy_path_resumes_after_a_cursor_with_a_null_key(pg_table):
    after = Cursor("2024-01-02 00:00:00", "")  # the key-less row was the last committed
    assert [b.copy_text for b in _copied(pg_table, after)] == [b"4\t2024-01-03 00:00:00\t\\N\n"]


def test_copy_path_reads_a_null_key_after_the_keyed_rows_of_its_time(pg_table):
    with psycopg.connect(pg_table) as conn:
        conn.execute("insert into readings values (5, '2024-01-02 00:00', 'keyed')")
    after = Cursor("2024-01-02 00:00:00", "5")  # the keyed row was the last committed
    assert [b.copy_text for b in _copied(pg_table, after, size=10)] == [
        b"\\N\t2024-01-02 00:00:00\tno key\n4\t2024-01-03 00:00:00\t\\N\n"]


def test_copy_path_raises_the_sources_refusal(pg_table):
    role = f"hub_test_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_table, autocommit=True) as conn:
        conn.execute(f"create role {role} login")  # may connect, may not read readings
    try:
        url = make_conninfo(pg_table, user=role)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="readings"):
            _copied(url)
    finally:
        with psycopg.connect(pg_table, autocommit=True) as conn:
            conn.execute(f"drop role {role}")


def test_copy_path_raises_a_copy_cancelled_mid_stream(pg_table):
    _many(pg_table)
    with pytest.raises(psycopg.errors.QueryCanceled):
        _copied(make_conninfo(pg_table, options="-c statement_timeout=100"), size=1000)


def test_copy_path_stopped_early_leaves_no_copy_running_at_the_source(pg_table, caplog):
    _many(pg_table)
    batches = copy_batches(pg_table, table="readings", columns=["id", "at", "note"],
                           cursor_column="at", key_column="id", batch_size=10)
    for rows in (1, 10):  # the row without a time, read on its own; then ten timed rows
        batch = next(batches)
        assert b"".join(batch.copy_text).count(b"\n") == batch.copy_rows == rows
    with caplog.at_level(logging.WARNING, logger="psycopg"):
        batches.close()  # the loader stopped (a drift elsewhere, a failed batch)
    assert "rollback" not in caplog.text  # the connection was closed, not left in the COPY
    deadline = time.monotonic() + 10
    while _copies_running(pg_table) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _copies_running(pg_table)


def _many(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("insert into readings select i, timestamp '2024-02-01' + i * interval"
                     " '1 second', repeat('x', 200) from generate_series(10, 400000) i")


def _copies_running(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from pg_stat_activity where datname ="
                            " current_database() and query like 'copy (select%%'"
                            " and pid <> pg_backend_pid()").fetchone()[0] > 0


def test_copy_path_streams_a_batch_in_chunks_and_knows_its_cursor_at_the_end(pg_table):
    _many(pg_table)
    batches = copy_batches(pg_table, table="readings", columns=["id", "at", "note"],
                           cursor_column="at", key_column="id", batch_size=2500)
    b"".join(next(batches).copy_text)  # the row without a time
    batch = next(batches)
    assert batch.cursor is None and batch.copy_rows == 0  # nothing read yet
    chunks = list(batch.copy_text)
    full, rest = divmod(2500, CHUNK_ROWS)
    assert [c.count(b"\n") for c in chunks] == [CHUNK_ROWS] * full + ([rest] if rest else [])
    last = chunks[-1].splitlines()[-1].decode().split("\t")
    assert batch.copy_rows == 2500 and batch.cursor == Cursor(last[1], last[0])
    batches.close()


def test_copy_path_sends_utf8_from_a_latin1_source(server_url):
    from hub.warehouse import drop_database, with_database

    name = f"hub_test_latin1_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"create database {name} encoding 'LATIN1' lc_collate 'C' lc_ctype 'C'"
                     " template template0")
    url = with_database(server_url, name)
    try:
        with psycopg.connect(url) as conn:
            conn.execute("create table readings (id bigint, at timestamp, note text)")
            conn.execute("insert into readings values (1, '2024-01-01', %s)", ["Café Åland"])
        [batch] = _copied(url)
        assert batch.copy_text == "1\t2024-01-01 00:00:00\tCafé Åland\n".encode()
    finally:
        drop_database(server_url, name)


def test_copy_path_catches_a_column_retyped_at_the_source(pg_table):
    with psycopg.connect(pg_table) as conn:
        conn.execute("alter table readings alter column at type text")
    with pytest.raises(SchemaDrift, match="column 'at' is text in the source; the contract "
                                          "expects timestamp"):
        list(copy_batches(pg_table, table="readings", columns=["id", "at", "note"],
                          cursor_column="at", key_column="id",
                          types={"id": "integer", "at": "timestamp", "note": "string"}))


def test_copy_path_checks_drift_first(pg_table):
    with psycopg.connect(pg_table) as conn:
        conn.execute("alter table readings rename column note to remark")
    with pytest.raises(SchemaDrift, match="column 'note' is missing and 'remark' is new"):
        _copied(pg_table)


@pytest.mark.parametrize("pg_type, family", [
    ("bigint", "integer"), ("smallint", "integer"), ("integer", "integer"),
    ("numeric(10,2)", "number"), ("double precision", "number"), ("boolean", "boolean"),
    ("character varying(20)", "text"), ("timestamp without time zone", "timestamp"),
    ("date", "date"), ("time without time zone", "time"), ("uuid", "other"),
])
def test_postgres_types_map_to_the_families_retyping_is_judged_by(pg_type, family):
    from flows.sources.base import pg_family

    assert pg_family(pg_type) == family
