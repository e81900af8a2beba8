"""Benchmark: the hub's validation step against one hand-written SQL query, same rules.

Run by hand (needs a PostgreSQL server where it may create and drop `hub_bench_validate`):

    .venv/bin/python bench/validate.py --rows 1000000

The table follows tests/data/every_rule.odcs.yaml (one rule of every kind) and is clean, so
every rule holds: the hub runs its GX suite with BOOLEAN_ONLY and its sandboxed SQL rules,
exactly as a pipeline run does; the baseline checks the same ten rules in one query.
Each side runs once uncounted, then once per round (`--rounds`, interleaved, see
bench/rounds.py); the medians count. The last line is the figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402
from contracts import load_contract  # noqa: E402
from flows.sql_rules import run_sql_rules  # noqa: E402
from flows.validate import validate  # noqa: E402
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
       localtimestamp - i * interval '1 second' as taken_at,
       's' || i as serial
from generate_series(1, %(rows)s) as i;
alter table {TABLE} add primary key (reading_id);
analyze {TABLE};
"""
# The same ten rules, written by hand as one pass (plus the distinct counts for uniqueness).
HAND_WRITTEN = f"""
select
    count(*) >= 3                                                   as row_count_at_least,
    count(*) = count(reading_id)                                    as not_null_reading_id,
    count(distinct reading_id) = count(reading_id)                  as unique_reading_id,
    count(*) filter (where station not in ('north', 'south')) = 0   as accepted_station,
    count(*) filter (where code !~ '^[A-Z]{{3}}$') = 0              as pattern_code,
    count(*) filter (where value < -50 or value > 60) = 0           as between_value,
    count(*) = count(taken_at)                                      as not_null_taken_at,
    count(distinct serial) = count(serial)                          as unique_serial,
    max(taken_at) >= now() - interval '86400 seconds'               as fresh_within_taken_at,
    count(*) filter (where value > 50) < 2                          as sql_rule
from {TABLE}
"""


def main() -> None:
    args = _args()
    url = ensure_database(args.database_url, "hub_bench_validate")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(GENERATE.replace("%(rows)s", str(args.rows)))
        results = rounds.run({"hub": lambda: rounds.timed(lambda: _hub(url)),
                              "hand": lambda: rounds.timed(lambda: _hand_written(url))},
                             args.rounds, warmup=True)
    finally:
        drop_database(args.database_url, "hub_bench_validate")
    _report(args.rows, results)


def _hub(url: str) -> None:
    checked = validate(url, CONTRACT), run_sql_rules(url, CONTRACT)
    failed = [f for result in checked for f in result.failures]
    if failed:
        sys.exit(f"the clean table failed the hub's checks: {failed}")


def _hand_written(url: str) -> None:
    with psycopg.connect(url) as conn:
        row = conn.execute(HAND_WRITTEN).fetchone()
    if not all(row):
        sys.exit(f"the clean table failed the hand-written query: {row}")


def _report(rows: int, results: list[rounds.Round]) -> None:
    lines = [f"{len(results)} rounds: medians, seconds as median (min-max)"]
    body = []
    for name, label in (("hub", "hub (GX BOOLEAN_ONLY + sql)"),
                        ("hand", "one hand-written query")):
        seconds = rounds.values(results, name, "seconds")
        body.append([label, f"{rows:,}", rounds.summary(seconds, ".2f"),
                     f"{rows / rounds.median(seconds):,.0f}"])
    lines += rounds.table(["variant", "rows", "seconds", "rows/s"], body)
    hub_vs_sql = rounds.ratio("hub_vs_sql", results,
                              lambda r: r["hub"]["seconds"] / r["hand"]["seconds"])
    rounds.report(lines, [hub_vs_sql])


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=rounds.positive_int, default=1_000_000)
    rounds.add_rounds_argument(parser)
    rounds.add_database_argument(parser, "hub_bench_validate")
    return parser.parse_args()


if __name__ == "__main__":
    main()
