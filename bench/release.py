"""Benchmark: what a public release adds to a publish. The real 311 sample (9,999 requests)
published with the demo's release (docs/open-data.md) against the same contract without it.

Run by hand (needs a PostgreSQL server where it may create and drop hub_bench_release_*):

    .venv/bin/python bench/release.py --rounds 7

Each variant publishes the same candidate table into a warehouse of its own, interleaved
over rounds (bench/rounds.py): `plain` is the 311 contract with its release removed,
`release` the shipped one (aggregate query, suppression rules, stored release, all in the
publish's transaction). The last line is the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402
from contracts import load_contract  # noqa: E402
from flows.publish import publish  # noqa: E402
from hub.bootstrap import bootstrap  # noqa: E402
from hub.warehouse import drop_database, ensure_database  # noqa: E402

SHIPPED = load_contract(REPO / "contracts" / "public_works" / "service_requests.odcs.yaml")
CONTRACTS = {"plain": dataclasses.replace(SHIPPED, release=None), "release": SHIPPED}
SAMPLE = next((REPO / "data" / "la_311_requests").glob("*.csv"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    rounds.add_rounds_argument(parser)
    rounds.add_database_argument(parser, "hub_bench_release_*")
    args = parser.parse_args()
    urls = {name: ensure_database(args.database_url, f"hub_bench_release_{name}")
            for name in CONTRACTS}
    try:
        for url in urls.values():
            bootstrap(url)
            _candidate(url)
        results = rounds.run({name: lambda n=name: rounds.timed(
            lambda: publish(urls[n], CONTRACTS[n], uuid.uuid4(), 0)) for name in CONTRACTS},
            args.rounds, warmup=True)
    finally:
        for name in CONTRACTS:
            drop_database(args.database_url, f"hub_bench_release_{name}")
    rows = [[name, rounds.summary([s * 1000 for s in rounds.values(results, name, "seconds")],
                                  ".0f")] for name in CONTRACTS]
    ratio = rounds.ratio("release_vs_plain", results,
                         lambda r: r["release"]["seconds"] / r["plain"]["seconds"])
    rounds.report(rounds.table(["publish of the 311 sample", "ms, median (range)"], rows),
                  [ratio])


def _candidate(url: str) -> None:
    """The 311 sample as the pipeline's candidate table (and its empty quarantine)."""
    name = SHIPPED.relation_name
    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name),
                                                         sql.SQL(c.physical_type))
                                 for c in SHIPPED.columns)
    with psycopg.connect(url) as conn:
        conn.execute("set datestyle = 'ISO, MDY'")  # the sample's 12/31/2017 11:59:58 PM
        conn.execute(sql.SQL("create table {} ({})").format(
            sql.Identifier("candidate", name), columns))
        conn.execute(sql.SQL("create table {} as table {} with no data").format(
            sql.Identifier("candidate", f"{name}__quarantine"), sql.Identifier("candidate", name)))
        with conn.cursor().copy(sql.SQL("copy {} from stdin (format csv, header)").format(
                sql.Identifier("candidate", name))) as copy:
            copy.write(SAMPLE.read_bytes())


if __name__ == "__main__":
    main()
