"""Each test in a pytest session of its own: no test may lean on another's leftovers.

The suite runs in a random order, which catches most of that; this catches the rest: a
test that passes only because some earlier test (any earlier one) made what it needs.
By hand, like `make mutation`, not part of `make test`: every pipeline test sets up its
own first pass alone, about a minute of CPU, so the whole suite takes hours. It is
resumable: each result is appended to the log (tests/alone_runs.jsonl, kept in the
repository as the record), and a test that passed there is not run again unless asked.

    python -m tests.alone [PATH_OR_ID ...] [--jobs N] [--limit N] [--again] [--log FILE]

Run it from the repository's root (`make alone`): test ids are relative to where it runs.

Tests run in an order that takes one from each file in turn (files shuffled by --seed),
so a run stopped early is a sample of every file. Exit 0 when all that ran passed, 1
when one failed (its output's tail is printed), 2 when nothing could be collected, 130
on Ctrl+C or SIGTERM (the tests in flight are not logged: they neither passed nor failed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG = REPO / "tests" / "alone_runs.jsonl"
# One session per test: no random order inside it, no cache between them, no workers.
ALONE = ["-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist"]


class CollectError(Exception):
    """pytest found no tests in what was asked for."""


def collect(targets: list[str]) -> list[str]:
    """The test ids pytest collects from `targets` (the whole suite when empty)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *ALONE,
                           *targets], capture_output=True, text=True)
    listed = itertools.takewhile(str.strip, done.stdout.splitlines())  # ids, then a blank
    ids = [line for line in listed if "::" in line]
    if done.returncode != 0 or not ids:
        lines = (done.stderr + done.stdout).strip().splitlines()
        why = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines
                   else "no output")
        raise CollectError(f"no tests collected from {' '.join(targets) or 'tests/'} ({why});"
                           " give test files or ids as pytest takes them")
    return ids


def passed_before(log: Path) -> set[str]:
    if not log.exists():
        return set()
    records = (json.loads(line) for line in log.read_text().splitlines() if line.strip())
    return {r["test"] for r in records if r["passed"]}


def in_turns(ids: list[str], seed: int) -> list[str]:
    """One test from each file in turn, files and tests shuffled by `seed`."""
    rng, by_file = random.Random(seed), defaultdict(list)
    for test in ids:
        by_file[test.split("::")[0]].append(test)
    files = sorted(by_file)
    rng.shuffle(files)
    for tests in by_file.values():
        rng.shuffle(tests)
    rounds = itertools.zip_longest(*(by_file[f] for f in files))
    return [test for row in rounds for test in row if test]


def commit(repo: Path = REPO) -> str:
    """The commit the tests ran at, marked when tracked files differ from it (the record
    itself aside: its own uncommitted lines change no test)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  f":(exclude){LOG.relative_to(REPO)}")
    return head + ("+changes" if changed else "")


class Sessions:
    """The pytest sessions in flight, so that an interrupt stops them and logs none of them.

    Ctrl+C reaches the sessions too (one process group) and they stop failed: logged, they
    would read as tests that fail alone. A `kill` of this process alone reaches only it:
    `stop` passes the interrupt on, so the sessions tear down either way.
    """

    def __init__(self) -> None:
        self.live: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self, args: list[str]) -> subprocess.CompletedProcess | None:
        """Run a session to its end; None if it was stopped (or never started) by `stop`."""
        with self.lock:
            if self.stopping.is_set():
                return None
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            self.live.add(proc)
        out, err = proc.communicate()
        with self.lock:
            self.live.discard(proc)
        # The session may see Ctrl+C before `stop` runs: pytest's exit 2 and its banner.
        if self.stopping.is_set() or (proc.returncode == 2 and "KeyboardInterrupt" in out):
            return None
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def stop(self) -> None:
        """Start no more sessions, and interrupt those running (SIGINT: pytest tears down)."""
        with self.lock:
            self.stopping.set()
            live = list(self.live)
        for proc in live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

    def wait(self, grace: float = 30.0) -> None:
        """Give the interrupted sessions `grace` seconds to tear down, then kill them."""
        deadline = time.monotonic() + grace
        with self.lock:
            live = list(self.live)
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def run_one(test: str, sessions: Sessions) -> tuple[dict, str] | None:
    """Run `test` in a session of its own: its log record and, if it failed, its output."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hub-alone-") as scratch:
        done = sessions.run([sys.executable, "-m", "pytest", test, "-q", *ALONE,
                             f"--basetemp={scratch}/t"])
    if done is None:
        return None
    record = {"test": test, "passed": done.returncode == 0,
              "seconds": round(time.monotonic() - started, 1)}
    return record, "" if record["passed"] else done.stdout + done.stderr


