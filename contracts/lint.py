"""Turn a parsed ODCS document into a `Contract`, or say everything wrong with it.

Lint rules are the hub's own on top of the standard: what it needs to enforce a contract.
Every message names the field path and what to write instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from open_data_contract_standard.model import (
    DataQuality,
    OpenDataContractStandard,
    SchemaObject,
    SchemaProperty,
)

from contracts.errors import ContractError
from contracts.mapping import LOGICAL_TO_PG
from contracts.model import KNOWN_CLASSES, MASK_KINDS, Column, Contract, SourceConfig
from contracts.resolve import read_odcs

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
SOURCE_KINDS = {"sql"}
Problems = list[tuple[str, str]]


def load_contract(path: Path) -> Contract:
    """Resolve, then lint: the only way the hub reads a contract."""
    return lint(read_odcs(path), path)


def lint(doc: OpenDataContractStandard, path: Path) -> Contract:
    problems: Problems = []
    _check_header(doc, problems)
    schema = _single_schema(doc, problems)
    columns = _columns(schema, problems) if schema else ()
    contract = None
    if schema and not problems:
        contract = Contract(
            dataset_id=f"{doc.domain}.{schema.name}",
            version=str(doc.version),
            title=doc.name or schema.name or "",
            department=str(doc.domain),
            owner=_owner(doc, problems),
            description=(doc.description.purpose or "").strip() if doc.description else "",
            columns=columns,
            grain=schema.dataGranularityDescription or "",
            min_row_count=_min_row_count(schema, problems),
            source=_source(doc, problems),
            path=path,
        )
    if contract and contract.source and contract.source.cursor_column not in _names(contract):
        problems.append(("customProperties.hubSource.cursorColumn",
                         f"{contract.source.cursor_column!r} is not a column of the contract"))
    if problems or contract is None:
        raise ContractError(str(path), problems)
    return contract


def _names(contract: Contract) -> set[str]:
    return {c.name for c in contract.columns}


def _check_header(doc: OpenDataContractStandard, problems: Problems) -> None:
    if not (doc.apiVersion or "").startswith("v3."):
        problems.append(("apiVersion", f"got {doc.apiVersion!r}; write apiVersion: v3.1.0"))
    if doc.kind != "DataContract":
        problems.append(("kind", f"got {doc.kind!r}; write kind: DataContract"))
    if not SEMVER.match(str(doc.version or "")):
        problems.append(("version", f"got {doc.version!r}; write a semantic version such as 1.0.0"))
    if not IDENTIFIER.match(doc.domain or ""):
        problems.append(("domain", f"got {doc.domain!r}; write the owning department as a "
                         "lowercase identifier, e.g. public_works"))


def _single_schema(doc: OpenDataContractStandard, problems: Problems) -> SchemaObject | None:
    objects = doc.schema_ or []
    if len(objects) != 1:
        problems.append(("schema", f"has {len(objects)} objects; the hub publishes one table "
                         "per contract: write exactly one schema object"))
        return None
    obj = objects[0]
    if not IDENTIFIER.match(obj.name or ""):
        problems.append(("schema.0.name", f"got {obj.name!r}; write a lowercase table name "
                         "such as service_requests"))
    if not obj.properties:
        problems.append(("schema.0.properties", "is empty; list the dataset's columns"))
    return obj


def _columns(obj: SchemaObject, problems: Problems) -> tuple[Column, ...]:
    columns = [_column(i, prop, problems) for i, prop in enumerate(obj.properties or [])]
    names = [c.name for c in columns]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("schema.0.properties", f"column {name!r} is listed twice"))
    if columns and not any(c.primary_key for c in columns):
        problems.append(("schema.0.properties", "no primaryKey: mark the key column(s) "
                         "with primaryKey: true"))
    return tuple(columns)


def _column(i: int, prop: SchemaProperty, problems: Problems) -> Column:
    at = f"schema.0.properties.{i}"
    if not IDENTIFIER.match(prop.name or ""):
        problems.append((f"{at}.name", f"got {prop.name!r}; write a lowercase column name"))
    if prop.logicalType not in LOGICAL_TO_PG:
        problems.append((f"{at}.logicalType", f"got {prop.logicalType!r}; write one of "
                         f"{', '.join(sorted(LOGICAL_TO_PG))}"))
    classification = prop.classification or "public"
    if classification not in KNOWN_CLASSES:
        problems.append((f"{at}.classification", f"got {classification!r}; write one of "
                         f"{', '.join(sorted(KNOWN_CLASSES))}"))
    return Column(
        name=prop.name or "",
        logical_type=prop.logicalType or "string",
        physical_type=prop.physicalType or LOGICAL_TO_PG.get(prop.logicalType or "", "text"),
        required=bool(prop.required),
        unique=bool(prop.unique),
        primary_key=bool(prop.primaryKey),
        classification=classification,
        description=prop.description or "",
        valid_values=_valid_values(at, prop.quality or [], problems),
        mask=_mask(at, prop, problems),
    )


def _valid_values(at: str, quality: list[DataQuality], problems: Problems) -> tuple | None:
    found = None
    for j, rule in enumerate(quality):
        where = f"{at}.quality.{j}"
        values = (rule.arguments or {}).get("validValues")
        if rule.metric == "invalidValues" and isinstance(values, list) and rule.mustBe == 0:
            found = tuple(values)
        else:
            problems.append((where, "unsupported rule; the hub enforces column rules of the form "
                             "metric: invalidValues, arguments: {validValues: [...]}, mustBe: 0"))
    return found


def _mask(at: str, prop: SchemaProperty, problems: Problems) -> str | None:
    value = _custom(prop.customProperties, "hubMask")
    if value is not None and value not in MASK_KINDS:
        problems.append((f"{at}.customProperties.hubMask", f"got {value!r}; write one of "
                         f"{', '.join(sorted(MASK_KINDS))}"))
    return value


def _min_row_count(obj: SchemaObject, problems: Problems) -> int | None:
    minimum = None
    for j, rule in enumerate(obj.quality or []):
        if rule.metric == "rowCount" and rule.mustBeGreaterThan is not None:
            minimum = int(rule.mustBeGreaterThan) + 1
        elif rule.metric == "rowCount" and rule.mustBeGreaterOrEqualTo is not None:
            minimum = int(rule.mustBeGreaterOrEqualTo)
        else:
            problems.append((f"schema.0.quality.{j}", "unsupported rule; the hub enforces "
                             "metric: rowCount with mustBeGreaterThan or mustBeGreaterOrEqualTo"))
    return minimum


def _owner(doc: OpenDataContractStandard, problems: Problems) -> str:
    team = doc.team
    name = getattr(team, "name", None) if team is not None and not isinstance(team, list) else None
    if not name:
        problems.append(("team.name", "missing; name the team that owns this dataset"))
    return name or ""


def _source(doc: OpenDataContractStandard, problems: Problems) -> SourceConfig | None:
    value = _custom(doc.customProperties, "hubSource")
    if value is None:
        return None
    where = "customProperties.hubSource"
    if not isinstance(value, dict) or value.get("kind") not in SOURCE_KINDS:
        problems.append((where, f"write a mapping with kind: one of {sorted(SOURCE_KINDS)}"))
        return None
    missing = [k for k in ("connectionEnv", "table", "cursorColumn") if not value.get(k)]
    if missing:
        problems.append((where, f"missing {', '.join(missing)}"))
        return None
    return SourceConfig(
        kind=value["kind"], connection_env=value["connectionEnv"], table=value["table"],
        cursor_column=value["cursorColumn"], batch_size=int(value.get("batchSize", 5000)),
        schedule=value.get("schedule"), sample=value.get("sample"),
    )


def _custom(props: list[Any] | None, name: str) -> Any:
    for prop in props or []:
        if prop.property == name:
            return prop.value
    return None
