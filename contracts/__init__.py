"""Data contracts: resolve (read ODCS YAML) -> lint (the hub's rules) -> compile (targets).

Pure: no database, network or Prefect here. `flows` and `api` build on it.
"""

from __future__ import annotations

from pathlib import Path

from contracts.errors import ContractError
from contracts.lint import load_contract, load_contract_text
from contracts.model import Column, Contract, SourceConfig

__all__ = ["Column", "Contract", "ContractError", "SourceConfig", "load_contract",
           "load_contract_text", "load_all"]


def load_all(directory: Path) -> dict[str, Contract]:
    """Every `*.odcs.yaml` under `directory`, keyed by dataset id."""
    found: dict[str, Contract] = {}
    for path in sorted(directory.rglob("*.odcs.yaml")):
        contract = load_contract(path)
        if contract.dataset_id in found:
            earlier = found[contract.dataset_id].path
            raise ContractError(str(path), [("schema.0.name", f"dataset {contract.dataset_id} "
                                             f"is already defined in {earlier}")])
        found[contract.dataset_id] = contract
    return found
