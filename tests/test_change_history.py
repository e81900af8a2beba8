"""What publishing keeps for change feeds (hub/changes.py), on a composite key: each
replaced version moves to `history`, retention drops the oldest, and the diff matches
every column of the key, whatever the parts share."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from contracts import Contract, load_contract_text
from flows.publish import publish
from hub import change_keys, changes
from tests.conftest import own_warehouse

CONTRACT = (Path(__file__).parent / "data" / "station_days.odcs.yaml").read_text()


def _publish(url: str, contract: Contract, rows: list[tuple], kept: int) -> int:
    """Publish `rows` as the next version of `contract`; its version number."""
    with psycopg.connect(url) as conn:
        conn.execute("drop table if exists candidate.environment__station_days;"
                     " drop table if exists candidate.environment__station_days__quarantine;"
                     " create table candidate.environment__station_days (station text,"
                     " day integer, reading double precision);"
                     " create table candidate.environment__station_days__quarantine"
                     " (station text, day integer, reading double precision)")
        conn.cursor().executemany(
            "insert into candidate.environment__station_days values (%s, %s, %s)", rows)
    return publish(url, contract, uuid.uuid4(), kept).version


def _feed(url: str, contract: Contract, since: int) -> dict[tuple, tuple]:
    """The feed from `since` as read through the change-key tables; it must be the diff of
    the whole versions (the fallback for versions from before change keys)."""
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [contract.dataset_id]).fetchall())
        whole, keyed = _both(conn, contract, window, since)
        found = {(s, d): (change, r) for change, s, d, r in conn.execute(keyed)}
        assert found == {(s, d): (change, r) for change, s, d, r in conn.execute(whole)}
        return found


def _both(conn: psycopg.Connection, contract: Contract, window: changes.Window,
          since: int) -> tuple[bytes, bytes]:
    """The full diff's SELECT and the keyed one's, from `since` to the newest."""
    snapshot = window.kept[since]
    kept = [r[0] for r in conn.execute(changes.COLUMNS, [changes.HISTORY, snapshot])]
    columns = [c.name for c in contract.columns]
    tables = window.keys_since(since)
    assert tables is not None, "a version published now has its change-key table"
    return (changes.diff_sql(contract.relation_name, snapshot, columns, kept,
                             contract.primary_key),
            change_keys.feed_sql(contract.relation_name, snapshot, tables, columns, kept,
                                 contract.primary_key))


@pytest.fixture
def warehouse(server_url: str):
    with own_warehouse(server_url, "hub_test_history") as url:
        yield url, load_contract_text(CONTRACT, "station_days")


def test_composite_key_diff_has_every_kind_of_change(warehouse):
    url, contract = warehouse
    _publish(url, contract, [("A", 1, 1.0), ("A", 2, 2.0), ("B", 1, 3.0)], kept=5)
    _publish(url, contract, [("A", 1, 1.0), ("A", 2, 2.5), ("B", 2, 4.0)], kept=5)
    # (B, 2) shares a part with (A, 2) and with (B, 1): only the whole key tells them apart.
    assert _feed(url, contract, 1) == {("A", 2): ("update", 2.5), ("B", 2): ("insert", 4.0),
                                       ("B", 1): ("delete", 3.0)}


def test_retention_keeps_the_configured_versions_and_the_newest(warehouse):
    url, contract = warehouse
    for reading in (1.0, 2.0, 3.0, 4.0):
        _publish(url, contract, [("A", 1, reading)], kept=2)
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [contract.dataset_id]).fetchall())
        tables = sorted(r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'history'"))
    assert (window.newest, window.oldest, sorted(window.kept)) == (4, 2, [2, 3])
    # The key tables a feed from version 2 or 3 reads; that of version 2 went with version 1.
    assert tables == ["environment__station_days__keys_v3", "environment__station_days__keys_v4",
                      "environment__station_days__v2", "environment__station_days__v3"]
    assert sorted(window.keys.items()) == [(3, "environment__station_days__keys_v3"),
                                           (4, "environment__station_days__keys_v4")]
    assert _feed(url, contract, 2) == {("A", 1): ("update", 4.0)}


def test_no_versions_kept_means_nothing_to_diff(warehouse):
    url, contract = warehouse
    _publish(url, contract, [("A", 1, 1.0)], kept=0)
    _publish(url, contract, [("A", 1, 2.0)], kept=0)
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [contract.dataset_id]).fetchall())
    assert (window.newest, window.oldest, window.kept) == (2, 2, {})


def _contract_with(version: str, extra: str = "") -> Contract:
    text = CONTRACT.replace("version: 1.0.0", f"version: {version}") + extra
    return load_contract_text(text, "station_days")


NOTE = ("      - {name: note, logicalType: string, physicalType: text}\n")


def test_a_column_added_in_place_is_not_compared_and_absent_from_deletes(warehouse):
    url, contract = warehouse
    _publish(url, contract, [("A", 1, 1.0), ("B", 1, 2.0)], kept=5)
    wider = _contract_with("1.1.0", NOTE)
    with psycopg.connect(url) as conn:
        conn.execute("drop table candidate.environment__station_days;"
                     " create table candidate.environment__station_days (station text,"
                     " day integer, reading double precision, note text);"
                     " insert into candidate.environment__station_days values"
                     " ('A', 1, 1.0, 'new column only'), ('C', 1, 3.0, 'added')")
    publish(url, wider, uuid.uuid4(), 5)
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [wider.dataset_id]).fetchall())
        whole, keyed = _both(conn, wider, window, 1)
        found = sorted(conn.execute(whole).fetchall())
        assert sorted(conn.execute(keyed).fetchall()) == found
    assert found == [("delete", "B", 1, 2.0, None), ("insert", "C", 1, 3.0, "added")]


def test_a_new_major_version_drops_the_older_majors_kept_versions(warehouse):
    url, contract = warehouse
    _publish(url, contract, [("A", 1, 1.0)], kept=5)
    _publish(url, contract, [("A", 1, 2.0)], kept=5)
    version = _publish(url, _contract_with("2.0.0"), [("A", 1, 3.0)], kept=5)
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [contract.dataset_id]).fetchall())
        history = conn.execute("select count(*) from pg_tables"
                               " where schemaname = 'history'").fetchone()[0]
        older = conn.execute("select count(*) from shared.environment__station_days__v1"
                             ).fetchone()[0]
    assert (version, window.oldest, window.kept, history, older) == (3, 3, {}, 0, 1)


def _keys(url: str, table: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"select * from history.{table} order by 1, 2").fetchall()


def test_each_publish_records_the_keys_it_changed_and_a_feed_spans_them(warehouse):
    url, contract = warehouse
    _publish(url, contract, [("A", 1, 1.0), ("A", 2, 2.0), ("B", 1, 3.0)], kept=5)
    _publish(url, contract, [("A", 1, 9.0), ("A", 2, 2.0), ("C", 1, 5.0)], kept=5)
    _publish(url, contract, [("A", 1, 1.0), ("A", 2, 2.0), ("D", 1, 7.0)], kept=5)
    assert _keys(url, "environment__station_days__keys_v2") == [("A", 1), ("B", 1), ("C", 1)]
    assert _keys(url, "environment__station_days__keys_v3") == [("A", 1), ("C", 1), ("D", 1)]
    # (A, 1) went back to its value of version 1, (C, 1) came and went: neither is a change.
    assert _feed(url, contract, 1) == {("B", 1): ("delete", 3.0), ("D", 1): ("insert", 7.0)}
    assert _feed(url, contract, 2) == {("A", 1): ("update", 1.0), ("C", 1): ("delete", 5.0),
                                       ("D", 1): ("insert", 7.0)}


def test_a_version_without_a_change_key_table_has_none_to_read(warehouse):
    url, contract = warehouse
    for reading in (1.0, 2.0, 3.0):
        _publish(url, contract, [("A", 1, reading)], kept=5)
    with psycopg.connect(url) as conn:  # as published before change keys existed
        conn.execute("drop table history.environment__station_days__keys_v3;"
                     " update hub.dataset_versions set changed_keys = null where version = 3")
        window = changes.window(conn.execute(changes.VERSIONS, [contract.dataset_id]).fetchall())
    assert (window.keys_since(1), window.keys_since(2)) == (None, None)
    assert window.keys_since(3) is None  # the newest: nothing to read at all
