"""What an entry's hash covers, pinned: the formula itself, every column of `audit.events`
(read from the database's own catalogue, so a column added later without being hashed
fails here), and, property-based, that changing any column of any sealed event to any
other value of its type is caught by verification.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from hub import ledger
from hub.audit import AuditEvent, record
from hub.bootstrap import bootstrap
from hub.retention import verify_database
from hub.warehouse import drop_database, ensure_database

EVENTS = 12

COLUMNS_OF_EVENTS = """
select column_name, udt_name, is_nullable = 'YES' from information_schema.columns
where table_schema = 'audit' and table_name = 'events' order by ordinal_position
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return tmp_path_factory.mktemp("hub-home") / "keys"


@pytest.fixture(scope="module")
def conn(server_url, keys):
    """A sealed ledger whose events fill every column; each example changes it inside a
    transaction that is rolled back."""
    name = f"hub_hash_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    bootstrap(url)
    with psycopg.connect(url) as connection:
        for i in range(1, EVENTS + 1):
            record(connection, AuditEvent(
                kind="data.read", request_id=f"r{i}", decision="allow", reason=f"why {i}",
                status_code=200, client_id=f"c{i}", role="analyst", department="transport",
                purpose="planning", dataset="public_works.x", dataset_version=i,
                columns=["a", f"b{i}"], unmasked_personal=["a"], filters={"limit": i},
                rows_returned=i, grant_id=f"g{i}", source_address="10.0.0.1",
                detail={"n": i}))
        connection.commit()
        ledger.seal(connection, ledger.load_signing_key(keys))
        yield connection
    drop_database(server_url, name)


def test_the_hash_formula_is_pinned():
    # sha256 over the previous hash, then the event's JSON: keys sorted, no spaces,
    # timestamps in UTC ISO form, non-ASCII escaped. Ledgers already written verify only
    # while this stays exactly so.
    event = {c: None for c in ledger.EVENT_COLUMNS} | {
        "event_id": 7, "occurred_at": datetime(2026, 3, 1, 14, 30, 5, 120, timezone(
            timedelta(hours=2))), "kind": "data.read", "columns": ["b", "a"],
        "unmasked_personal": [], "filters": {"z": 1, "a": [True, None]}, "rows_returned": 3,
        "reason": "Straße", "detail": {}, "status_code": 200}
    content = (
        '{"client_id":null,"columns":["b","a"],"dataset":null,"dataset_version":null,'
        '"decision":null,"department":null,"detail":{},"event_id":7,'
        '"filters":{"a":[true,null],"z":1},"grant_id":null,"kind":"data.read",'
        '"occurred_at":"2026-03-01T12:30:05.000120+00:00","purpose":null,'
        '"reason":"Stra\\u00dfe","request_id":null,"role":null,"rows_returned":3,'
        '"source_address":null,"status_code":200,"unmasked_personal":[]}')
    prev = "ab" * 32
    assert ledger.entry_hash(prev, event) == hashlib.sha256(
        (prev + content).encode()).hexdigest()


def test_every_column_of_the_events_table_is_hashed(conn):
    columns = [name for name, _, _ in conn.execute(COLUMNS_OF_EVENTS).fetchall()]
    assert set(ledger.EVENT_COLUMNS) == set(columns)
    assert len(ledger.EVENT_COLUMNS) == len(columns)  # and none twice


# ---------- any change to any column of any event is caught


TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
               max_size=20)  # PostgreSQL text holds any character but NUL
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8)
BY_TYPE = {  # values of each column type, as information_schema names it
    "text": TEXT,
    "int4": st.integers(-(2**31), 2**31 - 1),
    "_text": st.lists(TEXT, max_size=4),
    "jsonb": JSON.map(Jsonb),
    "timestamptz": st.datetimes(datetime(1970, 1, 1), datetime(2200, 1, 1),
                                timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])),
    # Only the event id is a bigint: new values above the existing ones (it is unique).
    "int8": st.integers(EVENTS + 1, 2**63 - 1),
}
BY_COLUMN = {"decision": st.sampled_from(["allow", "deny"])}  # the table's check constraint


def values_for(column: str, udt: str, nullable: bool) -> st.SearchStrategy:
    assert column in BY_COLUMN or udt in BY_TYPE, (
        f"audit.events.{column} is of type {udt}, which this test has no values for: add them")
    values = BY_COLUMN.get(column, BY_TYPE.get(udt))
    return values | st.none() if nullable else values


def change(conn: psycopg.Connection, seq: int, column: str, udt: str, value) -> bool:
    """Set one column of the event at `seq`, as a superuser with triggers off; False if the
    value was what it already held."""
    conn.execute("set local session_replication_role = replica")
    event_id = conn.execute("select event_id from audit.chain where seq = %s", [seq]).fetchone()[0]
    changed = conn.execute(sql.SQL(
        "update audit.events set {col} = %(v)s::{t} where event_id = %(id)s"
        " and {col} is distinct from %(v)s::{t}").format(
            col=sql.Identifier(column), t=sql.SQL(udt)), {"v": value, "id": event_id}).rowcount
    if column == "event_id" and changed:  # the chain follows: only the hash can tell
        conn.execute("update audit.chain set event_id = %s where seq = %s", [value, seq])
    return changed == 1


def test_changing_any_column_of_any_event_fails_verification(conn, keys):
    public = ledger.load_signing_key(keys).public_key()
    with conn.transaction(force_rollback=True):
        assert verify_database(conn, public).ok
    for column, udt, nullable in conn.execute(COLUMNS_OF_EVENTS).fetchall():
        change_is_caught(conn, public, column, udt, nullable)()  # examples of each column


def change_is_caught(conn, public, column: str, udt: str, nullable: bool):
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much])
    @given(seq=st.integers(1, EVENTS), value=values_for(column, udt, nullable))
    def caught(seq, value):
        with conn.transaction(force_rollback=True):
            if not change(conn, seq, column, udt, value):
                return  # the same value: nothing to catch
            problems = verify_database(conn, public).problems
        assert [(p.kind, p.seq) for p in problems] == [("edited", seq)], (column, value)

    return caught
