"""Turn a parsed ODCS document into a `Contract`, or say everything wrong with it.

Lint rules are the hub's own on top of the standard: what it needs to enforce a contract.
Every message names the field path and what to write instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from open_data_contract_standard.model import OpenDataContractStandard, SchemaObject, SchemaProperty

from contracts.dates import FormatError, translate
from contracts.errors import ContractError
from contracts.mapping import LOGICAL_TO_PG
from contracts.model import KNOWN_CLASSES, MASK_KINDS, Column, Contract
from contracts.quality import column_checks, table_checks
from contracts.release import Release, parse_release
from contracts.resolve import parse_odcs, read_odcs
from contracts.source_config import SourceConfig, parse_source

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
TEMPORAL = ("date", "timestamp", "time")
# A type name, with an optional size and array mark: physicalType is compiled into SQL (casts,
# the mart's columns), so anything else is refused rather than quoted.
PHYSICAL_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]{0,62}(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$")
Problems = list[tuple[str, str]]


def load_contract(path: Path) -> Contract:
    """Resolve, then lint: the only way the hub reads a contract."""
    return lint(read_odcs(path), path)


def load_contract_text(text: str, name: str) -> Contract:
    """The same, for contract text that arrived over the API or from the registry."""
    return lint(parse_odcs(text, Path(name)), Path(name))


def lint(doc: OpenDataContractStandard, path: Path) -> Contract:
    problems: Problems = []
    _check_header(doc, problems)
    schema = _single_schema(doc, problems)
    columns, sql_checks = _columns(schema, problems) if schema else ((), [])
    minimum, table_sql = (table_checks("schema.0", schema.quality or [], schema.name or "",
                                       problems) if schema else (None, []))
    owner, source = _owner(doc, problems), _source(doc, columns, problems)
    release = _release(doc, columns, problems)
    contract = None
    if schema and not problems:
        contract = Contract(
            dataset_id=f"{doc.domain}.{schema.name}",
            version=str(doc.version),
            title=doc.name or schema.name or "",
            department=str(doc.domain),
            owner=owner,
            description=(doc.description.purpose or "").strip() if doc.description else "",
            columns=columns,
            grain=schema.dataGranularityDescription or "",
            min_row_count=minimum,
            sql_checks=tuple(sql_checks + table_sql),
            freshness=_freshness(doc, schema.name or "", columns, problems),
            source=source,
            # Free text in ODCS (the examples say development, production...): only
            # `retired` means something to the hub, it stops the dataset (hub/catalog.py).
            status=doc.status or "active",
            release=release,
            path=path,
        )
    if problems or contract is None:
        raise ContractError(str(path), problems)
    return contract


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


def _columns(obj: SchemaObject, problems: Problems) -> tuple[tuple[Column, ...], list[tuple]]:
    columns, sql_checks = [], []
    for i, prop in enumerate(obj.properties or []):
        column, column_sql = _column(i, prop, obj.name or "", problems)
        columns.append(column)
        sql_checks += column_sql
    names = [c.name for c in columns]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("schema.0.properties", f"column {name!r} is listed twice"))
    if columns and not any(c.primary_key for c in columns):
        problems.append(("schema.0.properties", "no primaryKey: mark the key column(s) "
                         "with primaryKey: true"))
    positions = [c.key_position for c in columns if c.key_position is not None]
    for position in sorted({p for p in positions if positions.count(p) > 1}):
        problems.append(("schema.0.properties", f"primaryKeyPosition {position} is given to "
                         "more than one key column: number them 1, 2, ..."))
    return tuple(columns), sql_checks


def _column(i: int, prop: SchemaProperty, table: str,
            problems: Problems) -> tuple[Column, list[tuple]]:
    at = f"schema.0.properties.{i}"
    checks, sql_checks = column_checks(at, prop.quality or [], table, problems)
    _check_kinds(at, prop.logicalType, checks, problems)
    if not IDENTIFIER.match(prop.name or ""):
        problems.append((f"{at}.name", f"got {prop.name!r}; write a lowercase column name"))
    if prop.logicalType not in LOGICAL_TO_PG:
        problems.append((f"{at}.logicalType", f"got {prop.logicalType!r}; write one of "
                         f"{', '.join(sorted(LOGICAL_TO_PG))}"))
    if prop.physicalType is not None and not PHYSICAL_TYPE.match(prop.physicalType):
        problems.append((f"{at}.physicalType", f"got {prop.physicalType!r}; write a PostgreSQL "
                         "type such as text, bigint, numeric(10,2) or timestamp"))
    classification = prop.classification or "public"
    if classification not in KNOWN_CLASSES:
        problems.append((f"{at}.classification", f"got {classification!r}; write one of "
                         f"{', '.join(sorted(KNOWN_CLASSES))}"))
    column = Column(
        name=prop.name or "",
        logical_type=prop.logicalType or "string",
        physical_type=prop.physicalType or LOGICAL_TO_PG.get(prop.logicalType or "", "text"),
        required=bool(prop.required) or ("not_null", None) in checks,
        unique=bool(prop.unique) or ("unique", None) in checks,
        primary_key=bool(prop.primaryKey),
        classification=classification,
        description=prop.description or "",
        checks=tuple(c for c in checks if c[1] is not None),
        mask=_mask(at, prop, problems),
        key_position=_key_position(at, prop, problems),
        date_format=_date_format(at, prop, problems),
        free_text=_free_text(at, prop, problems),
    )
    return column, sql_checks


def _key_position(at: str, prop: SchemaProperty, problems: Problems) -> int | None:
    # Non-key columns often carry -1 (the ODCS examples do): only a key's position counts.
    position = prop.primaryKeyPosition
    if not prop.primaryKey or position is None:
        return None
    if position < 1:
        problems.append((f"{at}.primaryKeyPosition", f"got {position}; write the column's "
                         "place in the key, counting from 1"))
        return None
    return position


def _date_format(at: str, prop: SchemaProperty, problems: Problems) -> str | None:
    """The JDK pattern of a date, timestamp or time column; other types' formats (f32,
    i64, ...) describe storage, not text, and are not read."""
    pattern = (prop.logicalTypeOptions or {}).get("format")
    if prop.logicalType not in TEMPORAL or pattern is None:
        return None
    try:
        translate(str(pattern))
    except FormatError as exc:
        problems.append((f"{at}.logicalTypeOptions.format", f"{pattern!r}: {exc}"))
        return None
    return str(pattern)


def _check_kinds(at: str, logical_type: str | None, checks: list, problems: Problems) -> None:
    if logical_type not in ("integer", "number") and any(k == "between" for k, _ in checks):
        problems.append((f"{at}.quality", f"minimum/maximum apply to integer or number "
                         f"columns, not {logical_type!r}; use validValues or pattern"))


def _mask(at: str, prop: SchemaProperty, problems: Problems) -> str | None:
    value = _custom(prop.customProperties, "hubMask")
    if value is not None and value not in MASK_KINDS:
        problems.append((f"{at}.customProperties.hubMask", f"got {value!r}; write one of "
                         f"{', '.join(sorted(MASK_KINDS))}"))
    return value


# ODCS SLA units -> seconds.
UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400,
         "days": 86400, "w": 604800, "week": 604800}


def _freshness(doc: OpenDataContractStandard, table: str, columns: tuple[Column, ...],
               problems: Problems) -> tuple[str, int] | None:
    """SLA `latency` with an `element`: the column whose newest value must be that recent."""
    for i, sla in enumerate(doc.slaProperties or []):
        if sla.property != "latency" or not sla.element:
            continue
        where = f"slaProperties.{i}"
        column = sla.element.split(".")[-1]
        if sla.element.count(".") > 1 or (
                "." in sla.element and sla.element.split(".")[0] != table):
            problems.append((f"{where}.element", f"got {sla.element!r}; write {table}.<column>"))
        elif column not in {c.name for c in columns}:
            problems.append((f"{where}.element", f"{column!r} is not a column of the contract"))
        elif not isinstance(sla.value, (int, float)) or (sla.unit or "d") not in UNITS:
            problems.append((where, f"write value: <number> and unit: one of "
                             f"{', '.join(sorted(UNITS))}"))
        else:
            return column, int(sla.value * UNITS[sla.unit or "d"])
    return None


def _owner(doc: OpenDataContractStandard, problems: Problems) -> str:
    team = doc.team
    name = getattr(team, "name", None) if team is not None and not isinstance(team, list) else None
    if not name:
        problems.append(("team.name", "missing; name the team that owns this dataset"))
    return name or ""


def _source(doc: OpenDataContractStandard, columns: tuple[Column, ...],
            problems: Problems) -> SourceConfig | None:
    value = _custom(doc.customProperties, "hubSource")
    if value is None:
        return None
    return parse_source(value, [c.name for c in columns], problems)


def _free_text(at: str, prop: SchemaProperty, problems: Problems) -> bool:
    value = _custom(prop.customProperties, "hubFreeText")
    if value not in (None, True, False):
        problems.append((f"{at}.customProperties.hubFreeText", f"got {value!r}; write true "
                         "or false"))
    return value is True


def _release(doc: OpenDataContractStandard, columns: tuple[Column, ...],
             problems: Problems) -> Release | None:
    value = _custom(doc.customProperties, "hubPublicRelease")
    if value is None:
        return None
    key = tuple(c.name for c in columns if c.primary_key)
    return parse_release(value, {c.name: c for c in columns}, key, problems)


def _custom(props: list[Any] | None, name: str) -> Any:
    for prop in props or []:
        if prop.property == name:
            return prop.value
    return None
