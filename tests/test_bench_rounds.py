"""bench/rounds.py: the interleaving, medians, ratio spreads and figures line the benches share.

No timings are asserted: the figures fed in are made up, so each expected value is exact.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from bench import rounds
from tests.conftest import REPO


def test_each_round_starts_one_place_further_along() -> None:
    assert rounds.order(["a", "b", "c"], 5) == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"], ["b", "c", "a"]]
    assert rounds.order(["x", "y"], 3) == [["x", "y"], ["y", "x"], ["x", "y"]]


def test_no_variant_always_goes_first_or_last() -> None:
    schedule = rounds.order(["a", "b", "c", "d"], 4)
    assert sorted(r[0] for r in schedule) == ["a", "b", "c", "d"]
    assert sorted(r[-1] for r in schedule) == ["a", "b", "c", "d"]
    assert all(sorted(r) == ["a", "b", "c", "d"] for r in schedule)


def _recording(calls: list[str], name: str, value: float):
    def measure() -> rounds.Figures:
        calls.append(name)
        return {"seconds": value + len(calls)}
    return measure


def test_run_interleaves_and_keeps_each_rounds_figures() -> None:
    calls: list[str] = []
    log = io.StringIO()
    results = rounds.run({"a": _recording(calls, "a", 100), "b": _recording(calls, "b", 200)},
                         3, log=log)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert results == [{"a": {"seconds": 101}, "b": {"seconds": 202}},
                       {"b": {"seconds": 203}, "a": {"seconds": 104}},
                       {"a": {"seconds": 105}, "b": {"seconds": 206}}]
    assert log.getvalue().splitlines()[1] == "round 2/3: b seconds=203; a seconds=104"


def test_warmup_runs_each_variant_once_uncounted() -> None:
    calls: list[str] = []
    results = rounds.run({"a": _recording(calls, "a", 0), "b": _recording(calls, "b", 0)},
                         1, warmup=True, log=io.StringIO())
    assert calls == ["a", "b", "a", "b"]
    assert results == [{"a": {"seconds": 3}, "b": {"seconds": 4}}]


def test_timed_runs_the_action_and_gives_seconds() -> None:
    ran: list[bool] = []
    figures = rounds.timed(lambda: ran.append(True))
    assert ran == [True]
    assert list(figures) == ["seconds"] and figures["seconds"] >= 0


ROUNDS = [{"full": {"seconds": 1.0}, "copy": {"seconds": 0.80}},
          {"full": {"seconds": 2.0}, "copy": {"seconds": 1.48}},
          {"full": {"seconds": 1.0}, "copy": {"seconds": 0.81}}]


def test_medians_and_ranges() -> None:
    assert rounds.values(ROUNDS, "copy", "seconds") == [0.80, 1.48, 0.81]
    assert rounds.median([3.0, 1.0, 2.0]) == 2.0
    assert rounds.median([4.0, 1.0, 2.0, 3.0]) == 2.5  # even count: the middle two's mean
    assert rounds.summary([0.97, 0.92, 1.5], ".2f") == "0.97 (0.92-1.50)"


def test_a_ratio_is_taken_within_each_round() -> None:
    ratio = rounds.ratio("full_vs_copy", ROUNDS,
                         lambda r: r["copy"]["seconds"] / r["full"]["seconds"])
    # Within rounds: 0.80, 0.74, 0.81; the medians of each side would give 0.81 / 1.0.
    assert ratio.per_round == pytest.approx((0.80, 0.74, 0.81))
    assert ratio.median == pytest.approx(0.80)
    assert ratio.spread() == "full_vs_copy=0.80 (0.74-0.81 over 3 rounds)"


def test_spread_and_figures_keep_each_ratios_digits() -> None:
    three = rounds.Ratio("incremental_vs_full", (0.0281, 0.0274, 0.0301), digits=3)
    assert three.figure() == "incremental_vs_full=0.028"
    assert three.spread() == "incremental_vs_full=0.028 (0.027-0.030 over 3 rounds)"
    one = rounds.Ratio("hub_vs_sql", (1.333,))
    assert one.spread() == "hub_vs_sql=1.33 (1.33-1.33 over 1 round)"
    two = rounds.Ratio("full_vs_copy", (0.76, 0.80))
    assert rounds.figures_line([two, three]) == "full_vs_copy=0.78 incremental_vs_full=0.028"


def test_table_aligns_columns() -> None:
    rows = [["hub, full", "1.00 (0.9-1.1)"], ["copy", "0.7"]]
    assert rounds.table(["load", "seconds"], rows) == [
        "load              seconds",
        "hub, full  1.00 (0.9-1.1)",
        "copy                  0.7",
    ]


def test_report_ends_with_the_figures_line() -> None:
    out = io.StringIO()
    ratios = [rounds.Ratio("hub_vs_bare", (0.57, 0.63, 0.55)),
              rounds.Ratio("p99_vs_bare", (1.5, 1.6, 1.4))]
    rounds.report(["a table"], ratios, out=out)
    assert out.getvalue().splitlines() == [
        "a table", "",
        "hub_vs_bare=0.57 (0.55-0.63 over 3 rounds)",
        "p99_vs_bare=1.50 (1.40-1.60 over 3 rounds)",
        "hub_vs_bare=0.57 p99_vs_bare=1.50",
    ]


def test_rounds_default_to_five_and_take_whole_numbers_from_one() -> None:
    parser = argparse.ArgumentParser()
    rounds.add_rounds_argument(parser)
    assert parser.parse_args([]).rounds == 5
    assert parser.parse_args(["--rounds", "2"]).rounds == 2
    with pytest.raises(argparse.ArgumentTypeError, match="0 is too small: give 1 or more"):
        rounds.positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="'two' is not a whole number"):
        rounds.positive_int("two")


def test_a_bench_refuses_a_bad_count_with_a_message_not_a_traceback() -> None:
    done = subprocess.run([sys.executable, "bench/ingest.py", "--rounds", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "argument --rounds: 0 is too small: give 1 or more" in done.stderr
    assert "Traceback" not in done.stderr
