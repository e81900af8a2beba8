"""Read a contract file into the ODCS pydantic model, refusing hostile YAML first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from contracts.errors import ContractError, yaml_problem

MAX_BYTES = 1_000_000  # contracts are hand-written; a megabyte is already absurd
MAX_DEPTH = 32
# Contract text ends up in dbt files, which dbt renders as Jinja: a registered contract
# must not be able to run template code with the hub's warehouse credentials.
TEMPLATE = re.compile(r"\{[{%#]")


def read_odcs(path: Path) -> OpenDataContractStandard:
    """Parse and type-check one contract file."""
    return parse_odcs(_read_bounded(path), path)


def parse_odcs(text: str, path: Path) -> OpenDataContractStandard:
    """Parse and type-check contract text; `path` names it in error messages."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise ContractError(str(path), [("(file)", f"over {MAX_BYTES} bytes; contracts are "
                                         "limited to that: split it or trim examples")])
    if TEMPLATE.search(text):
        raise ContractError(str(path), [("(file)", "contains '{{', '{%' or '{#', which dbt "
                                         "reads as a template; write the braces apart "
                                         "('{ {')")])
    document = _parse_yaml(path, text)
    try:
        return OpenDataContractStandard.model_validate(document)
    except pydantic.ValidationError as exc:
        raise ContractError(str(path), [_describe(err) for err in exc.errors()]) from None


def _read_bounded(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ContractError(str(path), [("(file)", f"{size} bytes; contracts are limited "
                                         f"to {MAX_BYTES} bytes: split it or trim examples")])
    return path.read_text(encoding="utf-8")


def _parse_yaml(path: Path, text: str) -> dict[str, Any]:
    # Events are checked for depth before any object is built (billion-laughs style input).
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ContractError(str(path), [("(file)", f"nested deeper than {MAX_DEPTH}"
                                                     " levels; flatten the document")])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                raise ContractError(str(path), [("(file)", "YAML aliases (*name) are not "
                                                 "accepted; write the value out")])
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(str(path), [("(file)", yaml_problem(exc))]) from None
    if not isinstance(document, dict):
        raise ContractError(str(path), [("(file)", "must be a YAML mapping with apiVersion, "
                                         "kind: DataContract, schema, ...")])
    return document


def _describe(err: Any) -> tuple[str, str]:
    path = ".".join(str(p) for p in err["loc"]) or "(root)"
    return path, f"{err['msg']} (got {err.get('input')!r})"
