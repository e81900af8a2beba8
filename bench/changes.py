"""Benchmark: what change feeds cost. Publishing with versions (and change keys) kept for
feeds against publishing that drops the replaced version, and feed pages against rows pages.

Run by hand (needs a PostgreSQL server where it may create and drop hub_bench_changes_*):

    .venv/bin/python bench/changes.py --rows 1000000

Each variant publishes the same candidate table (shaped like tests/data/every_rule.odcs.yaml),
1% of its rows changed before each publish (untimed), into a warehouse of its own: `kept`
keeps 10 versions in history (the default) and writes each version's change-key table,
`dropped` keeps none (HUB_CHANGE_FEED_VERSIONS=0, the behaviour before change feeds),
interleaved over rounds (bench/rounds.py). Then one more version changes 1% of the rows,
and the first 100-row feed page and a 100-row feed page from the middle of the key range (a
cursor) are timed against rows pages of the same shape and against the full diff of the
whole versions (hub.changes.diff_sql, what a version without change keys costs). Then a
version changing 10% of the rows: feed pages from the version before it (one key table)
and from the one before that (two key tables merged). The last line is the figures.
"""

from __future__ import annotations

import argparse
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
from hub import change_keys, changes  # noqa: E402
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
        results = rounds.run({name: lambda n=name: _publish_changed(urls[n], KEPT[n], 100)
                              for name in KEPT}, args.rounds, warmup=True)
        few, many = _pages(urls["kept"], args.rows, args.rounds)
    finally:
        for name in KEPT:
            drop_database(args.database_url, f"hub_bench_changes_{name}")
    _report(args.rows, results, few, many)


def _publish_changed(url: str, kept: int, every: int) -> rounds.Figures:
    """Change one row in `every` of the candidate (untimed), then time its publish."""
    with psycopg.connect(url) as conn:
        conn.execute(f"update {TABLE} set value = value + 1 where reading_id % {every} = 0")
    return rounds.timed(lambda: publish(url, CONTRACT, uuid.uuid4(), kept))


def _pages(url: str, rows: int, count: int) -> tuple[list[rounds.Round], list[rounds.Round]]:
    """Time feed pages after a version changing 1% of the rows, then after one changing
    10% of them."""
    _publish_changed(url, KEPT["kept"], 100)
    since = _newest(url) - 1
    shared = sql.Identifier("shared", CONTRACT.relation_name)
    middle = rows // 2
    feed, whole = _feed(url, since, keyed=True), _feed(url, since, keyed=False)
    few = rounds.run({
        "feed_first": lambda: _page(url, feed, 0), "rows_first": lambda: _page(url, shared, 0),
        "feed_cursor": lambda: _page(url, feed, middle),
        "rows_cursor": lambda: _page(url, shared, middle),
        "whole_first": lambda: _page(url, whole, 0)}, count, warmup=True)
    _publish_changed(url, KEPT["kept"], 10)
    tenth, both = _feed(url, since + 1, keyed=True), _feed(url, since, keyed=True)
    many = rounds.run({
        "tenth_first": lambda: _page(url, tenth, 0),
        "tenth_cursor": lambda: _page(url, tenth, middle),
        "spanning_first": lambda: _page(url, both, 0),
        "spanning_cursor": lambda: _page(url, both, middle)}, count, warmup=True)
    return few, many


def _newest(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select max(version) from hub.dataset_versions").fetchone()[0]


def _feed(url: str, since: int, keyed: bool) -> sql.Composable:
    """The feed's source from `since` to the newest, as the API reads it (keyed) or as a
    version without change keys is read (the whole versions joined)."""
    with psycopg.connect(url) as conn:
        window = changes.window(conn.execute(changes.VERSIONS, [CONTRACT.dataset_id]).fetchall())
        snapshot = window.kept[since]
        kept = [r[0] for r in conn.execute(changes.COLUMNS, [changes.HISTORY, snapshot])]
    columns, key = [c.name for c in CONTRACT.columns], CONTRACT.primary_key
    diff = (change_keys.feed_sql(CONTRACT.relation_name, snapshot, window.keys_since(since),
                                 columns, kept, key) if keyed
            else changes.diff_sql(CONTRACT.relation_name, snapshot, columns, kept, key))
    return sql.SQL("({}) as feed").format(sql.SQL(diff.decode()))


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


def _report(rows: int, results: list[rounds.Round], few: list[rounds.Round],
            many: list[rounds.Round]) -> None:
    lines = [f"{len(results)} rounds: medians, seconds as median (min-max), {rows:,} rows"]
    body = [[f"publish, {label}", rounds.summary(rounds.values(results, name, "seconds"),
                                                 ".3f")]
            for name, label in (("kept", "10 versions and change keys kept"),
                                ("dropped", "none kept"))]
    body += [[f"{label} ({PAGE} rows)", rounds.summary(rounds.values(found, name, "seconds"),
                                                       ".4f")]
             for found, name, label in _page_labels(few, many)]
    lines += rounds.table(["variant", "seconds"], body)
    rounds.report(lines, [
        rounds.ratio("publish_kept_vs_dropped", results,
                     lambda r: r["kept"]["seconds"] / r["dropped"]["seconds"]),
        rounds.ratio("feed_vs_rows_first_page", few,
                     lambda r: r["feed_first"]["seconds"] / r["rows_first"]["seconds"]),
        rounds.ratio("feed_vs_rows_cursor_page", few,
                     lambda r: r["feed_cursor"]["seconds"] / r["rows_cursor"]["seconds"]),
        rounds.ratio("whole_vs_feed_first_page", few,
                     lambda r: r["whole_first"]["seconds"] / r["feed_first"]["seconds"]),
        rounds.ratio("feed_first_page_ms_10pct", many,
                     lambda r: r["tenth_first"]["seconds"] * 1000),
        rounds.ratio("feed_first_page_ms_spanning", many,
                     lambda r: r["spanning_first"]["seconds"] * 1000)])


def _page_labels(few: list[rounds.Round], many: list[rounds.Round]) -> list[tuple]:
    return [(few, "feed_first", "feed page, first, 1% changed"),
            (few, "rows_first", "rows page, first"),
            (few, "feed_cursor", "feed page, cursor, 1% changed"),
            (few, "rows_cursor", "rows page, cursor"),
            (few, "whole_first", "full diff page, first, 1% changed"),
            (many, "tenth_first", "feed page, first, 10% changed"),
            (many, "tenth_cursor", "feed page, cursor, 10% changed"),
            (many, "spanning_first", "feed page, first, 1% then 10% (2 key tables)"),
            (many, "spanning_cursor", "feed page, cursor, 1% then 10% (2 key tables)")]


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=rounds.positive_int, default=1_000_000)
    rounds.add_rounds_argument(parser)
    rounds.add_database_argument(parser, "hub_bench_changes_*")
    return parser.parse_args()


if __name__ == "__main__":
    main()
