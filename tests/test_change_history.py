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
from hub import changes
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
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [contract.dataset_id]).fetchall())
        snapshot = window.kept[since]
        kept = [r[0] for r in conn.execute(changes.COLUMNS, [changes.HISTORY, snapshot])]
        diff = changes.diff_sql(contract.relation_name, snapshot,
                                [c.name for c in contract.columns], kept, contract.primary_key)
        return {(s, d): (change, r) for change, s, d, r in conn.execute(diff)}


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
    assert tables == ["environment__station_days__v2", "environment__station_days__v3"]
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
        snapshot = changes.window(conn.execute(
            changes.VERSIONS, [wider.dataset_id]).fetchall()).kept[1]
        kept = [r[0] for r in conn.execute(changes.COLUMNS, [changes.HISTORY, snapshot])]
        diff = changes.diff_sql(wider.relation_name, snapshot,
                                [c.name for c in wider.columns], kept, wider.primary_key)
        found = sorted(conn.execute(diff).fetchall())
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
