"""Benchmark: a 100-row page costs the same on 10 thousand rows as on 10 million, first
page or last (issue 18: flat cost growth).

Run by hand (needs a PostgreSQL server; the 10-million-row table takes a few minutes to
build the first time, and is kept for the next run with --keep):

    .venv/bin/python bench/scale.py --rounds 3 --keep

public_works.service_requests is published twice, in a database of its own each: with
10,000 and with 10,000,000 generated rows (`generate_series` straight into the shared
table, its primary key added after, as a publish does; then a version row, so the API
serves it). `hub serve` serves each; one client reads GET /datasets/{id}/rows?limit=100
one request after another: the first page, and the last page by its cursor (keyset
paging on the key index: `where sr_number > <cursor> order by sr_number limit 100`).
Each round (bench/rounds.py) measures every variant's p50 and p99 over `--requests`
requests after a warm-up; the sql_ variants time the same pages' statement alone, sent
directly (prepared, generic plan, as the API's connections do): the warehouse's share.
The last line, of the API's figures: `p50_10m_vs_10k` (the last page's p50 on 10M over
10k) and `deep_page_vs_first` (on 10M, the last page's p50 over the first's); the targets
are both at most 1.5.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402
from bench.api import _free_port, _wait  # noqa: E402
from contracts import Contract, load_all  # noqa: E402
from contracts.mapping import pg_type  # noqa: E402
from hub import clients  # noqa: E402
from hub.bootstrap import bootstrap  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.warehouse import drop_database, ensure_database  # noqa: E402

DATASET = "public_works.service_requests"
PAGE = 100
# The rows statement's version subquery (api/rows.VERSION, for the newest major).
VERSION = "select max(version) from hub.dataset_versions where dataset = %(dataset)s"
SIZES = {"10k": 10_000, "10m": 10_000_000}
# Generated values for some columns; the others stay null (a page's cost is in finding its
# rows, which these keep realistic: a text key, timestamps, numbers, text).
FILLED = {
    "sr_number": "'SR' || lpad(i::text, 10, '0')",  # text sorts as the number does
    "created_date": "timestamp '2020-01-01' + i * interval '7 seconds'",
    "updated_date": "timestamp '2020-01-02' + i * interval '7 seconds'",
    "request_type": "(array['Bulky Items','Graffiti Removal','Illegal Dumping'])[1 + i % 3]",
    "status": "(array['Open','Closed','Pending'])[1 + i % 3]",
    "anonymous": "i % 2 = 0",
    "address": "(i % 9999)::text || ' MAIN ST'",
    "latitude": "34 + (i % 1000) / 10000.0",
    "longitude": "-118 - (i % 1000) / 10000.0",
    "cd": "1 + i % 15",
}


def main() -> None:
    args = _args()
    home = Path(tempfile.mkdtemp(prefix="hub-bench-scale-"))
    servers: list[subprocess.Popen] = []
    try:
        variants = _variants(args, home, servers)
        results = rounds.run(variants, args.rounds)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            for name in SIZES:
                drop_database(args.database_url, f"hub_bench_scale_{name}")
    _report(results, args)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=rounds.positive_int, default=300,
                        help="requests per variant and round (one at a time)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the databases: the next run skips building them")
    rounds.add_rounds_argument(parser)
    rounds.add_database_argument(parser, "databases hub_bench_scale_*")
    return parser.parse_args()


def _variants(args: argparse.Namespace, home: Path, servers: list[subprocess.Popen]
              ) -> dict[str, Callable[[], rounds.Figures]]:
    """Each size's database built (or kept) and served; the first and last page of each."""
    found = {}
    for name, size in SIZES.items():
        url = ensure_database(args.database_url, f"hub_bench_scale_{name}")
        _published(url, size)
        base, token = _served(url, home / name, servers)
        first = f"{base}/datasets/{DATASET}/rows?limit={PAGE}"
        last = f"{first}&cursor={_cursor(size - PAGE)}"
        found[f"{name}_first"] = _measurer(first, token, args.requests)
        found[f"{name}_last"] = _measurer(last, token, args.requests)
        # The same pages' statement alone, as the API sends it: the warehouse's share.
        found[f"sql_{name}_first"] = _sql_measurer(url, None, args.requests)
        found[f"sql_{name}_last"] = _sql_measurer(url, _key(size - PAGE), args.requests)
    return found


