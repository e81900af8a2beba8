"""Benchmark: a full and an incremental load through the hub, against psql's \\copy.

Run by hand (needs a PostgreSQL server and `psql`; it creates and drops hub_bench_ingest*):

    .venv/bin/python bench/ingest.py --rows 1000000

The source is a generated table in its own database (bench/events.odcs.yaml), exported
once to a CSV file. Each round (`--rounds`, interleaved, see bench/rounds.py) times three
loads, each into a fresh hub database: the hub loads the table (SQL connector -> COPY into
raw_bench.events, cursor and load record per batch); `psql \\copy` loads the CSV into a
table of the same shape; and, after an untimed full load, 1% new rows are added at the
source and the hub loads them incrementally (then they are deleted again, so every round
starts from the same source). The medians count. The last line is the figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402
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
from generate_series(%(first)s::integer, %(last)s::integer) as i
"""
SOURCE, HUB = "hub_bench_ingest_source", "hub_bench_ingest"


def main() -> None:
    args = _args()
    source = ensure_database(args.database_url, SOURCE)
    added = max(args.rows // 100, 1)
    try:
        _source(source, args.rows)
        with tempfile.NamedTemporaryFile(suffix=".csv") as csv:
            _psql(source, f"\\copy (select * from events order by updated_at, event_id) to "
                          f"'{csv.name}' csv")
            results = rounds.run({
                "full": lambda: _full(args.database_url, source),
                "copy": lambda: _copy(args.database_url, csv.name),
                "incremental": lambda: _incremental(args.database_url, source, args.rows, added),
            }, args.rounds)
    finally:
        for name in (SOURCE, HUB):
            drop_database(args.database_url, name)
    _report(args.rows, added, results)


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


def _remove_after(url: str, last: int) -> None:
    """Back to the rows the rounds share; vacuum frees the index entries and statistics."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("delete from events where event_id > %s", [last])
        conn.execute("vacuum analyze events")


def _fresh_hub(server: str) -> str:
    """An empty, bootstrapped hub database: no raw rows, cursor or load records."""
    drop_database(server, HUB)
    hub = ensure_database(server, HUB)
    bootstrap(hub)
    return hub


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


def _full(server: str, source: str) -> rounds.Figures:
    hub = _fresh_hub(server)
    _quiet(hub, ensure_raw_table)
    return rounds.timed(lambda: _hub_load(hub, source))


def _incremental(server: str, source: str, rows: int, added: int) -> rounds.Figures:
    hub = _fresh_hub(server)
    _quiet(hub, ensure_raw_table)
    _hub_load(hub, source)  # untimed: the state an incremental load starts from
    _add(source, rows + 1, rows + added)
    _quiet(hub)
    figures = rounds.timed(lambda: _hub_load(hub, source))
    _remove_after(source, rows)
    return figures


def _copy(server: str, csv: str) -> rounds.Figures:
    """psql's \\copy of the same rows, from the CSV exported beforehand."""
    hub = _fresh_hub(server)
    columns = ", ".join(c.name for c in CONTRACT.columns)
    with psycopg.connect(hub) as conn:
        ensure_raw_table(conn, CONTRACT)
        # The raw table's data columns (text), without the hub's load metadata.
        conn.execute(f"create table public.copy_events as select {columns}"
                     " from raw_bench.events limit 0")
    _quiet(hub)
    return rounds.timed(lambda: _psql(hub, f"\\copy public.copy_events ({columns})"
                                           f" from '{csv}' csv"))


def _psql(url: str, command: str) -> None:
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", command], check=True)


def _report(rows: int, added: int, results: list[rounds.Round]) -> None:
    lines = [f"{len(results)} rounds: medians, seconds as median (min-max)"]
    body = []
    for name, label, count in (("full", "hub, full", rows), ("copy", "psql \\copy", rows),
                               ("incremental", "hub, incremental (1%)", added)):
        seconds = rounds.values(results, name, "seconds")
        body.append([label, f"{count:,}", rounds.summary(seconds, ".3f"),
                     f"{count / rounds.median(seconds):,.0f}"])
    lines += rounds.table(["load", "rows", "seconds", "rows/s"], body)
    # Rows per second of the hub over \\copy's, for the same rows: their seconds inverted.
    full_vs_copy = rounds.ratio("full_vs_copy", results,
                                lambda r: r["copy"]["seconds"] / r["full"]["seconds"])
    incremental_vs_full = rounds.ratio(
        "incremental_vs_full", results,
        lambda r: r["incremental"]["seconds"] / r["full"]["seconds"], digits=3)
    rounds.report(lines, [full_vs_copy, incremental_vs_full])


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=rounds.positive_int, default=1_000_000)
    rounds.add_rounds_argument(parser)
    rounds.add_database_argument(parser, "hub_bench_ingest*")
    return parser.parse_args()


if __name__ == "__main__":
    main()
