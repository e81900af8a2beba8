"""Benchmark: the hub's policy-enforced, audited rows route against a bare endpoint.

Run by hand (needs `wrk`: apt-get install wrk, and a PostgreSQL server):

    .venv/bin/python bench/api.py --seconds 10

Each variant serves the same 100-row query under the same load (wrk, 64 connections,
`uvicorn --workers 2`): the bare baseline, the hub route, the hub route with per-read
audit records off (HUB_AUDIT_READS=false, benchmark only), and the hub route for a caller
whose grant filters rows (a sanitation dispatcher: the requests whose type
public_works.request_routing routes to sanitation; the same columns and masks as the
plain caller's grant), printed as row_filter_vs_plain. Each round (`--rounds`,
interleaved, see bench/rounds.py) starts each variant's server, warms it up for 2 s,
measures and stops it; the medians count. The last line is the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402
from contracts import load_all  # noqa: E402
from demo.sources import provision  # noqa: E402
from hub import clients  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.warehouse import drop_database, ensure_database  # noqa: E402

DATASET = "public_works.service_requests"
ROUTING = "public_works.request_routing"
ROWS = f"/datasets/{DATASET}/rows?limit=100"
PLAIN_ROLE = "transport_analyst"  # every row; address as a keyed pseudonym
FILTERED_ROLE = "sanitation_dispatcher"  # the same columns and masks, rows routed to it


def main() -> None:
    args = _args()
    if not shutil.which("wrk"):
        sys.exit("bench/api.py needs wrk as the load generator: apt-get install wrk")
    home = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    url = ensure_database(args.database_url, "hub_bench")
    try:
        results = rounds.run(_variants(args, url, home), args.rounds)
    finally:
        drop_database(args.database_url, "hub_bench")
        drop_database(args.database_url, "hub_bench_public_works")
        shutil.rmtree(home, ignore_errors=True)
    _report(results, args)


def _variants(args: argparse.Namespace, url: str, home: Path
              ) -> dict[str, Callable[[], rounds.Figures]]:
    """Publish the dataset, then the three servers' measurements, one call per round."""
    settings = _published(args.database_url, url, home)
    credentials, filtered = _client(url, PLAIN_ROLE), _client(url, FILTERED_ROLE)
    columns = ", ".join(c.name for c in load_all(settings.contracts_dir)[DATASET].columns)
    bare_env = {"BENCH_DATABASE_URL": url, "BENCH_COLUMNS": columns}
    return {
        "bare": lambda: _measure(args, ["bench.bare_app:app"], bare_env, "/rows"),
        "hub": lambda: _measure(args, _hub_app(), _hub_env(url, home, True), ROWS, credentials),
        "hub_audit_off": lambda: _measure(args, _hub_app(), _hub_env(url, home, False), ROWS,
                                          credentials),
        "hub_row_filter": lambda: _measure(args, _hub_app(), _hub_env(url, home, True), ROWS,
                                           filtered),
    }


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=rounds.positive_int, default=10,
                        help="load duration per variant and round")
    parser.add_argument("--connections", type=rounds.positive_int, default=64)
    rounds.add_rounds_argument(parser)
    rounds.add_database_argument(parser, "databases hub_bench*")
    return parser.parse_args()


def _published(server_url: str, url: str, home: Path) -> Settings:
    """Publish the dataset and the routing table with `hub run`, in a process of its own:
    Prefect's temporary server starts and stops with it, so it neither takes CPU during the
    rounds nor prints after the figures."""
    settings = Settings(home=home, database_url=url, demo_sources=False, _env_file=None)
    contracts = load_all(settings.contracts_dir)
    contract, routing = contracts[DATASET], contracts[ROUTING]
    source = provision(server_url, contract, settings.sample_data_dir,
                       database="hub_bench_public_works")
    drop = home / "routing-drop"
    drop.mkdir()
    shutil.copy(settings.sample_data_dir / routing.source.sample / "request_routing.csv", drop)
    env = {"HUB_HOME": str(home), "HUB_DATABASE_URL": url, "HUB_DEMO_SOURCES": "false",
           contract.source.connection_env: source, routing.source.connection_env: drop.as_uri()}
    for dataset in (DATASET, ROUTING):  # the requests first: their staging model needs them
        done = subprocess.run([sys.executable, "-m", "hub_cli", "run", "--dataset", dataset],
                              cwd=REPO, env=os.environ | env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"`hub run` did not publish {dataset}:\n{done.stdout}{done.stderr}")
    return settings


def _client(url: str, role: str) -> tuple[str, str]:
    with psycopg.connect(url) as conn:
        client, secret = clients.add_client(conn, name=f"bench-{time.time_ns()}", role=role)
    return client.client_id, secret


def _hub_app() -> list[str]:
    return ["--factory", "api.asgi:app"]


def _hub_env(url: str, home: Path, audit: bool) -> dict[str, str]:
    # One client drives all the load: lift its rate limit so throughput, not 429s, is measured.
    return {"HUB_DATABASE_URL": url, "HUB_HOME": str(home),
            "HUB_RATE_LIMIT_PER_MINUTE": "10000000",
            "HUB_AUDIT_READS": "true" if audit else "false"}


def _measure(args: argparse.Namespace, app: list[str], env: dict[str, str], path: str,
             credentials: tuple[str, str] | None = None) -> rounds.Figures:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *app, "--workers", "2", "--port", str(port),
         "--log-level", "warning"], cwd=REPO, env=os.environ | env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base)
        headers = _auth(base, credentials) if credentials else []
        _wrk(f"{base}{path}", headers, 2, args.connections)  # warm up
        return _wrk(f"{base}{path}", headers, args.seconds, args.connections)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _auth(base: str, credentials: tuple[str, str]) -> list[str]:
    token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=credentials).json()["access_token"]
    return ["-H", f"Authorization: Bearer {token}"]


def _wrk(target: str, headers: list[str], seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          *headers, target], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        sys.exit(f"{target} answered errors under load:\n{out}")
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            "p50": _latency(out, "50%"), "p99": _latency(out, "99%")}


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wait(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(base, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit(f"server at {base} did not start")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _report(results: list[rounds.Round], args: argparse.Namespace) -> None:
    lines = [f"100-row query, {args.connections} connections, {args.seconds} s each, "
             "uvicorn --workers 2, wrk on the same machine",
             f"{len(results)} rounds: medians (min-max)"]
    body = [[name, rounds.summary(rounds.values(results, name, "rps"), ".0f"),
             rounds.summary(rounds.values(results, name, "p50"), ".1f"),
             rounds.summary(rounds.values(results, name, "p99"), ".1f"),
             rounds.summary([r[name]["rps"] / r["bare"]["rps"] for r in results], ".2f")]
            for name in ("bare", "hub", "hub_audit_off", "hub_row_filter")]
    lines += rounds.table(["variant", "req/s", "p50 ms", "p99 ms", "req/s vs bare"], body)
    rounds.report(lines, [
        rounds.ratio("hub_vs_bare", results, lambda r: r["hub"]["rps"] / r["bare"]["rps"]),
        rounds.ratio("p99_vs_bare", results, lambda r: r["hub"]["p99"] / r["bare"]["p99"]),
        rounds.ratio("audit_off_vs_on", results,
                     lambda r: r["hub_audit_off"]["rps"] / r["hub"]["rps"]),
        rounds.ratio("row_filter_vs_plain", results,
                     lambda r: r["hub_row_filter"]["rps"] / r["hub"]["rps"]),
    ])


if __name__ == "__main__":
    main()
