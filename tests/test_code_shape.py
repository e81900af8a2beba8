"""The code stays readable in an afternoon: short functions, modules of a sitting's length."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["contracts", "access_policies", "hub", "flows", "api", "demo", "hub_cli"]
MAX_FUNCTION_LINES = 40
MAX_MODULE_LINES = 400
MAX_MEDIAN_FUNCTION_LINES = 10


def modules() -> list[Path]:
    return sorted(p for name in PACKAGES for p in (REPO / name).rglob("*.py"))


def function_lengths(path: Path, root: Path = REPO) -> dict[str, int]:
    """Each function's length in lines, from its `def` (decorators excluded) to its end."""
    tree = ast.parse(path.read_text())
    return {f"{path.relative_to(root)}:{node.lineno} {node.name}": node.end_lineno - node.lineno + 1
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def all_lengths() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in modules():
        found |= function_lengths(path)
    return found


def test_no_function_is_longer_than_the_limit():
    long = {name: n for name, n in all_lengths().items() if n > MAX_FUNCTION_LINES}
    assert not long, f"split these functions (over {MAX_FUNCTION_LINES} lines): {long}"


def test_median_function_stays_short():
    median = statistics.median(all_lengths().values())
    assert median <= MAX_MEDIAN_FUNCTION_LINES, f"median function is {median} lines"


def test_no_module_is_longer_than_the_limit():
    long = {str(p.relative_to(REPO)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def test_the_measure_counts_a_long_function(tmp_path):
    # The check can fail: a 41-line function is found.
    body = "\n".join(f"    x{i} = {i}" for i in range(40))
    sample = tmp_path / "sample.py"
    sample.write_text(f"def long():\n{body}\n")
    [(name, length)] = function_lengths(sample, tmp_path).items()
    assert length == 41 and name.endswith(" long")
