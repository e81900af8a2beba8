"""Composite primary keys (ODCS primaryKeyPosition) as the incremental cursor's tie-break:
a load stopped after any batch and resumed from the committed cursor reads every row once,
on PostgreSQL (COPY path), MariaDB (SQLAlchemy path) and a REST API."""

from __future__ import annotations

import uuid
from collections import Counter

import psycopg
import pytest
import sqlalchemy as sa

from demo.api import DemoApi
from flows.sources.base import Cursor
from flows.sources.pg_copy import copy_batches
from flows.sources.rest import RestSource, read_records
from flows.sources.sql import read_batches
from hub.warehouse import drop_database, ensure_database

# Many rows share a cursor value, and the key parts repeat or are missing, so only the
# whole key, compared part by part, tells where a batch ended.
ROWS = [(station, day, "2024-01-01 00:00:00") for station in ("A", "B", None)
        for day in (1, 2, 10, None)] + [("A", 1, "2024-01-02 00:00:00"),
                                         ("C", 3, "2024-01-02 00:00:00")]
KEY = ["station", "day"]


def _resumed(read, size: int) -> list[tuple]:
    """Read one batch at a time, each from the cursor the one before committed (as after a
    crash following every batch); the rows in the order they came."""
    rows, after = [], Cursor("2023-12-31 00:00:00", "")  # a one-part cursor: any key shape
    for _ in range(len(ROWS) + 1):  # each pass reads at least one row, or it is the end
        batch = next(read(after, size), None)
        if batch is None:
            return rows
        rows += batch.rows
        assert batch.cursor is not None and batch.cursor != after
        after = batch.cursor
    raise AssertionError(f"the reads did not end: {rows}")


@pytest.fixture
def pg_source(server_url):
    name = f"hub_test_ckey_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    with psycopg.connect(url) as conn:
        conn.execute("create table readings (station text, day int, at timestamp)")
        with conn.cursor().copy("copy readings from stdin") as copy:
            for row in ROWS:
                copy.write_row(row)
    yield url
    drop_database(server_url, name)


def _copy_reader(url: str):
    def read(after: Cursor, size: int):
        for batch in copy_batches(url, table="readings", columns=["station", "day", "at"],
                                  cursor_column="at", key_column=KEY, after=after,
                                  batch_size=size):
            text = b"".join(batch.copy_text).decode()
            batch.rows = [tuple(None if v == "\\N" else v for v in line.split("\t"))
                          for line in text.splitlines()]
            yield batch
    return read


@pytest.mark.parametrize("size", [1, 2, 5])
def test_copy_path_resumes_on_the_whole_key(pg_source, size):
    found = _resumed(_copy_reader(pg_source), size)
    expected = [(s, None if d is None else str(d), at) for s, d, at in ROWS]
    assert Counter(found) == Counter(expected) and len(found) == len(ROWS)


def test_copy_path_cursor_carries_every_key_part(pg_source):
    batches = list(_copy_reader(pg_source)(Cursor("2023-12-31 00:00:00", ""), 100))
    assert batches[-1].cursor == Cursor("2024-01-02 00:00:00", "C", ("3",))
    assert Cursor.from_json(batches[-1].cursor.to_json()) == batches[-1].cursor


MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture
def mariadb_source():
    engine = sa.create_engine(MARIADB)
    name = f"hub_test_ckey_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"create table {name} (station varchar(5), day int,"
                             " at datetime not null)"))
        conn.execute(sa.text(f"insert into {name} values (:s, :d, :a)"),
                     [{"s": s, "d": d, "a": a} for s, d, a in ROWS])
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop table {name}"))
    engine.dispose()


@pytest.mark.parametrize("size", [1, 3])
def test_sqlalchemy_path_resumes_on_the_whole_key(mariadb_source, size):
    def read(after: Cursor, batch_size: int):
        return read_batches(MARIADB, table=mariadb_source, columns=["station", "day", "at"],
                            cursor_column="at", key_column=KEY,
                            after=Cursor(after.value.replace(" ", "T"), after.key,
                                         after.key_rest), batch_size=batch_size)

    found = _resumed(read, size)
    assert len(found) == len(ROWS)
    assert Counter((s, d) for s, d, _ in found) == Counter((s, d) for s, d, _ in ROWS)


@pytest.mark.parametrize("after, expected", [
    # Keys compare as text, a missing part as '': '10' sorts before '2', '' first.
    (Cursor("2024-01-01 00:00:00", "B", ("2",)), [("A", "1", "2024-01-02 00:00:00"),
                                                  ("C", "3", "2024-01-02 00:00:00")]),
    (Cursor("2024-01-01 00:00:00", "B", ("10",)), [("B", "2", "2024-01-01 00:00:00"),
                                                   ("A", "1", "2024-01-02 00:00:00"),
                                                   ("C", "3", "2024-01-02 00:00:00")]),
    (Cursor("2024-01-01 00:00:00", "B"), [  # a one-part cursor: that station read again
        ("B", "1", "2024-01-01 00:00:00"), ("B", "2", "2024-01-01 00:00:00"),
        ("B", "10", "2024-01-01 00:00:00"), ("B", None, "2024-01-01 00:00:00"),
        ("A", "1", "2024-01-02 00:00:00"),
        ("C", "3", "2024-01-02 00:00:00")]),
])
def test_rest_path_keeps_only_what_is_past_the_whole_key(after, expected):
    records = [{"station": s, "day": None if d is None else str(d), "at": a}
               for s, d, a in ROWS]
    base, server = DemoApi(records, "at").start()
    try:
        source = RestSource(url=f"{base}/readings", allowed_hosts=("127.0.0.1",),
                            fields={"station": "station", "day": "day", "at": "at"})
        rows = [r for b in read_records(source, cursor_column="at", key_column=KEY,
                                        after=after) for r in b.rows]
    finally:
        server.shutdown()
    assert Counter(rows) == Counter(expected)
