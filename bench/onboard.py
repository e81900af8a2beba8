"""Benchmark: one `hub run` over 1 and over N onboarded datasets; the per-dataset cost.

Run by hand (needs a PostgreSQL server, `--server`; it creates and drops
hub_bench_onboard_* databases):

    .venv/bin/python bench/onboard.py --datasets 50

Each run of a variant gets a fresh warehouse database on the server and a fresh HUB_HOME.
Its datasets are onboarded as a department would: a CSV file drop per dataset (`--rows`
rows, typed columns, a key, a date, a few values that do not cast) and a contract
registered in the registry (hub/registry.py), none in the repository. Then ONE `hub run`
(the real CLI, `python -m hub_cli run`, a subprocess) publishes them all; only that is
timed. Prefect's home is shared by every run and warmed up first: its one-time database
setup is an install cost, not a run's. Rounds interleave the variants (bench/rounds.py).

The last line is `per_dataset_N_vs_1=(seconds for N / N) / seconds for 1`: 1.0 means
every dataset costs as much as a run of one (nothing is shared); the fixed costs (Python
and Prefect start, dbt's parse) shared by N datasets push it down.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402

PREFIX = "hub_bench_onboard"
DEPARTMENT = "bench"
LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"
BAD_EVERY = 1000  # one row in this many has a value that does not cast: it is quarantined


def table_name(index: int) -> str:
    return f"readings_{index:03d}"


def drop_variable(index: int) -> str:
    return f"HUB_SOURCE_{DEPARTMENT.upper()}_{table_name(index).upper()}_DROP"


def contract(index: int) -> dict:
    """The ODCS contract a department would register for generated dataset `index`."""
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": f"bench-{table_name(index)}",
        "name": f"Bench readings {index}", "version": "1.0.0", "status": "active",
        "domain": DEPARTMENT, "team": {"name": "bench-data"},
        "customProperties": [{"property": "hubSource", "value": {
            "kind": "files", "connectionEnv": drop_variable(index), "pattern": "*.csv"}}],
        "schema": [{
            "name": table_name(index), "physicalType": "table",
            "dataGranularityDescription": "One row per reading (reading_id).",
            "properties": [
                {"name": "reading_id", "logicalType": "integer", "physicalType": "bigint",
                 "primaryKey": True, "primaryKeyPosition": 1},
                {"name": "read_on", "logicalType": "date", "required": True},
                {"name": "station", "logicalType": "string", "required": True},
                {"name": "level", "logicalType": "number"},
                {"name": "vehicles", "logicalType": "integer"},
                {"name": "flagged", "logicalType": "boolean"},
            ]}],
    }


def csv_text(rows: int) -> str:
    """A delivery of `rows` readings; every BAD_EVERY-th level is `n/a` (quarantined)."""
    lines = ["reading_id,read_on,station,level,vehicles,flagged"]
    for i in range(1, rows + 1):
        level = "n/a" if i % BAD_EVERY == 0 else f"{(i % 997) * 0.25:.2f}"
        lines.append(f"{i},2024-{1 + i % 12:02d}-{1 + i % 28:02d},ST-{i % 40},{level},"
                     f"{i % 300},{'true' if i % 7 == 0 else 'false'}")
    return "\n".join(lines) + "\n"


def expected_counts(rows: int) -> tuple[int, int]:
    """(published, quarantined) rows of one dataset of `rows` rows."""
    bad = rows // BAD_EVERY
    return rows - bad, bad


def ratios(results: list[rounds.Round], datasets: int) -> list[rounds.Ratio]:
    """`per_dataset_N_vs_1`, within each round: (seconds for N / N) / seconds for 1."""
    many, one = variant_name(datasets), variant_name(1)
    return [rounds.ratio(f"per_dataset_{datasets}_vs_1", results,
                         lambda r: r[many]["seconds"] / datasets / r[one]["seconds"])]


def variant_name(datasets: int) -> str:
    return f"{datasets} dataset{'s' if datasets != 1 else ''}"


def report_lines(results: list[rounds.Round], datasets: int, rows: int) -> list[str]:
    """The table: seconds of the whole `hub run` and per dataset, medians (min-max)."""
    body = []
    for count in (1, datasets):
        seconds = rounds.values(results, variant_name(count), "seconds")
        per = [s / count for s in seconds]
        body.append([variant_name(count), f"{count * rows:,}", rounds.summary(seconds, ".1f"),
                     rounds.summary(per, ".2f")])
    return ([f"{len(results)} rounds: one `hub run`, medians (min-max); {rows:,} rows per "
             "dataset"]
            + rounds.table(["hub run over", "rows", "seconds", "seconds per dataset"], body))


def onboard(warehouse_url: str, home: Path, datasets: int, rows: int) -> dict[str, str]:
    """Drop each dataset's CSV under HUB_HOME's drop folder and register its contract, as a
    department would; return the drop folders' variables for `hub run`'s environment."""
    from access_policies import Policy
    from contracts import load_contract_text
    from hub.bootstrap import bootstrap
    from hub.registry import register

    bootstrap(warehouse_url)
    delivery, variables = csv_text(rows), {}
    with psycopg.connect(warehouse_url) as conn:
        for index in range(1, datasets + 1):
            folder = home / "dropzone" / table_name(index)
            folder.mkdir(parents=True)
            (folder / "2024-01.csv").write_text(delivery)
            variables[drop_variable(index)] = folder.as_uri()
            text = yaml.safe_dump(contract(index), sort_keys=False)
            register(conn, load_contract_text(text, f"{table_name(index)}.odcs.yaml"), text,
                     "bench", Policy({}, ()))
    return variables


def hub_env(warehouse_url: str, home: Path, prefect_home: Path,
            variables: dict[str, str]) -> dict[str, str]:
    """`hub run`'s environment: this run's warehouse and home, no repository contracts or
    grants (an empty folder each), no demo stand-ins."""
    empty = home / "empty"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_HOME"))}
    return env | variables | {
        "HUB_HOME": str(home), "HUB_DATABASE_URL": warehouse_url,
        "HUB_CONTRACTS_DIR": str(empty), "HUB_POLICIES_DIR": str(empty),
        "HUB_DEMO_SOURCES": "false", "PREFECT_HOME": str(prefect_home)}


def hub_run(env: dict[str, str]) -> None:
    """One `hub run`, the real CLI in its own process; stops the bench if it failed."""
    done = subprocess.run([sys.executable, "-m", "hub_cli", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"hub run exited {done.returncode}:\n{done.stdout}{done.stderr}")


def check_published(warehouse_url: str, datasets: int, rows: int) -> None:
    """Every dataset published its good rows and quarantined the others: the run timed
    did the whole work."""
    published, quarantined = expected_counts(rows)
    with psycopg.connect(warehouse_url) as conn:
        found = conn.execute(
            "select count(*) from hub.dataset_versions where row_count = %s"
            " and quarantined = %s", [published, quarantined]).fetchone()[0]
    if found != datasets:
        raise SystemExit(f"{found} of {datasets} dataset(s) published {published} rows and "
                         f"quarantined {quarantined}")


def measure(server: str, datasets: int, rows: int, prefect_home: Path) -> rounds.Figures:
    """Onboard `datasets` datasets into a fresh warehouse and home; time one `hub run`."""
    from hub.warehouse import drop_database, ensure_database

    name = f"{PREFIX}_{os.getpid()}_{datasets}"
    drop_database(server, name)
    url = ensure_database(server, name)
    home = Path(tempfile.mkdtemp(prefix=f"{PREFIX}_"))
    try:
        env = hub_env(url, home, prefect_home, onboard(url, home, datasets, rows))
        figures = rounds.timed(lambda: hub_run(env))
        check_published(url, datasets, rows)
        return figures
    finally:
        drop_database(server, name)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    args = _args()
    prefect_home = Path(tempfile.mkdtemp(prefix=f"{PREFIX}_prefect_"))
    try:
        # Uncounted: Prefect's database is created and migrated once, as on installation.
        measure(args.server, 1, args.rows, prefect_home)
        results = rounds.run({
            variant_name(1): lambda: measure(args.server, 1, args.rows, prefect_home),
            variant_name(args.datasets): lambda: measure(args.server, args.datasets,
                                                         args.rows, prefect_home),
        }, args.rounds)
    finally:
        shutil.rmtree(prefect_home, ignore_errors=True)
    rounds.report(report_lines(results, args.datasets, args.rows),
                  ratios(results, args.datasets))


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=at_least_two, default=50,
                        help="how many datasets the larger run onboards (the other: 1)")
    parser.add_argument("--rows", type=rounds.positive_int, default=10_000,
                        help="rows per dataset")
    rounds.add_rounds_argument(parser)
    parser.add_argument("--server", default=os.environ.get("HUB_BENCH_DATABASE_URL")
                        or os.environ.get("HUB_TEST_DATABASE_URL") or LOCAL,
                        help=f"a PostgreSQL server where the bench may create and drop "
                             f"{PREFIX}_* (default HUB_BENCH_DATABASE_URL, else "
                             f"HUB_TEST_DATABASE_URL, else {LOCAL})")
    return parser.parse_args()


def at_least_two(text: str) -> int:
    """--datasets: compared with a run of one, so 2 or more."""
    value = rounds.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value} is too small: give 2 or more (the run of "
                                         "one is always measured)")
    return value


if __name__ == "__main__":
    main()
