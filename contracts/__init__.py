"""Data contracts: resolve (read ODCS YAML) -> lint (the hub's rules) -> compile (targets).

Pure: no database, network or Prefect here. `flows` and `api` build on it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from contracts.errors import ContractError
from contracts.lint import load_contract, load_contract_text
from contracts.model import Column, Contract, SourceConfig

__all__ = ["Column", "Contract", "ContractError", "SourceConfig", "load_contract",
           "load_contract_text", "load_all", "load_each"]


def load_all(directory: Path) -> dict[str, Contract]:
    """Every `*.odcs.yaml` under `directory`, keyed by dataset id; the first file that does
    not lint raises its ContractError."""
    found, broken = load_each(directory)
    if broken:
        raise next(iter(broken.values()))
    return found


def load_each(directory: Path) -> tuple[dict[str, Contract], dict[str, ContractError]]:
    """Every `*.odcs.yaml` under `directory`: (the contracts, by dataset id; the files that do
    not lint, by the dataset they are meant to describe, or by path when that cannot be
    read), so that each broken file is reported as its own dataset's problem."""
    found: dict[str, Contract] = {}
    broken: dict[str, ContractError] = {}
    for path in sorted(directory.rglob("*.odcs.yaml")):
        try:
            contract = load_contract(path)
        except ContractError as exc:
            broken.setdefault(_meant(path), exc)
            continue
        if contract.dataset_id in found:
            earlier = found[contract.dataset_id].path
            broken[contract.dataset_id] = ContractError(str(path), [(
                "schema.0.name", f"dataset {contract.dataset_id} is already defined in {earlier}")])
        found.setdefault(contract.dataset_id, contract)
    return {d: c for d, c in found.items() if d not in broken}, broken


def _meant(path: Path) -> str:
    """The dataset id a contract file names (domain.schema name), read without linting."""
    try:
        doc = yaml.safe_load(path.read_text())
        return f"{doc['domain']}.{doc['schema'][0]['name']}"
    except (OSError, yaml.YAMLError, LookupError, TypeError):
        return str(path)
