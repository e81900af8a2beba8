"""The dbt files compiled from contracts: sources per department, model config per mart.

Pure: returns each file's path and text; the pipeline and `hub contracts compile` write them.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from contracts.model import Contract
from contracts.targets import to_dbt_models, to_dbt_sources

HEADER = "# Generated from {source} by `hub contracts compile`: edit the contract, not this file.\n"


def generated_files(contracts: list[Contract], project_dir: Path) -> dict[Path, str]:
    """Every dbt file compiled from contracts: sources per department, config per mart."""
    files: dict[Path, str] = {}
    for department in sorted({c.department for c in contracts}):
        own = [c for c in contracts if c.department == department]
        sources = to_dbt_sources(own[0])
        for other in own[1:]:
            sources["sources"][0]["tables"] += to_dbt_sources(other)["sources"][0]["tables"]
        path = project_dir / "models" / "staging" / department / f"_{department}__sources.yml"
        files[path] = _render(sources, ", ".join(_rel(c.path, project_dir) for c in own))
    for contract in contracts:
        path = (project_dir / "models" / "marts" / contract.department
                / f"_{contract.relation_name}.yml")
        files[path] = _render(to_dbt_models(contract), _rel(contract.path, project_dir))
    return files


def _render(document: dict, source: str) -> str:
    return HEADER.format(source=source) + yaml.safe_dump(document, sort_keys=False, width=100)


def _rel(path: Path | None, project_dir: Path) -> str:
    return os.path.relpath(path, project_dir.parent) if path else "a contract"
