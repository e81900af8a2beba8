"""Ingestion through the hub: interrupted loads end with exactly the source's rows, failing
sources fail clearly, file drops are exactly-once, and untrusted locations are refused."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter

import psycopg
import pytest
from pydantic import SecretStr

from contracts import load_all
from demo.api import DemoApi
from flows.ingest import ingest
from flows.pipeline import run_all
from flows.sources.guard import UnsafeSource
from flows.sources.mqtt import forget_session, subscribe_once
from flows.sources.rest import SourceError
from hub.bootstrap import bootstrap
from tests.conftest import count, own_warehouse
from tests.stand_ins import BROKER, DATA, beach_rows, feed_source, publish, shelter_drop

CONTRACTS = load_all(DATA.parent / "contracts")
BIKES = CONTRACTS["transport.bike_counts"]
REQUESTS = CONTRACTS["public_works.service_requests"]
SHELTER = CONTRACTS["social_services.shelter_census"]


@pytest.fixture
def scratch(server_url):
    """A warehouse of its own, so counts start from zero."""
    with own_warehouse(server_url, "hub_test_ingest") as url:
        yield url


def _bike_api(**options) -> str:
    base, _ = DemoApi.from_file(DATA / "seattle_bike_counter" / "spokane-st.json", "date",
                                **options).start()
    return base + "/resource/v6y4-2gyc.json"


def test_api_failing_mid_load_then_rerun_gives_exactly_the_source_rows(scratch, settings):
    with pytest.raises(SourceError, match="answered 500"):
        ingest(scratch, BIKES, _bike_api(fail_after=3), settings)  # 3 pages, then down
    raw = "select count(*) from raw_transport.bike_counts"
    assert count(scratch, raw) == 15000  # three committed pages of 5,000
    again = ingest(scratch, BIKES, _bike_api(), settings)
    assert again.rows == 38688 - 15000
    # None lost, none twice: the same multiset of records as the source (DST repeats too).
    records = json.loads((DATA / "seattle_bike_counter" / "spokane-st.json").read_text())
    expected = Counter((r["date"], r.get("east"), r.get("west"), r.get("spokane_st_bridge_total"))
                       for r in records)
    with psycopg.connect(scratch) as conn:
        loaded = Counter(conn.execute("select counted_at, east, west, total"
                                      " from raw_transport.bike_counts").fetchall())
    assert loaded == expected


def test_warehouse_connection_killed_mid_load_then_rerun_is_exact(scratch, settings,
                                                                  source_url):
    seen = []

    def kill_after_the_first_batch(rows: int) -> None:
        seen.append(rows)
        if len(seen) == 1:
            with psycopg.connect(scratch, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                              " where datname = current_database() and pid <> pg_backend_pid()")

    with pytest.raises(psycopg.OperationalError):
        ingest(scratch, REQUESTS, source_url, settings, progress=kill_after_the_first_batch)
    assert count(scratch, "select count(*) from raw_public_works.service_requests") == 5000
    ingest(scratch, REQUESTS, source_url, settings)
    assert count(scratch, "select count(*) from raw_public_works.service_requests") == \
        count(source_url, "select count(*) from service_requests")


@pytest.fixture
def own_settings(scratch, settings, tmp_path, prefect_harness, department_sources):
    """The hub's settings over the scratch warehouse: the runs, versions and notifications
    a test makes land where no other test counts them."""
    return settings.model_copy(update={"database_url": SecretStr(scratch),
                                       "home": tmp_path / "home"})


def test_a_source_that_keeps_failing_fails_the_dataset_and_keeps_the_served_version(
        own_settings, scratch, monkeypatch):
    [first] = run_all("transport.bike_counts", own_settings)
    assert first.status == "published"
    served = count(scratch, "select max(version) from hub.dataset_versions where dataset = %s",
                   ["transport.bike_counts"])
    monkeypatch.setenv("HUB_SOURCE_TRANSPORT_URL", _bike_api(fail_next=[503] * 100))
    [report] = run_all("transport.bike_counts", own_settings)
    assert report.status == "failed"
    assert report.failures[0].rule == "ingest"
    assert "answered 503 after 5 attempt(s)" in report.failures[0].message
    assert count(scratch, "select max(version) from hub.dataset_versions where dataset = %s",
                 ["transport.bike_counts"]) == served == 1


def test_file_drop_changed_in_place_is_reported_and_a_new_file_loads_alone(
        own_settings, scratch, tmp_path, monkeypatch):
    folder = tmp_path / "drop"  # a copy of the department's folder: the shared one stays
    folder.mkdir()
    monkeypatch.setenv("HUB_SOURCE_SOCIAL_SERVICES_DROP", shelter_drop(folder))
    [first] = run_all("social_services.shelter_census", own_settings)
    assert (first.status, first.rows_loaded) == ("published", 3728)
    census = folder / "DHS_Daily_Report.csv"
    text = census.read_text(encoding="utf-8")
    census.write_text(text.replace("53732", "53733"))  # the department edits a loaded file
    header = text.splitlines()[0]
    (folder / "2024-01-03.csv").write_text(header + "\n01/03/2024,1,1,2,1,0,1,0,0,1,1,0,0\n")
    [report] = run_all("social_services.shelter_census", own_settings)
    assert (report.status, report.rows_loaded) == ("published", 1)
    assert len(report.warnings) == 1 and "changed in place" in report.warnings[0]
    assert count(scratch, "select count(*) from hub.notifications where kind = "
                 "'ingest.warning' and department = 'social_services'") == 1


@pytest.mark.parametrize("kind, location, message", [
    ("rest", "http://169.254.169.254/latest/meta-data/", "loopback, link-local or reserved"),
    ("rest", "http://localhost:8000/datasets", "loopback, link-local or reserved"),
    ("files", "file:///etc", "local drops must be under the hub's drop folder"),
])
def test_untrusted_locations_in_a_contract_are_refused(scratch, settings, kind, location,
                                                       message):
    contract = BIKES if kind == "rest" else SHELTER
    strict = settings.model_copy(update={"source_allowed_hosts": ""})
    hostile = dataclasses.replace(contract, source=contract.source.model_copy(
        update={"url": location, "connection_env": ""}))
    with pytest.raises(UnsafeSource, match=message):
        ingest(scratch, hostile, location, strict)


def test_a_raw_table_from_before_load_ids_keeps_its_rows_batches_and_deliveries(
        scratch, settings, source_url):
    """Raw tables used to carry `_batch_id`, `_source` and `_delivery_id` on every row, and
    hub.load_batches had no load id (nor were migrations recorded: schema.sql made the
    warehouse). Upgrading keeps every row, tied to its batch."""
    batch, orphan, delivery = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    columns = ", ".join(f'"{c.name}" text' for c in REQUESTS.columns)
    with psycopg.connect(scratch) as conn:
        conn.execute("alter table hub.load_batches drop column load_id, drop column delivery_id")
        conn.execute("drop table hub.schema_migrations")
        conn.execute("create schema raw_public_works")
        conn.execute(f"create table raw_public_works.service_requests ({columns},"
                     " _batch_id uuid not null, _loaded_at timestamptz not null default now(),"
                     " _source text not null, _delivery_id uuid)")
        conn.execute("insert into raw_public_works.service_requests (sr_number, _batch_id,"
                     " _source, _delivery_id) values ('old-1', %(b)s, 'sql:old', %(d)s),"
                     " ('old-2', %(b)s, 'sql:old', %(d)s), ('lost', %(o)s, 'sql:lost', null)",
                     {"b": batch, "d": delivery, "o": orphan})
        conn.execute("insert into hub.load_batches (batch_id, dataset, source, rows)"
                     " values (%s, 'public_works.service_requests', 'sql:old', 2)", [batch])
    bootstrap(scratch)  # adopts the warehouse: 0002 numbers the batches already recorded
    ingest(scratch, REQUESTS, source_url, settings)  # moves the rows' metadata, then loads
    with psycopg.connect(scratch) as conn:
        landed = conn.execute(
            "select r.sr_number, b.batch_id, b.source, b.delivery_id, b.rows"
            " from raw_public_works.service_requests r join hub.load_batches b"
            " on b.load_id = r._load_id where r.sr_number in ('old-1', 'old-2', 'lost')"
            " order by 1").fetchall()
        left = {name for [name] in conn.execute(
            "select column_name from information_schema.columns where table_schema ="
            " 'raw_public_works' and table_name = 'service_requests'")}
    assert landed == [("lost", orphan, "sql:lost", None, 1),  # a batch with no record gets one
                      ("old-1", batch, "sql:old", delivery, 2),
                      ("old-2", batch, "sql:old", delivery, 2)]
    assert {"_load_id", "_loaded_at"} <= left and not {"_batch_id", "_source"} & left
    assert count(scratch, "select count(*) from raw_public_works.service_requests") == \
        count(source_url, "select count(*) from service_requests") + 3


# ---------- a sensor feed's bad payloads are kept, not dropped and not fatal

BEACH = CONTRACTS["environment.beach_sensor_readings"]


def _with_nul(record: dict[str, str]) -> bytes:
    # Valid JSON whose value holds \u0000: PostgreSQL text cannot store that character.
    return json.dumps({**record, "Measurement ID": "Montrose\u0000Beach"}).encode()


def test_bad_feed_payloads_land_in_rejected_records_and_are_not_read_again(scratch, settings):
    url = f"{BROKER}/hub-test-rejects-{uuid.uuid4().hex[:8]}"  # this test's own topic
    source = feed_source(url)
    subscribe_once(source)
    good = beach_rows()[:3]
    bad = [(b"not json", "not JSON: Expecting value"),
           (b"[1, 2]", "not a JSON object"),
           (b'"a string"', "not a JSON object"),
           (b'{"Measurement ID": ', "not JSON: Expecting value"),
           (b"\xff\xfe{}", "not UTF-8 text"),
           (b"\x00\x01 binary", "not JSON: Expecting value"),
           (_with_nul(good[0]), "a value holds a NUL character (\\u0000), which the warehouse"
                                " cannot store")]
    try:
        publish(source.topic, [json.dumps(r).encode() for r in good] + [p for p, _ in bad])
        first = ingest(scratch, BEACH, url, settings)
        second = ingest(scratch, BEACH, url, settings)  # acknowledged: nothing comes again
    finally:
        forget_session(source)
    assert (first.rows, second.rows) == (3, 0)
    with psycopg.connect(scratch) as conn:
        kept = conn.execute("select dataset, payload, reason from hub.rejected_records"
                            " order by reject_id").fetchall()
        ids = {i for (i,) in conn.execute("select measurement_id from"
                                          " raw_environment.beach_sensor_readings")}
    # Kept as received; bytes that are not UTF-8 text, and NUL, written as \xNN escapes.
    shown = [p.decode("utf-8", "backslashreplace").replace("\x00", "\\x00") for p, _ in bad]
    assert kept == [(BEACH.dataset_id, payload, reason)
                    for payload, (_, reason) in zip(shown, bad, strict=True)]
    assert ids == {r["Measurement ID"] for r in good}
