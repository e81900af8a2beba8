"""The layering is checked by import-linter (`make lint`); here, that the check can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["contracts", "access_policies", "hub", "flows", "api", "demo", "hub_cli"]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(tree)}  # the copy shadows the checkout
    return subprocess.run([str(LINT), "--no-cache", "--config", str(tree / "pyproject.toml")],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def copy_of_checkout(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "*.sql"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402, F401\n")


def test_the_checkout_keeps_its_layers(tmp_path):
    result = lint(copy_of_checkout(tmp_path))
    assert result.returncode == 0, result.stdout


def test_core_importing_the_api_breaks_the_layers(tmp_path):
    tree = copy_of_checkout(tmp_path)
    add_import(tree / "hub" / "warehouse.py", "import api.rows")
    result = lint(tree)
    assert result.returncode == 1
    assert "hub.warehouse -> api.rows" in result.stdout


def test_flows_importing_the_api_breaks_independence(tmp_path):
    tree = copy_of_checkout(tmp_path)
    add_import(tree / "flows" / "load.py", "import api.errors")
    assert "flows.load -> api.errors" in lint(tree).stdout


def test_production_code_importing_the_demo_is_refused(tmp_path):
    tree = copy_of_checkout(tmp_path)
    add_import(tree / "flows" / "stages.py", "import demo.sources")
    assert "flows.stages -> demo.sources" in lint(tree).stdout


def test_a_pure_package_opening_a_database_is_refused(tmp_path):
    tree = copy_of_checkout(tmp_path)
    add_import(tree / "contracts" / "diff.py", "import psycopg")
    assert "contracts.diff -> psycopg" in lint(tree).stdout


def test_an_import_cycle_is_refused(tmp_path):
    tree = copy_of_checkout(tmp_path)
    add_import(tree / "hub" / "settings.py", "import hub.warehouse")
    result = lint(tree)
    assert result.returncode == 1 and "No import cycles" in result.stdout
