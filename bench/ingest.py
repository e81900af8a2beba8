"""Benchmark: a full and an incremental load through the hub, against psql's \\copy.

Run by hand (needs a PostgreSQL server and `psql`; it creates and drops hub_bench_ingest*):

    .venv/bin/python bench/ingest.py --rows 1000000

The source is a generated table in its own database (bench/events.odcs.yaml). In the same
run: the hub loads it (SQL connector -> COPY into raw_bench.events, cursor and load
record per batch); `psql \\copy` loads the same rows, exported to a CSV file beforehand,
into a table of the same shape; then 1% new rows are added at the source and the hub
loads them incrementally. The last line is the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from contracts import load_contract  # noqa: E402
from flows.ingest import ingest  # noqa: E402
from flows.load import ensure_raw_table  # noqa: E402
from hub.bootstrap import bootstrap  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.warehouse import drop_database, ensure_database  # noqa: E402

CONTRACT = load_contract(REPO / "bench" / "events.odcs.yaml")
GENERATE = """
insert into events
select i, timestamp '2024-01-01' + i * interval '1 second',
       (array['graffiti', 'dumping', 'pothole', 'streetlight'])[1 + i %% 4], 1 + i %% 15,
       round((i %% 1000) * 1.37, 2), 'event ' || i, 34 + (i %% 1000) / 1000.0,
       -118 - (i %% 1000) / 1000.0, i %% 7 = 0, date '2024-01-01' + (i %% 365)
from generate_series(%(first)s, %(last)s) as i
"""


def main() -> None:
    args = _args()
    source = ensure_database(args.database_url, "hub_bench_ingest_source")
    hub = ensure_database(args.database_url, "hub_bench_ingest")
    try:
        _source(source, args.rows)
        bootstrap(hub)
        _quiet(hub, ensure_raw_table)
        full = _timed(lambda: _hub_load(hub, source))
        copy = _copy(hub, source)
        added = max(args.rows // 100, 1)
        _add(source, args.rows + 1, args.rows + added)
        _quiet(hub)
        incremental = _timed(lambda: _hub_load(hub, source))
    finally:
        for name in ("hub_bench_ingest_source", "hub_bench_ingest"):
            drop_database(args.database_url, name)
    _report(args.rows, added, full, copy, incremental)


def _source(url: str, rows: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("drop table if exists events")
        conn.execute("create table events (event_id bigint primary key, updated_at timestamp"
                     " not null, kind text, district integer, amount numeric(10,2), label text,"
                     " latitude double precision, longitude double precision,"
                     " flagged boolean, reported_on date)")
        conn.execute(GENERATE, {"first": 1, "last": rows})
        conn.execute("create index on events (updated_at, event_id)")
        conn.execute("analyze events")  # as autovacuum would; see _add


def _add(url: str, first: int, last: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(GENERATE, {"first": first, "last": last})
        # A department's tables have statistics (autovacuum keeps them). Without any, the
        # planner guessed a third of the table matched the incremental's range and sorted
        # the whole table instead of walking the index from the cursor: 30 ms of 60.
        conn.execute("analyze events")


def _quiet(hub: str, before: Callable[[psycopg.Connection, object], None] | None = None
           ) -> None:
    """Each timed load starts from the same state: no autovacuum on the loaded tables (it
    would start at a random moment within its one-minute nap, in the middle of the next
    load) and no dirty buffers from the last one (a checkpoint)."""
    with psycopg.connect(hub, autocommit=True) as conn:
        if before is not None:
            before(conn, CONTRACT)
        for table in ("raw_bench.events", "public.copy_events"):
            if conn.execute("select to_regclass(%s)", [table]).fetchone()[0]:
                conn.execute(f"alter table {table} set (autovacuum_enabled = off)")
        conn.execute("checkpoint")


def _hub_load(hub: str, source: str) -> int:
    settings = Settings(demo_sources=False, _env_file=None)
    return ingest(hub, CONTRACT, source, settings).rows


def _copy(hub: str, source: str) -> float:
    """Seconds psql's \\copy takes to load the same rows, from a CSV exported beforehand."""
    with psycopg.connect(hub) as conn:
        conn.execute("drop table if exists public.copy_events")
        # The raw table's data columns (text), without the hub's load metadata.
        conn.execute("create table public.copy_events as select "
                     + ", ".join(c.name for c in CONTRACT.columns)
                     + " from raw_bench.events limit 0")
    _quiet(hub)
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        _psql(source, f"\\copy (select * from events order by updated_at, event_id) to "
                      f"'{handle.name}' csv")
        columns = ", ".join(c.name for c in CONTRACT.columns)
        return _timed(lambda: _psql(hub, f"\\copy public.copy_events ({columns})"
                                         f" from '{handle.name}' csv"))


def _psql(url: str, command: str) -> None:
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", command], check=True)


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _report(rows: int, added: int, full: float, copy: float, incremental: float) -> None:
    print(f"{'load':<26}{'rows':>12}{'seconds':>10}{'rows/s':>14}")
    for name, count, seconds in (("hub, full", rows, full), ("psql \\copy", rows, copy),
                                 ("hub, incremental (1%)", added, incremental)):
        print(f"{name:<26}{count:>12,}{seconds:>10.2f}{count / seconds:>14,.0f}")
    print(f"full_vs_copy={(rows / full) / (rows / copy):.2f} "
          f"incremental_vs_full={incremental / full:.3f}")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get(
        "HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where the bench may create and drop hub_bench_ingest*")
    return parser.parse_args()


if __name__ == "__main__":
    main()
