"""Benchmark: `hub backup create` and `restore` against plain pg_dump and pg_restore.

Run by hand (needs a PostgreSQL server; it creates and drops hub_bench_backup*):

    .venv/bin/python bench/backup.py --rows 1000000

A bootstrapped hub warehouse gets a generated table of N rows. Each round (`--rounds`,
interleaved, see bench/rounds.py) times four things, each in a process of its own as a
user would run it: the hub's backup (pg_dump in the dump's snapshot, row counts, AES-GCM
chunks, checksums, the manifest) and `pg_dump -Fc` of the same database to a file; the
hub's restore of that backup into an empty database and HUB_HOME (checksum pass, decrypting
stream into `pg_restore --single-transaction`, keys, grants) and `pg_restore` of the plain
dump into an empty database. The hub's processes run only the backup code, not the CLI's
start-up (about a second of imports, the same at any size). Peak memory is the largest
resident set of the hub's process or its pg_dump/pg_restore child (os.wait4). The last line
is the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rounds  # noqa: E402
from hub.bootstrap import bootstrap  # noqa: E402
from hub.warehouse import drop_database, ensure_database  # noqa: E402

SOURCE, TARGET = "hub_bench_backup", "hub_bench_backup_restore"
KEY = "bench passphrase, not a secret"
GENERATE = """
create table public.bench_events as
select i as event_id, timestamp '2024-01-01' + i * interval '1 second' as updated_at,
       (array['graffiti', 'dumping', 'pothole', 'streetlight'])[1 + i % 4] as kind,
       1 + i % 15 as district, round((i % 1000) * 1.37, 2) as amount, 'event ' || i as label,
       34 + (i % 1000) / 1000.0 as latitude, md5(i::text) as reference
from generate_series(1, {rows}) as i
"""


def main() -> None:
    args = _args()
    if args.child:
        _child(args.child)
        return
    source = ensure_database(args.database_url, SOURCE)
    work = Path(tempfile.mkdtemp(prefix="hub-bench-backup-"))
    try:
        _source(source, args.rows)
        results = rounds.run(_variants(args.database_url, source, work), args.rounds)
    finally:
        for name in (SOURCE, TARGET):
            drop_database(args.database_url, name)
        shutil.rmtree(work, ignore_errors=True)
    _report(args.rows, results)


def _source(url: str, rows: int) -> None:
    bootstrap(url)
    with psycopg.connect(url) as conn:
        conn.execute("drop table if exists public.bench_events")
        conn.execute(GENERATE.format(rows=int(rows)))
        conn.execute("alter table public.bench_events add primary key (event_id)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze public.bench_events")


def _variants(server: str, source: str, work: Path) -> dict:
    state: dict[str, str] = {}

    def hub_backup() -> rounds.Figures:
        shutil.rmtree(work / "store", ignore_errors=True)
        figures, out = _measured([sys.executable, __file__, "--child", "backup", source,
                                  str(work / "home"), str(work / "store")])
        state["name"] = out.strip().splitlines()[-1]
        return figures

    def pg_dump() -> rounds.Figures:
        return _measured([_tool("pg_dump", source), "--format=custom", "--file",
                          str(work / "plain.dump"), "--dbname", source])[0]

    def hub_restore() -> rounds.Figures:
        if "name" not in state:
            hub_backup()  # the first round may start here: it needs a backup to restore
        target = _fresh(server, work / "restored-home")
        return _measured([sys.executable, __file__, "--child", "restore", target,
                          str(work / "restored-home"), str(work / "store"), state["name"]])[0]

    def pg_restore() -> rounds.Figures:
        if not (work / "plain.dump").exists():
            pg_dump()
        target = _fresh(server, None)
        return _measured([_tool("pg_restore", target), "--no-owner", "--dbname", target,
                          str(work / "plain.dump")])[0]

    return {"hub_backup": hub_backup, "pg_dump": pg_dump, "hub_restore": hub_restore,
            "pg_restore": pg_restore}


def _tool(name: str, url: str) -> str:
    from hub.backup.pgtools import find_tool, server_major

    return str(find_tool(name, server_major(url)))


def _fresh(server: str, home: Path | None) -> str:
    """An empty target database (and HUB_HOME), after a checkpoint: each restore starts
    from the same state, not with the last one's dirty buffers still being written."""
    drop_database(server, TARGET)
    target = ensure_database(server, TARGET)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("checkpoint")
    return target


def _measured(command: list[str]) -> tuple[rounds.Figures, str]:
    """Seconds and peak resident MB of a process and its children, and its stdout."""
    env = os.environ | {"HUB_BACKUP_KEY": KEY}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} failed ({process.returncode}): {text[-500:]}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}, text


def _child(argv: list[str]) -> None:
    """The hub's side of a variant, in its own process (no CLI start-up)."""
    from pydantic import SecretStr

    from hub.backup.create import create
    from hub.backup.service import hub_version, restore_backup
    from hub.backup.store import Store
    from hub.settings import Settings

    action, url, home, store = argv[:4]
    if action == "backup":
        print(create(url, Path(home), Store(store), KEY.encode(), hub_version()))
        return
    settings = Settings(home=Path(home), database_url=SecretStr(url), _env_file=None)
    restore_backup(settings, url, store, argv[4], force=False)


def _report(rows: int, results: list[rounds.Round]) -> None:
    lines = [f"{rows:,} rows, {len(results)} rounds: medians, seconds as median (min-max)"]
    body = []
    for name in ("hub_backup", "pg_dump", "hub_restore", "pg_restore"):
        seconds = rounds.values(results, name, "seconds")
        peak = max(rounds.values(results, name, "peak_mb"))
        body.append([name, rounds.summary(seconds, ".2f"), f"{peak:.0f}"])
    lines += rounds.table(["step", "seconds", "peak MB"], body)
    peak_mb = max(max(rounds.values(results, n, "peak_mb")) for n in ("hub_backup",
                                                                        "hub_restore"))
    rounds.report(lines, [
        rounds.ratio("backup_vs_pg_dump", results,
                     lambda r: r["hub_backup"]["seconds"] / r["pg_dump"]["seconds"]),
        rounds.ratio("restore_vs_pg_restore", results,
                     lambda r: r["hub_restore"]["seconds"] / r["pg_restore"]["seconds"]),
        rounds.Ratio("peak_mb", (peak_mb,), digits=0)])


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=rounds.positive_int, default=1_000_000)
    rounds.add_rounds_argument(parser)
    rounds.add_database_argument(parser, "hub_bench_backup*")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
