"""Rounds for the benches: variants interleaved, medians, per-round ratios, one figures line.

This machine's speed drifts by a third from minute to minute, so one timing per variant
says little: a variant that ran in a slow minute looks slow. Each round runs every variant
once, in an order rotated each round so that no variant always runs first (on cold caches,
or right after the heaviest one). A ratio is taken within a round, between variants that
met the same machine, and the median over the rounds is reported with its range.

The last line printed is the figures line (`name=value ...`, the medians), so a caller can
read it with `| tail -1`: a bench tears down everything that prints (servers, Prefect)
before it calls `report`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

Figures = dict[str, float]  # one run of one variant, e.g. {"seconds": 0.94}
Round = dict[str, Figures]  # every variant's figures in one round, by variant name


def positive_int(text: str) -> int:
    """An argparse type for counts and durations: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: give 1 or more")
    return value


def add_rounds_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=positive_int, default=5,
                        help="rounds of all variants, interleaved; the medians count")


def add_database_argument(parser: argparse.ArgumentParser, databases: str) -> None:
    """--database-url: the server the bench may create and drop its `databases` on."""
    parser.add_argument("--database-url", default=os.environ.get(
        "HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help=f"a server where the bench may create and drop {databases}")


def order(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The variants' order in each round: round r starts r places further along."""
    return [[*names[r % len(names):], *names[:r % len(names)]] for r in range(rounds)]


def run(variants: Mapping[str, Callable[[], Figures]], rounds: int, *, warmup: bool = False,
        log: TextIO = sys.stderr) -> list[Round]:
    """Run every variant once per round, interleaved; return each round's figures.
    `warmup` runs each variant once first, uncounted (first-call costs: imports, caches)."""
    if warmup:
        for measure in variants.values():
            measure()
    results = []
    for number, names in enumerate(order(list(variants), rounds), start=1):
        results.append({name: variants[name]() for name in names})
        # Progress on stderr: a long bench shows it is alive, and stdout stays the report.
        print(f"round {number}/{rounds}: " + "; ".join(
            f"{name} {_brief(results[-1][name])}" for name in names), file=log, flush=True)
    return results


def timed(action: Callable[[], object]) -> Figures:
    """The seconds `action` takes, as a variant's figures."""
    started = time.perf_counter()
    action()
    return {"seconds": time.perf_counter() - started}


def _brief(figures: Figures) -> str:
    return " ".join(f"{key}={value:.4g}" for key, value in figures.items())


def values(results: Sequence[Round], variant: str, key: str) -> list[float]:
    """One figure of one variant, round by round."""
    return [result[variant][key] for result in results]


def median(numbers: Sequence[float]) -> float:
    return statistics.median(numbers)


def summary(numbers: Sequence[float], spec: str) -> str:
    """The median with the range, e.g. `0.94 (0.92-0.97)`, each formatted by `spec`."""
    return (f"{median(numbers):{spec}} "
            f"({min(numbers):{spec}}-{max(numbers):{spec}})")


@dataclass(frozen=True)
class Ratio:
    """A ratio between variants, taken within each round; its median is the figure."""

    name: str
    per_round: tuple[float, ...]
    digits: int = 2

    @property
    def median(self) -> float:
        return median(self.per_round)

    def figure(self) -> str:
        return f"{self.name}={self.median:.{self.digits}f}"

    def spread(self) -> str:
        """E.g. `full_vs_copy=0.78 (0.74-0.81 over 5 rounds)`."""
        spec = f".{self.digits}f"
        rounds = len(self.per_round)
        return (f"{self.figure()} ({min(self.per_round):{spec}}-{max(self.per_round):{spec}}"
                f" over {rounds} round{'s' if rounds != 1 else ''})")


def ratio(name: str, results: Sequence[Round], of: Callable[[Round], float],
          digits: int = 2) -> Ratio:
    return Ratio(name, tuple(of(result) for result in results), digits)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell: the first left-aligned, the others right."""
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                      for i, (cell, width) in enumerate(zip(line, widths, strict=True)))
            for line in [header, *rows]]


def figures_line(ratios: Sequence[Ratio]) -> str:
    """The last line: the same `name=value` pairs the benches always printed, now medians."""
    return " ".join(r.figure() for r in ratios)


def report(lines: Sequence[str], ratios: Sequence[Ratio], out: TextIO = sys.stdout) -> None:
    """Print the table, each ratio's spread, then the figures line, last."""
    sys.stderr.flush()  # anything a library left there comes before the report
    for line in [*lines, "", *(r.spread() for r in ratios), figures_line(ratios)]:
        print(line, file=out)
    out.flush()
