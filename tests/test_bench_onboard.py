"""bench/onboard.py's pure parts: the generated contracts and deliveries, the table and the
ratio. No timings are asserted: the figures fed in are made up, so each expected value is
exact. The timed part (`hub run` over 1 and N datasets) is run by hand.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys

import pytest
import yaml

from bench import onboard, rounds
from contracts import load_contract_text
from tests.conftest import REPO


def test_each_generated_contract_lints_and_names_its_own_drop() -> None:
    first, tenth = (load_contract_text(yaml.safe_dump(onboard.contract(i)), f"{i}.odcs.yaml")
                    for i in (1, 10))
    assert (first.dataset_id, tenth.dataset_id) == ("bench.readings_001", "bench.readings_010")
    assert first.source.connection_env == "HUB_SOURCE_BENCH_READINGS_001_DROP"
    assert tenth.source.connection_env == onboard.drop_variable(10)
    assert [c.name for c in first.columns] == [
        "reading_id", "read_on", "station", "level", "vehicles", "flagged"]
    assert [c.name for c in first.columns if c.primary_key] == ["reading_id"]


def test_a_delivery_has_its_rows_and_one_bad_level_in_a_thousand() -> None:
    rows = list(csv.DictReader(io.StringIO(onboard.csv_text(2500))))
    assert len(rows) == 2500
    assert [r["reading_id"] for r in rows if r["level"] == "n/a"] == ["1000", "2000"]
    assert len({r["reading_id"] for r in rows}) == 2500  # the key is unique
    assert onboard.expected_counts(2500) == (2498, 2)
    assert onboard.expected_counts(10_000) == (9990, 10)


ROUNDS = [{"1 dataset": {"seconds": 20.0}, "50 datasets": {"seconds": 150.0}},
          {"50 datasets": {"seconds": 160.0}, "1 dataset": {"seconds": 16.0}},
          {"1 dataset": {"seconds": 25.0}, "50 datasets": {"seconds": 175.0}}]


def test_the_ratio_is_the_per_dataset_time_over_a_run_of_one_within_each_round() -> None:
    [ratio] = onboard.ratios(ROUNDS, 50)
    # Within rounds: 3.0 / 20, 3.2 / 16, 3.5 / 25.
    assert ratio.per_round == pytest.approx((0.15, 0.20, 0.14))
    assert ratio.figure() == "per_dataset_50_vs_1=0.15"


def test_the_table_gives_each_runs_seconds_and_per_dataset() -> None:
    assert onboard.report_lines(ROUNDS, 50, 10_000) == [
        "3 rounds: one `hub run`, medians (min-max); 10,000 rows per dataset",
        "hub run over     rows              seconds  seconds per dataset",
        "1 dataset      10,000     20.0 (16.0-25.0)  20.00 (16.00-25.00)",
        "50 datasets   500,000  160.0 (150.0-175.0)     3.20 (3.00-3.50)",
    ]


def test_datasets_take_two_or_more() -> None:
    assert onboard.at_least_two("50") == 50
    with pytest.raises(argparse.ArgumentTypeError, match="1 is too small: give 2 or more"):
        onboard.at_least_two("1")
    with pytest.raises(argparse.ArgumentTypeError, match="'x' is not a whole number"):
        onboard.at_least_two("x")
    assert rounds.positive_int("3") == 3


def test_the_bench_refuses_a_bad_count_with_a_message_not_a_traceback() -> None:
    done = subprocess.run([sys.executable, "bench/onboard.py", "--datasets", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "argument --datasets: 1 is too small: give 2 or more" in done.stderr
    assert "Traceback" not in done.stderr
