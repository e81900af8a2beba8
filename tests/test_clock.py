"""The hub's day (hub/clock.py, HUB_CLOCK) and the tests' clock (--clock): grant windows
shifted with the clock keep every decision of the reference day."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pytest

from access_policies import decide, load_policies
from contracts import load_all
from hub import clock
from tests.conftest import REFERENCE_DAY, REPO, shift_policies

LATER = date(2031, 6, 1)
CONTRACTS = load_all(REPO / "contracts")
SR = CONTRACTS["public_works.service_requests"]


def allowed(policies_dir, day: date) -> bool:
    policy = load_policies(policies_dir, CONTRACTS)
    return decide(policy, role="transport_analyst", contract=SR, today=day).allowed


def test_the_test_run_has_a_fixed_day_and_passes_it_on():
    assert clock.fixed() is not None and clock.today() == clock.fixed()
    assert os.environ["HUB_CLOCK"] == clock.today().isoformat()


def test_fix_today_moves_the_day_and_none_gives_the_real_one_back():
    before = clock.fixed()
    try:
        clock.fix_today(LATER)
        assert clock.today() == LATER
        clock.fix_today(None)
        assert clock.fixed() is None and clock.today() != LATER
    finally:
        clock.fix_today(before)


def test_shifted_policies_decide_on_the_shifted_day_as_the_shipped_ones_on_the_reference(
        tmp_path):
    shifted = tmp_path / "access_policies"
    shift_policies(REPO / "access_policies", shifted, LATER - REFERENCE_DAY)
    assert allowed(REPO / "access_policies", REFERENCE_DAY)
    assert not allowed(REPO / "access_policies", LATER)  # the shipped grant has ended
    assert allowed(shifted, LATER)
    assert not allowed(shifted, REFERENCE_DAY)  # and starts later too


def pytest_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly",
                           "-p", "no:cacheprovider", *args, "tests/test_clock.py::"
                           "test_the_test_run_has_a_fixed_day_and_passes_it_on"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, env, shown", [
    ((), {}, f"test clock: {REFERENCE_DAY}"),
    (("--clock", "2031-06-01"), {}, "test clock: 2031-06-01"),
    ((), {"HUB_TEST_CLOCK": "2030-02-03"}, "test clock: 2030-02-03"),
])
def test_the_clock_option_sets_the_day(args, env, shown, monkeypatch):
    monkeypatch.delenv("HUB_TEST_CLOCK", raising=False)  # the run's own (HUB_TEST_CLOCK=...)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HUB_CLOCK")  # the subprocess decides it afresh
    monkeypatch.delenv("HUB_POLICIES_DIR", raising=False)
    result = pytest_run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert shown in result.stdout


def test_a_bad_clock_says_what_to_write(monkeypatch):
    monkeypatch.delenv("HUB_CLOCK")
    monkeypatch.delenv("HUB_POLICIES_DIR", raising=False)
    result = pytest_run("--clock", "31/06/2031")
    assert result.returncode != 0
    assert "--clock/HUB_TEST_CLOCK: '31/06/2031' is not a day; write YYYY-MM-DD" in \
        result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
