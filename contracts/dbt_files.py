"""The dbt files compiled from contracts: sources per department, model config per mart,
and (for a dataset the repository has no models for) the models themselves.

Pure: returns each file's path and text; the pipeline and `hub contracts compile` write them.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from contracts.dbt_models import model_sql, staging_name
from contracts.model import Contract
from contracts.targets import to_dbt_models, to_dbt_sources

HEADER = "# Generated from {source} by `hub contracts compile`: edit the contract, not this file.\n"


def generated_files(contracts: list[Contract], project_dir: Path,
                    hand_written: set[str] | None = None,
                    with_models: bool = False) -> dict[Path, str]:
    """Every dbt file compiled from contracts: sources per department, config per mart and,
    `with_models`, the SQL of each model not in `hand_written` (the names of the models
    written by hand; default: those in `project_dir`)."""
    if hand_written is None:
        hand_written = hand_written_models(project_dir)
    files: dict[Path, str] = {}
    for department in sorted({c.department for c in contracts}):
        own = [c for c in contracts if c.department == department]
        sources = to_dbt_sources(own[0])
        for other in own[1:]:
            sources["sources"][0]["tables"] += to_dbt_sources(other)["sources"][0]["tables"]
        path = project_dir / "models" / "staging" / department / f"_{department}__sources.yml"
        files[path] = _render(sources, ", ".join(_rel(c.path, project_dir) for c in own))
    for contract in contracts:
        marts = project_dir / "models" / "marts" / contract.department
        generated_staging = staging_name(contract) not in hand_written
        files[marts / f"_{contract.relation_name}.yml"] = _render(
            to_dbt_models(contract, cast_checked=generated_staging),
            _rel(contract.path, project_dir))
        if with_models:
            files |= _models(contract, project_dir, hand_written)
    return files


def hand_written_models(project_dir: Path) -> set[str]:
    """The names of the models a dbt project has SQL files for."""
    return {path.stem for path in (project_dir / "models").rglob("*.sql")}


def _models(contract: Contract, project_dir: Path, hand_written: set[str]) -> dict[Path, str]:
    models = project_dir / "models"
    found = {}
    for name, text in model_sql(contract).items():
        if name not in hand_written:
            folder = "staging" if name == staging_name(contract) else "marts"
            found[models / folder / contract.department / f"{name}.sql"] = text
    return found


def _render(document: dict, source: str) -> str:
    return HEADER.format(source=source) + yaml.safe_dump(document, sort_keys=False, width=100)


def _rel(path: Path | None, project_dir: Path) -> str:
    if path is None:
        return "a contract"
    # A registered contract is named for where it came from, e.g. `registry: ... 1.0.0`.
    return os.path.relpath(path, project_dir.parent) if path.is_absolute() else str(path)
