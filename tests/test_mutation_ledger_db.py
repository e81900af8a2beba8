"""Reading the ledger out of PostgreSQL: the chain walk, the checkpoints and exports.

A small ledger of its own (nine events sealed in three batches: checkpoints at seq 3, 6
and 9; events 4, 5 and 6 each committed alone, so each has its own time), built once per
run in about a second. The mutation check (docs/mutation.md) runs these for the
database half of hub/ledger_verify.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub import ledger
from hub.audit import AuditEvent, record
from hub.bootstrap import bootstrap
from hub.ledger_verify import db_checkpoints, db_entries, export, verify_entries, verify_export
from hub.warehouse import drop_database, ensure_database

KEY = Ed25519PrivateKey.generate()
TICK = timedelta(microseconds=1)


def build(server_url: str, batches: list[list[int]]) -> str:
    """A bootstrapped database; each batch's events (rows_returned = n) sealed together,
    each event committed alone so that each has its own occurred_at."""
    url = ensure_database(server_url, f"hub_mut_{uuid.uuid4().hex[:8]}")
    bootstrap(url)
    with psycopg.connect(url) as conn:
        for batch in batches:
            for n in batch:
                record(conn, AuditEvent(kind="data.read", request_id=f"r{n}", rows_returned=n))
                conn.commit()
            ledger.seal(conn, KEY)
    return url


@pytest.fixture(scope="module")
def url(server_url):
    url = build(server_url, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    yield url
    drop_database(server_url, url.rsplit("/", 1)[1])


def times(url: str) -> dict[int, datetime]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("select c.seq, e.occurred_at from audit.chain c"
                                 " join audit.events e using (event_id)").fetchall())


def export_of(url: str, path, since, until, fmt=None) -> int:
    with psycopg.connect(url) as conn:  # no fmt: the default, JSON lines
        return export(conn, path, since, until, *([fmt] if fmt else []))


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_chain_is_walked_in_seq_order_with_its_events(url):
    with psycopg.connect(url) as conn:
        entries = list(db_entries(conn))
        cps = db_checkpoints(conn)
        assert [e.seq for e in db_entries(conn, 4, 6)] == [4, 5, 6]
        assert [e.seq for e in db_entries(conn, 8)] == [8, 9]
    assert [e.seq for e in entries] == list(range(1, 10))
    assert [e.event["rows_returned"] for e in entries] == list(range(1, 10))
    assert all(set(e.event) == set(ledger.EVENT_COLUMNS) for e in entries)
    assert all(e.event_id == e.event["event_id"] for e in entries)
    assert entries[0].prev_hash == ledger.GENESIS and entries[1].prev_hash == entries[0].hash
    assert verify_entries(entries, cps, KEY.public_key()).ok


def test_the_walk_reads_through_a_server_side_cursor(url):
    # Verification walks millions of entries: they must not all be pulled in at once.
    with psycopg.connect(url) as conn:
        walk = db_entries(conn)
        next(walk)
        assert conn.execute("select count(*) from pg_cursors").fetchone()[0] == 1
        assert len(list(walk)) == 8


def test_a_ledger_longer_than_a_page_is_walked_to_its_end(server_url):
    url = build(server_url, [list(range(1, 131))])
    with psycopg.connect(url) as conn:
        seqs = [e.seq for e in db_entries(conn)]
    drop_database(server_url, url.rsplit("/", 1)[1])
    assert seqs == list(range(1, 131))


def test_an_export_ending_on_a_checkpoint_stops_there(url, tmp_path):
    at = times(url)
    path = tmp_path / "three.jsonl"
    assert export_of(url, path, at[3], at[3] + TICK) == 1
    written = records(path)
    assert [r["last_seq"] for r in written if r["type"] == "checkpoint"] == [3, 9]
    assert verify_export(path, ledger.public_pem(KEY)).ok


def test_checkpoints_are_read_in_the_order_they_were_signed(url):
    with psycopg.connect(url) as conn:
        cps = db_checkpoints(conn)
        heads = dict(conn.execute("select seq, hash from audit.chain").fetchall())
    assert [cp.last_seq for cp in cps] == [3, 6, 9]
    assert [cp.checkpoint_id for cp in cps] == sorted(cp.checkpoint_id for cp in cps)
    assert all(cp.head_hash == heads[cp.last_seq] for cp in cps)
    assert all(cp.key_id == ledger.key_id(KEY.public_key()) for cp in cps)


def test_an_entry_whose_event_row_is_gone_keeps_its_event_id(server_url):
    url = build(server_url, [[1, 2, 3]])
    with psycopg.connect(url) as conn:
        conn.execute("set session_replication_role = replica")  # as a superuser could
        conn.execute("delete from audit.events where event_id = 2")
        entries = list(db_entries(conn))
    drop_database(server_url, url.rsplit("/", 1)[1])
    assert [(e.seq, e.event is None) for e in entries] == [(1, False), (2, True), (3, False)]
    assert entries[1].event_id == 2


def test_an_export_reaches_the_next_checkpoint_and_carries_the_latest(url, tmp_path):
    at = times(url)
    before = datetime.now(UTC)
    path = tmp_path / "five.jsonl"
    assert export_of(url, path, at[5], at[5] + TICK) == 2  # entry 5, extended to seq 6
    written = records(path)
    assert [r["seq"] for r in written if r["type"] == "entry"] == [5, 6]
    assert [r["last_seq"] for r in written if r["type"] == "checkpoint"] == [6, 9]
    exported = datetime.fromisoformat(written[-1]["at"])
    assert written[-1]["type"] == "exported" and before <= exported <= datetime.now(UTC)
    assert verify_export(path, ledger.public_pem(KEY)).ok


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_of_everything_carries_each_checkpoint_once(url, tmp_path, fmt):
    at = times(url)
    path = tmp_path / f"all.{fmt}"
    assert export_of(url, path, at[1], at[9] + TICK, fmt) == 9
    trailer = path if fmt == "jsonl" else tmp_path / "all.csv.checkpoints.jsonl"
    assert [r["last_seq"] for r in records(trailer) if r["type"] == "checkpoint"] == [3, 6, 9]
    result = verify_export(path, ledger.public_pem(KEY))
    assert result.ok and result.entries == 9


def test_an_export_window_includes_its_start_and_excludes_its_end(url, tmp_path):
    at = times(url)
    assert export_of(url, tmp_path / "a.jsonl", at[4], at[5]) == 3  # entry 4, to seq 6
    assert [r["seq"] for r in records(tmp_path / "a.jsonl") if r["type"] == "entry"][0] == 4
    with pytest.raises(ValueError) as caught:
        export_of(url, tmp_path / "b.jsonl", at[5], at[5])
    assert str(caught.value) == f"no sealed audit entries between {at[5]} and {at[5]}"


def test_an_export_of_entries_no_checkpoint_covers_ends_at_its_last_entry(server_url, tmp_path):
    url = build(server_url, [[1, 2, 3]])
    with psycopg.connect(url) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute("delete from audit.checkpoints")
    at = times(url)
    path = tmp_path / "bare.jsonl"
    count = export_of(url, path, at[1], at[2] + TICK)
    drop_database(server_url, url.rsplit("/", 1)[1])
    assert count == 2
    assert [r["type"] for r in records(path)] == ["entry", "entry", "exported"]
    assert [p.kind for p in verify_export(path, ledger.public_pem(KEY)).problems] == [
        "uncovered"]
