"""`python -m tests.alone`: each test in a session of its own finds one that leans on another."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.alone import commit, in_turns, summary

REPO = Path(__file__).resolve().parent.parent

# test_b passes after test_a in one session (file order) and fails alone.
LEANING = '''
made = []

def test_a():
    made.append("thing")

def test_b():
    assert made, "test_b needs what test_a made"

def test_c():
    pass
'''


def alone(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tests.alone", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


def records(log: Path) -> dict[str, bool]:
    return {r["test"]: r["passed"] for r in map(json.loads, log.read_text().splitlines())}


def test_a_test_that_leans_on_another_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "test_leaning.py").write_text(LEANING)
    together = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                               "test_leaning.py"], cwd=tmp_path, capture_output=True, text=True)
    assert together.returncode == 0, together.stdout  # in one session, it passes
    log = tmp_path / "log.jsonl"
    done = alone(tmp_path, "test_leaning.py", "--jobs", "2", "--log", str(log))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED test_leaning.py::test_b" in done.stdout
    assert "test_b needs what test_a made" in done.stdout  # its output's tail is shown
    assert records(log) == {"test_leaning.py::test_a": True, "test_leaning.py::test_b": False,
                            "test_leaning.py::test_c": True}
    again = alone(tmp_path, "test_leaning.py", "--log", str(log))  # resumes: the failed one
    assert "3 collected, 2 not run" in again.stdout
    assert again.returncode == 1 and len(log.read_text().splitlines()) == 4


def test_limit_and_again(tmp_path: Path) -> None:
    (tmp_path / "test_fine.py").write_text("def test_x(): pass\ndef test_y(): pass\n")
    log = tmp_path / "log.jsonl"
    done = alone(tmp_path, "--limit", "1", "--log", str(log))
    assert done.returncode == 0 and "1 to run alone" in done.stdout
    assert len(records(log)) == 1
    done = alone(tmp_path, "--again", "--log", str(log))
    assert done.returncode == 0 and "2 to run alone" in done.stdout


def test_nothing_to_collect_says_what_to_give(tmp_path: Path) -> None:
    done = alone(tmp_path, "test_missing.py", "--log", str(tmp_path / "log.jsonl"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: no tests collected from test_missing.py")
    assert "not found" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "log.jsonl").exists()


def test_bad_counts_are_refused(tmp_path: Path) -> None:
    for bad in ("0", "two", "-1"):
        done = alone(tmp_path, "--jobs", bad)
        assert done.returncode == 2 and "give a whole number, 1 or more" in done.stderr


def test_the_order_takes_one_from_each_file_in_turn() -> None:
    ids = [f"{f}::t{i}" for f in ("a.py", "b.py", "c.py") for i in range(3)] + ["d.py::t0"]
    order = in_turns(ids, seed=3)
    assert sorted(order) == sorted(ids)
    first = [t.split("::")[0] for t in order[:4]]
    assert sorted(first) == ["a.py", "b.py", "c.py", "d.py"]
    assert in_turns(ids, seed=3) == order != in_turns(ids, seed=4)


def test_the_summary_counts_by_file() -> None:
    table = summary([{"test": "a.py::x", "passed": True}, {"test": "a.py::y", "passed": False},
                     {"test": "b.py::z", "passed": True}])
    assert table.splitlines()[1:] == ["a.py    2       1", "b.py    1       0",
                                      "all     3       1"]


# One quick test and three slow ones; the slow ones say when they have started.
SLOW = '''
import pathlib
import time

def test_quick():
    pass

def test_slow_1():
    pathlib.Path(__file__).with_name("started").touch()
    time.sleep(120)

def test_slow_2():
    time.sleep(120)

def test_slow_3():
    time.sleep(120)
'''


@pytest.mark.parametrize("whom", ["group", "tool"])
def test_ctrl_c_stops_at_once_and_logs_no_interrupted_test(tmp_path: Path, whom: str) -> None:
    """Ctrl+C (SIGINT to the whole process group) or `kill` (SIGTERM to the tool alone): exit
    130 in seconds, one line, nothing logged for the tests in flight or queued. The tool is
    started with SIGINT ignored, as a shell's background job is: it must catch it anyway."""
    (tmp_path / "test_slow.py").write_text(SLOW)
    log = tmp_path / "log.jsonl"
    out = interrupted(tmp_path, log, signal.SIGINT if whom == "group" else signal.SIGTERM,
                      group=whom == "group")
    logged = records(log) if log.exists() else {}
    assert set(logged) <= {"test_slow.py::test_quick"} and all(logged.values()), logged
    assert "FAILED" not in out


def test_an_interrupt_while_collecting_is_one_line_too(tmp_path: Path) -> None:
    (tmp_path / "test_slow_to_collect.py").write_text(
        "import pathlib, time\n"
        "pathlib.Path(__file__).with_name('started').touch()\n"
        "time.sleep(120)\n\n\ndef test_x():\n    pass\n")
    interrupted(tmp_path, tmp_path / "log.jsonl", signal.SIGTERM, group=False)
    assert not (tmp_path / "log.jsonl").exists()


def interrupted(folder: Path, log: Path, signum: int, group: bool) -> str:
    """Start the tool in `folder` with SIGINT ignored (as a shell's background job is), send
    `signum` (to its process group, as Ctrl+C does, or to it alone) once a test file has
    made `started`; check it stops at once, exit 130 and one line. Its stdout."""
    command = f"trap '' INT; exec {shlex.quote(sys.executable)} -m tests.alone --jobs 2 --log " \
        + shlex.quote(str(log))
    tool = subprocess.Popen(["sh", "-c", command], cwd=folder,
                            env=os.environ | {"PYTHONPATH": str(REPO)}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(folder / "started", tool)
        if group:
            os.killpg(tool.pid, signum)
        else:
            tool.send_signal(signum)
        out, err = tool.communicate(timeout=60)  # the slow tests would take minutes
    finally:  # a tool that did not stop leaves nothing running
        if tool.poll() is None:
            os.killpg(tool.pid, signal.SIGKILL)
    assert tool.returncode == 130, out + err
    assert err.startswith("interrupted: the tests that ended are in") and "Traceback" not in err
    return out


def wait_for(path: Path, tool: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert tool.poll() is None, tool.communicate()
        assert time.monotonic() < deadline, f"{path.name} not made in {seconds} s"
        time.sleep(0.1)


def test_the_commit_is_marked_changed_by_any_tracked_file_but_the_record(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    (tmp_path / "tests").mkdir()
    record, code = tmp_path / "tests" / "alone_runs.jsonl", tmp_path / "code.py"
    record.write_text("")
    code.write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    head = git("rev-parse", "--short", "HEAD").strip()
    record.write_text('{"test": "t"}\n')  # the record's own new lines: no change to the code
    assert commit(tmp_path) == head
    code.write_text("x = 2\n")
    assert commit(tmp_path) == head + "+changes"
