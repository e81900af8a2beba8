"""Benchmark: what change feeds cost. Publishing with versions kept for feeds against
publishing that drops the replaced version, and a feed page against a rows page.

Run by hand (needs a PostgreSQL server where it may create and drop hub_bench_changes_*):

    .venv/bin/python bench/changes.py --rows 1000000

Each variant publishes the same candidate table (shaped like tests/data/every_rule.odcs.yaml)
into a warehouse of its own: `kept` keeps 10 versions in history (the default), `dropped`
keeps none (HUB_CHANGE_FEED_VERSIONS=0, the behaviour before change feeds), interleaved
over rounds (bench/rounds.py). Then one more version changes 1% of the rows, and the first
100-row feed page and a 100-row feed page from the middle of the key range (a cursor) are
timed against rows pages of the same shape. The last line is the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402
from contracts import load_contract  # noqa: E402
from flows.publish import publish  # noqa: E402
from hub import changes  # noqa: E402
from hub.bootstrap import bootstrap  # noqa: E402
from hub.warehouse import drop_database, ensure_database  # noqa: E402

CONTRACT = load_contract(REPO / "tests" / "data" / "every_rule.odcs.yaml")
TABLE = "candidate.environment__readings"
GENERATE = f"""
create schema if not exists candidate;
drop table if exists {TABLE};
create table {TABLE} as
select i::bigint as reading_id,
       case when i % 2 = 0 then 'north' else 'south' end as station,
       chr(65 + i % 26) || chr(65 + (i / 26) % 26) || 'Z' as code,
       ((i % 90) - 40)::double precision as value,
       timestamp '2026-01-01' - i * interval '1 second' as taken_at,
       's' || i as serial
from generate_series(1, %(rows)s) as i;
create table if not exists {TABLE}__quarantine as select * from {TABLE} where false;
"""
KEPT = {"kept": 10, "dropped": 0}
PAGE = 100


def main() -> None:
    args = _args()
    urls = {name: ensure_database(args.database_url, f"hub_bench_changes_{name}")
            for name in KEPT}
    try:
        for url in urls.values():
            bootstrap(url)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(GENERATE.replace("%(rows)s", str(args.rows)))
        results = rounds.run({name: lambda n=name: rounds.timed(
            lambda: publish(urls[n], CONTRACT, uuid.uuid4(), KEPT[n])) for name in KEPT},
            args.rounds, warmup=True)
        pages = _pages(urls["kept"], args.rows, args.rounds)
    finally:
        for name in KEPT:
            drop_database(args.database_url, f"hub_bench_changes_{name}")
    _report(args.rows, results, pages)


def _pages(url: str, rows: int, count: int) -> list[rounds.Round]:
    """Publish a version changing 1% of the rows, then time feed and rows pages."""
    with psycopg.connect(url) as conn:
        conn.execute(f"update {TABLE} set value = value + 1 where reading_id % 100 = 0")
    publish(url, CONTRACT, uuid.uuid4(), KEPT["kept"])
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [CONTRACT.dataset_id]).fetchall())
        snapshot = window.kept[window.newest - 1]
        kept = [r[0] for r in conn.execute(changes.COLUMNS, [changes.HISTORY, snapshot])]
    diff = changes.diff_sql(CONTRACT.relation_name, snapshot,
                            [c.name for c in CONTRACT.columns], kept, CONTRACT.primary_key)
    feed = sql.SQL("({}) as feed").format(sql.SQL(diff.decode()))
    shared = sql.Identifier("shared", CONTRACT.relation_name)
    middle = rows // 2
    variants = {
        "feed_first": lambda: _page(url, feed, 0), "rows_first": lambda: _page(url, shared, 0),
        "feed_cursor": lambda: _page(url, feed, middle),
        "rows_cursor": lambda: _page(url, shared, middle)}
    return rounds.run(variants, count, warmup=True)


def _page(url: str, source: sql.Composable, after: int) -> rounds.Figures:
    statement = sql.SQL("select * from {} where reading_id > %s order by reading_id"
                        " limit %s").format(source)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        found = conn.execute(statement, [after, PAGE]).fetchall()
        seconds = time.perf_counter() - started
    if len(found) != PAGE:
        sys.exit(f"a page held {len(found)} rows, not {PAGE}")
    return {"seconds": seconds}


def _report(rows: int, results: list[rounds.Round], pages: list[rounds.Round]) -> None:
    lines = [f"{len(results)} rounds: medians, seconds as median (min-max), {rows:,} rows"]
    body = [[f"publish, {label}", rounds.summary(rounds.values(results, name, "seconds"),
                                                 ".3f")]
            for name, label in (("kept", "10 versions kept"), ("dropped", "none kept"))]
    body += [[f"{name.replace('_', ' page, ')} ({PAGE} rows)",
              rounds.summary(rounds.values(pages, name, "seconds"), ".4f")]
             for name in ("feed_first", "rows_first", "feed_cursor", "rows_cursor")]
    lines += rounds.table(["variant", "seconds"], body)
    rounds.report(lines, [
        rounds.ratio("publish_kept_vs_dropped", results,
                     lambda r: r["kept"]["seconds"] / r["dropped"]["seconds"]),
        rounds.ratio("feed_vs_rows_first_page", pages,
                     lambda r: r["feed_first"]["seconds"] / r["rows_first"]["seconds"]),
        rounds.ratio("feed_vs_rows_cursor_page", pages,
                     lambda r: r["feed_cursor"]["seconds"] / r["rows_cursor"]["seconds"])])


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=rounds.positive_int, default=1_000_000)
    rounds.add_rounds_argument(parser)
    parser.add_argument("--database-url", default=os.environ.get(
        "HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where the bench may create and drop hub_bench_changes_*")
    return parser.parse_args()


if __name__ == "__main__":
    main()
