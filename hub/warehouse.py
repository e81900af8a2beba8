"""Where the warehouse is, and how to reach it.

`HUB_DATABASE_URL` wins when set. Otherwise the hub runs an embedded PostgreSQL in
`HUB_HOME/pg`, started with `pgserver` (or PostgreSQL's own `initdb`/`pg_ctl`), reused
across runs. URLs are kept in libpq form (`postgresql://...`); helpers derive the
SQLAlchemy and dbt forms from it so every tool reaches the same database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from hub.settings import Settings


class WarehouseUnavailable(RuntimeError):
    """No warehouse could be found or started; the message says what to set."""


NO_EMBEDDED_HELP = (
    "No PostgreSQL is available: HUB_DATABASE_URL is unset, the `pgserver` package has no "
    "build for this platform, and PostgreSQL's initdb/pg_ctl were not found. Set "
    "HUB_DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DBNAME to use an existing server."
)


def resolve_url(settings: Settings) -> str:
    """The warehouse URL: the configured one, or the embedded server's."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded(settings.home / "pg")


def start_embedded(data_dir: Path) -> str:
    """Start (or re-attach to) the embedded server in `data_dir`; return its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        import pgserver
    except ImportError:
        return _start_with_pg_ctl(data_dir, _find_pg_bin())
    from hub.embedded import forget_dead_users

    # cleanup_mode="stop": the server stops when the last hub process using it exits; a
    # process killed outright is taken off its list of users first (hub/embedded.py).
    forget_dead_users(data_dir.resolve())
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    _KEEP_ALIVE.append(server)
    return server.get_uri()


_KEEP_ALIVE: list[object] = []  # pgserver stops the server when its handle is collected


def _find_pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


def _start_with_pg_ctl(data_dir: Path, bin_dir: Path | None) -> str:
    if bin_dir is None or os.geteuid() == 0:  # initdb refuses to run as root
        raise WarehouseUnavailable(NO_EMBEDDED_HELP)
    pgdata = data_dir / "data"
    if not (pgdata / "PG_VERSION").exists():
        _run([bin_dir / "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust"])
    status = subprocess.run([bin_dir / "pg_ctl", "-D", pgdata, "status"], capture_output=True)
    if status.returncode != 0:  # socket-only, so no port can clash
        opts = f"-k {data_dir} -c listen_addresses=''"
        _run([bin_dir / "pg_ctl", "-D", pgdata, "-o", opts, "-w", "-l", data_dir / "log", "start"])
    return f"postgresql://postgres@/postgres?host={data_dir}"


def _run(cmd: list) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


# ---------- URL forms


def with_database(url: str, database: str) -> str:
    """The same server, another database."""
    return _render(make_url(url).set(database=database))


def sqlalchemy_url(url: str, driver: str = "psycopg") -> str:
    """`postgresql+<driver>://...` for SQLAlchemy-based tools (connectors, GX)."""
    parsed = make_url(url).set(drivername=f"postgresql+{driver}")
    if not parsed.host:  # GX rejects host-less URLs; libpq still uses ?host= (the socket dir)
        parsed = parsed.set(host="localhost")
    return _render(parsed)


def connection_params(url: str) -> dict[str, str]:
    """host/port/user/password/dbname/sslmode, as dbt's profile wants them."""
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or "localhost"
    sslmode = parsed.query.get("sslmode") or "prefer"  # libpq's default
    return {
        "host": host if isinstance(host, str) else host[0],
        "port": str(parsed.port or 5432),
        "user": parsed.username or "postgres",
        "password": parsed.password or "",
        "dbname": parsed.database or "postgres",
        "sslmode": sslmode if isinstance(sslmode, str) else sslmode[0],
    }


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


# ---------- connections and databases


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(url, **kwargs)


@contextmanager
def transaction(url: str) -> Iterator[psycopg.Connection]:
    """One connection, one transaction: committed on success, rolled back on error."""
    with psycopg.connect(url) as conn:
        yield conn


def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server if missing; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        drop = sql.SQL("drop database if exists {} with (force)")
        conn.execute(drop.format(sql.Identifier(name)))