def run_all(tests: list[str], jobs: int, log: Path, sessions: Sessions) -> list[dict]:
    """Run each test alone, `jobs` at a time, appending each result to `log` as it ends."""
    stamp, results = {"commit": commit(), "day": date.today().isoformat()}, []

    def one(test: str) -> None:
        ran = run_one(test, sessions)
        if ran is None:  # interrupted: neither passed nor failed
            return
        record, output = ran
        with log.open("a") as out:
            out.write(json.dumps(record | stamp) + "\n")
        results.append(record)
        word = "passed" if record["passed"] else "FAILED"
        print(f"{len(results)}/{len(tests)} {word} {test} ({record['seconds']} s)", flush=True)
        if output:
            print("\n".join(output.rstrip().splitlines()[-40:]), flush=True)

    pool = ThreadPoolExecutor(jobs)
    try:
        list(pool.map(one, tests))
    except KeyboardInterrupt:
        # A second Ctrl+C does not cut the grace short. (A handler, not SIG_IGN: a session
        # started meanwhile would inherit an ignored SIGINT, not a handler.)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)
        sessions.stop()
        sessions.wait()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def summary(results: list[dict]) -> str:
    """A table by file: tests run alone, passed, failed."""
    ran, failed = Counter(), Counter()
    for r in results:
        ran[r["test"].split("::")[0]] += 1
        failed[r["test"].split("::")[0]] += not r["passed"]
    width = max(map(len, ran), default=4)
    lines = [f"{'file':<{width}}  ran  failed"]
    lines += [f"{f:<{width}}  {ran[f]:>3}  {failed[f]:>6}" for f in sorted(ran)]
    lines.append(f"{'all':<{width}}  {sum(ran.values()):>3}  {sum(failed.values()):>6}")
    return "\n".join(lines)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 1 or more")
    return int(text)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.alone", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="test files or ids (default: all)")
    parser.add_argument("--jobs", type=positive_int, default=2, help="sessions at a time")
    parser.add_argument("--limit", type=positive_int, help="run at most this many")
    parser.add_argument("--again", action="store_true", help="also those that passed before")
    parser.add_argument("--seed", type=int, default=0, help="the order's shuffle")
    parser.add_argument("--log", type=Path, default=LOG, help=f"default {LOG.relative_to(REPO)}")
    return parser.parse_args(argv)


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    # Started in the background, a shell leaves SIGINT ignored, and so would every session:
    # catch it, and SIGTERM (`kill`) the same way, so that both stop the run cleanly.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return run(args)
    except CollectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the tests that ended are in {args.log}, the ones in flight are "
              "not; run the same command again to go on", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    ids = collect(args.targets)
    skip = set() if args.again else passed_before(args.log)
    todo = in_turns([t for t in ids if t not in skip], args.seed)[:args.limit]
    print(f"{len(ids)} collected, {len(ids) - len(todo)} not run (passed before or past "
          f"--limit), {len(todo)} to run alone, {args.jobs} at a time", flush=True)
    results = run_all(todo, args.jobs, args.log, Sessions())
    print(summary(results))
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
