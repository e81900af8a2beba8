"""`sslmode` in a URL reaches every connection the hub makes: the warehouse (psycopg), the
SQL sources (SQLAlchemy), the PostgreSQL fast path (COPY) and GX's engine URL.

The machine's PostgreSQL has SSL off, so a URL asking for `sslmode=require` must be refused
by each of them, and the same URL with `sslmode=disable` must connect: a connection that
dropped the parameter would connect in both cases. (An embedded server on a fresh machine
listens on a Unix socket, where libpq ignores sslmode: there the tests check that the
parameter reaches libpq's options of each connection instead.)
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from flows.sources.pg_copy import copy_batches
from flows.sources.sql import read_batches
from hub.warehouse import sqlalchemy_url
from tests.conftest import own_warehouse


@pytest.fixture(scope="module")
def ssl_off(server_url: str) -> Iterator[str]:
    """A database of this module's own, with a two-row table for the sources to read."""
    with own_warehouse(server_url, "hub_test_ssl") as url, psycopg.connect(url) as conn:
        (ssl,) = conn.execute("show ssl").fetchone()
        assert ssl == "off", "this test needs a server without SSL, as the CI machine's is"
        conn.execute("create table probe (id int primary key, name text);"
                     " insert into probe values (1, 'a'), (2, 'b')")
        conn.commit()
        yield url


def over_tcp(url: str) -> bool:
    """False for a Unix socket (no host, or ?host=/a/dir), where libpq ignores sslmode."""
    host = psycopg.conninfo.conninfo_to_dict(url).get("host") or ""
    return bool(host) and not host.startswith("/")


def _sslmode_of(conn: psycopg.Connection) -> str:
    return psycopg.conninfo.conninfo_to_dict(conn.info.dsn).get("sslmode", "")


def _with(url: str, mode: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}sslmode={mode}"


def _table_args() -> dict:
    return {"table": "probe", "columns": ["id", "name"], "cursor_column": "id",
            "key_column": "id"}


def test_the_warehouse_connection_honours_sslmode(ssl_off):
    with psycopg.connect(_with(ssl_off, "disable")) as conn:
        assert _sslmode_of(conn) == "disable"
    if over_tcp(ssl_off):
        with pytest.raises(psycopg.OperationalError, match="SSL"):
            psycopg.connect(_with(ssl_off, "require")).close()


def test_the_sqlalchemy_url_of_sources_and_gx_honours_sslmode(ssl_off):
    engine = sa.create_engine(sqlalchemy_url(_with(ssl_off, "disable")))
    try:
        with engine.connect() as conn:
            assert _sslmode_of(conn.connection.driver_connection) == "disable"
    finally:
        engine.dispose()
    if over_tcp(ssl_off):
        engine = sa.create_engine(sqlalchemy_url(_with(ssl_off, "require")))
        with pytest.raises(sa.exc.OperationalError, match="SSL"):
            engine.connect().close()
        engine.dispose()


def test_a_sql_source_honours_sslmode(ssl_off):
    url = sqlalchemy_url(_with(ssl_off, "disable"))
    assert next(read_batches(url, **_table_args())).rows  # sslmode is a URL option it keeps
    if over_tcp(ssl_off):
        with pytest.raises(sa.exc.OperationalError, match="SSL"):
            next(read_batches(sqlalchemy_url(_with(ssl_off, "require")), **_table_args()))


def test_the_copy_fast_path_honours_sslmode(ssl_off):
    assert next(copy_batches(_with(ssl_off, "disable"), **_table_args()))
    if over_tcp(ssl_off):
        with pytest.raises(psycopg.OperationalError, match="SSL"):
            next(copy_batches(_with(ssl_off, "require"), **_table_args()))
