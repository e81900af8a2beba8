"""Compile targets: each a pure `to_<target>(contract)` built on `contracts.mapping`."""

from __future__ import annotations

import copy
from typing import Any

from contracts.mapping import RULE_KINDS, Rule, pg_type, row_rules, rules
from contracts.model import Contract

# Load metadata every raw landing row carries: its batch's load id (hub.load_batches holds
# the batch's uuid, source and delivery, once) and when it landed (now() is the batch
# transaction's start). The loader sends the load id with the rows. Per-row uuids and the
# source's name, parsed from settings by column defaults for every row, took a third of a
# full load's time.
LOAD_COLUMNS = (
    ("_load_id", "bigint not null"),
    ("_loaded_at", "timestamptz not null default now()"),
)


def to_dbt_sources(contract: Contract) -> dict[str, Any]:
    """The dbt source for the raw landing table (every column lands as text)."""
    table = {
        "name": contract.entity,
        "description": f"Raw landing of {contract.dataset_id}, one row per extracted record "
                       "version (re-deliveries add rows; staging keeps the latest).",
        "loaded_at_field": "_loaded_at",
        "columns": [{"name": c.name, "data_type": "text"} for c in contract.columns],
    }
    return {"version": 2, "sources": [{
        "name": contract.raw_schema, "schema": contract.raw_schema, "tables": [table],
    }]}


def to_dbt_models(contract: Contract, cast_checked: bool = False) -> dict[str, Any]:
    """The mart's config (enforced contract, types, constraints, tests) and its quarantine.

    Both models carry the row-level rules as SQL in `meta.row_rules`: the mart keeps the rows
    that break none, the quarantine model keeps the others with the rules they break. With
    `cast_checked` (staging generated from the contract), values that did not cast are
    among them (mapping.row_rules).
    """
    by_column: dict[str | None, list[Rule]] = {}
    for rule in rules(contract):
        if RULE_KINDS[rule.kind].dbt is not None:
            by_column.setdefault(rule.column, []).append(rule)
    meta = {"dataset": contract.dataset_id, "contract_version": contract.version,
            "owner": contract.owner, "row_rules": row_rules(contract, cast_checked)}
    model = {
        "name": contract.relation_name,
        "description": f"{contract.title}. Grain: {contract.grain or 'see contract'}",
        "config": {"contract": {"enforced": True}, "meta": meta},
        "data_tests": [_dbt_test(r) for r in by_column.get(None, [])],
        "columns": [_dbt_column(c, by_column.get(c.name, []), len(contract.primary_key) == 1)
                    for c in contract.columns],
    }
    if len(contract.primary_key) > 1:  # a composite key is a constraint of the model
        model["constraints"] = [{"type": "primary_key", "columns": list(contract.primary_key)}]
    quarantine = {
        "name": f"{contract.relation_name}__quarantine",
        "description": f"Rows of {contract.dataset_id} held back by their contract: one row per "
                       "source record, with every row-level rule it breaks and why.",
        "config": {"meta": copy.deepcopy(meta)},  # a copy: YAML would write an alias
    }
    return {"version": 2, "models": [model, quarantine]}


def _dbt_column(col: Any, col_rules: list[Rule], single_key: bool) -> dict[str, Any]:
    constraints = []
    if col.required or col.primary_key:
        constraints.append({"type": "not_null"})
    if col.primary_key and single_key:
        constraints.append({"type": "primary_key"})
    entry = {"name": col.name, "description": col.description,
             "data_type": pg_type(col.physical_type, col.logical_type)}
    if constraints:
        entry["constraints"] = constraints
    if col_rules:
        entry["data_tests"] = [_dbt_test(r) for r in col_rules]
    return entry


def _dbt_test(rule: Rule) -> dict[str, Any]:
    # meta.rule lets a failing dbt test be reported by the contract rule it enforces.
    test, arguments = RULE_KINDS[rule.kind].dbt(rule)
    spec: dict[str, Any] = {"config": {"meta": {"rule": rule.name}}}
    if arguments:
        spec["arguments"] = arguments
    return {test: spec}


def to_gx_suite(contract: Contract) -> dict[str, Any]:
    """The Great Expectations suite, as GX 1.x suite JSON."""
    expectations = []
    for rule in rules(contract):
        if RULE_KINDS[rule.kind].gx is None:
            continue
        expectation = RULE_KINDS[rule.kind].gx(rule)
        expectation["meta"] = {"rule": rule.name}
        expectations.append(expectation)
    return {"name": f"{contract.relation_name}__v{contract.version}", "expectations": expectations}


JSON_TYPES = {
    "string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
    "boolean": {"type": "boolean"}, "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"}, "time": {"type": "string"},
}


LOCAL_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$"


def _zoned(physical_type: str) -> bool:
    return "tz" in physical_type or "with time zone" in physical_type


def to_json_schema(contract: Contract) -> dict[str, Any]:
    """JSON Schema (2020-12) of one row as the API serves it, before any masking."""
    properties = {}
    for col in contract.columns:
        kind = dict(JSON_TYPES[col.logical_type])
        if col.logical_type == "timestamp" and not _zoned(col.physical_type):
            kind = {"type": "string", "pattern": LOCAL_TIMESTAMP}  # RFC 3339 needs an offset
        nullable = not (col.required or col.primary_key)
        kind["type"] = [kind["type"], "null"] if nullable else kind["type"]
        if col.description:
            kind["description"] = col.description
        accepted = dict(col.checks).get("accepted_values")
        if accepted:
            kind["enum"] = list(accepted) + ([None] if nullable else [])
        properties[col.name] = kind
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:civic-data-hub:{contract.dataset_id}:{contract.version}",
            "title": contract.title, "type": "object", "properties": properties,
            "required": [c.name for c in contract.columns], "additionalProperties": False}


def to_raw_ddl(contract: Contract) -> str:
    """DDL of the raw landing table: contract columns as text, plus load metadata. Tables
    from an older layout are upgraded by the hub (hub/migrations/raw_tables.py), not here."""
    table = f"{contract.raw_schema}.{contract.entity}"
    columns = [f'    "{c.name}" text' for c in contract.columns]
    columns += [f"    {name} {definition}" for name, definition in LOAD_COLUMNS]
    body = ",\n".join(columns)
    return "\n".join([f"create schema if not exists {contract.raw_schema};",
                      f"create table if not exists {table} (\n{body}\n);"])
