"""Finding the warehouse: URL forms, the embedded server, and the message when there is none."""

from __future__ import annotations

import psycopg
import pytest

from hub.warehouse import (
    WarehouseUnavailable,
    _start_with_pg_ctl,
    connection_params,
    sqlalchemy_url,
    start_embedded,
    with_database,
)

SOCKET_URL = "postgresql://postgres:@/postgres?host=/tmp/hub/pg"


def test_embedded_server_starts_and_is_reused(tmp_path):
    first = start_embedded(tmp_path / "pg")
    again = start_embedded(tmp_path / "pg")  # a second start re-attaches
    assert first == again
    with psycopg.connect(first) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_no_server_anywhere_says_how_to_set_database_url(tmp_path):
    with pytest.raises(WarehouseUnavailable, match="HUB_DATABASE_URL=postgresql://"):
        _start_with_pg_ctl(tmp_path, None)


def test_urls_keep_the_socket_directory():
    moved = connection_params(with_database(SOCKET_URL, "hub"))
    assert (moved["host"], moved["dbname"]) == ("/tmp/hub/pg", "hub")
    # GX needs a host; libpq still connects through the socket directory in ?host=
    gx_url = sqlalchemy_url(SOCKET_URL, "psycopg2")
    assert gx_url.startswith("postgresql+psycopg2://postgres:@localhost/")
    assert connection_params(gx_url)["host"] == "/tmp/hub/pg"
    assert connection_params(SOCKET_URL) == {"host": "/tmp/hub/pg", "port": "5432",
                                             "user": "postgres", "password": "",
                                             "dbname": "postgres", "sslmode": "prefer"}


def test_tcp_url_params():
    params = connection_params("postgresql://u:s3cret@db.city:6543/wh")
    assert params == {"host": "db.city", "port": "6543", "user": "u", "password": "s3cret",
                      "dbname": "wh", "sslmode": "prefer"}


def test_sslmode_of_the_url_reaches_dbt():
    url = "postgresql://u@db.city/wh?sslmode=verify-full&sslrootcert=/etc/city-ca.pem"
    assert connection_params(url)["sslmode"] == "verify-full"