def _published(url: str, size: int) -> None:
    """The dataset's shared table with `size` generated rows and its version row, unless
    an earlier run (--keep) left exactly that."""
    bootstrap(url)
    contract = load_all(Settings(_env_file=None).contracts_dir)[DATASET]
    with psycopg.connect(url) as conn:
        held = conn.execute("select row_count from hub.dataset_versions where dataset = %s"
                            " order by version desc limit 1", [DATASET]).fetchone()
        if held and held[0] == size:
            return
        print(f"building {size:,} rows (once; --keep keeps them)", file=sys.stderr, flush=True)
        started = time.perf_counter()
        table = f'shared."{contract.relation_name}"'
        conn.execute(f"drop table if exists {table}")
        conn.execute(f"create table {table} as select {_columns(contract)}"
                     f" from generate_series(1, {size}) as i")
        conn.execute(f"alter table {table} add primary key (sr_number)")
        conn.execute(f"analyze {table}")
        conn.execute("delete from hub.dataset_versions where dataset = %s", [DATASET])
        conn.execute("insert into hub.dataset_versions (dataset, version, contract_version,"
                     " row_count, quarantined, run_id) values (%s, 1, %s, %s, 0, %s)",
                     [DATASET, contract.version, size, uuid.uuid4()])
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def _columns(contract: Contract) -> str:
    return ", ".join(
        f"({FILLED.get(c.name, 'null')})::{pg_type(c.physical_type, c.logical_type)}"
        f' as "{c.name}"' for c in contract.columns)


def _served(url: str, home: Path, servers: list[subprocess.Popen]) -> tuple[str, str]:
    """`hub serve` on the database (one process, the rate limit lifted); its base URL and
    a token of a client whose grant sees every row."""
    port = _free_port()
    env = {"HUB_DATABASE_URL": url, "HUB_HOME": str(home), "HUB_DEMO_SOURCES": "false",
           "HUB_RATE_LIMIT_PER_MINUTE": "100000000"}
    servers.append(subprocess.Popen(
        [sys.executable, "-m", "hub_cli", "serve", "--port", str(port)], cwd=REPO,
        env=os.environ | env))
    base = f"http://127.0.0.1:{port}"
    _wait(base)
    with psycopg.connect(url) as conn:
        client, secret = clients.add_client(conn, name=f"bench-{time.time_ns()}",
                                            role="transport_analyst")
    token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(client.client_id, secret)).json()["access_token"]
    return base, token


def _key(row: int) -> str:
    return "SR" + str(row).zfill(10)


def _cursor(after_row: int) -> str:
    """The cursor the API returns after row number `after_row` (its key, base64 JSON)."""
    return base64.urlsafe_b64encode(json.dumps([_key(after_row)]).encode()).decode()


def _sql_measurer(url: str, after: str | None, requests: int) -> Callable[[], rounds.Figures]:
    contract = load_all(Settings(_env_file=None).contracts_dir)[DATASET]
    columns = ", ".join(f'"{c.name}"' for c in contract.columns)
    where = "where sr_number > %(after)s" if after else ""
    statement = (f'select {columns}, ({VERSION}) from shared."{contract.relation_name}"'
                 f" {where} order by sr_number limit {PAGE}")
    params = {"after": after, "dataset": DATASET}

    def measure() -> rounds.Figures:
        with psycopg.connect(url, options="-c plan_cache_mode=force_generic_plan") as conn:
            for _ in range(20):
                conn.execute(statement, params, prepare=True).fetchall()
            took = []
            for _ in range(requests):
                started = time.perf_counter()
                conn.execute(statement, params, prepare=True).fetchall()
                took.append((time.perf_counter() - started) * 1000)
        cuts = statistics.quantiles(took, n=100)
        return {"p50": cuts[49], "p99": cuts[98]}
    return measure


def _measurer(target: str, token: str, requests: int) -> Callable[[], rounds.Figures]:
    def measure() -> rounds.Figures:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for _ in range(20):  # warm-up: connections, prepared statements, caches
                _page(http, target)
            took = [_page(http, target) for _ in range(requests)]
        cuts = statistics.quantiles(took, n=100)
        return {"p50": cuts[49], "p99": cuts[98]}
    return measure


def _page(http: httpx.Client, target: str) -> float:
    started = time.perf_counter()
    answer = http.get(target)
    took = (time.perf_counter() - started) * 1000
    if answer.status_code != 200 or len(answer.json()["rows"]) != PAGE:
        sys.exit(f"{target} answered {answer.status_code}: {answer.text[:300]}")
    return took


def _report(results: list[rounds.Round], args: argparse.Namespace) -> None:
    lines = [f"GET /datasets/{DATASET}/rows?limit={PAGE}, one request at a time, "
             f"{args.requests} requests per variant and round, `hub serve` (one process)",
             f"{len(results)} rounds: medians (min-max)"]
    body = [[name, rounds.summary(rounds.values(results, name, "p50"), ".2f"),
             rounds.summary(rounds.values(results, name, "p99"), ".2f")]
            for name in ("10k_first", "10k_last", "10m_first", "10m_last", "sql_10k_first",
                         "sql_10k_last", "sql_10m_first", "sql_10m_last")]
    lines += rounds.table(["rows_page (sql_: the statement alone)", "p50 ms", "p99 ms"], body)
    rounds.report(lines, [
        rounds.ratio("p50_10m_vs_10k", results,
                     lambda r: r["10m_last"]["p50"] / r["10k_last"]["p50"]),
        rounds.ratio("deep_page_vs_first", results,
                     lambda r: r["10m_last"]["p50"] / r["10m_first"]["p50"]),
    ])


if __name__ == "__main__":
    main()
