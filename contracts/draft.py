"""A draft ODCS v3 contract from a sample of a dataset (`hub contracts init`). Pure.

The draft is what the sample supports: inferred types and date formats, `required` where no
value is missing, a key unique in the sample, small sets of values offered as validValues,
and `hubSource` for the kind of source it was read from. Every guess the sample cannot
settle is returned as a note for the department engineer to check. The draft lints clean.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from contracts.infer import Profile, profile
from contracts.keys import candidate_key
from contracts.lint import IDENTIFIER, load_contract_text

MAX_VALID_VALUES = 15  # a string column with at most this many values offers them
# Column names that hold people's data: drafted personal and masked until a grant unmasks.
PERSONAL = frozenset({"name", "full_name", "first_name", "last_name", "surname", "email",
                      "email_address", "phone", "phone_number", "address", "home_address",
                      "street_address", "date_of_birth", "birth_date", "ssn"})
CURSOR_NAME = re.compile(r"(updat|modif|chang|last)")
FORMATS = {"csv": "CSV", "jsonl": "JSON lines", "ndjson": "JSON lines", "json": "JSON",
           "parquet": "Parquet"}


class DraftError(ValueError):
    """The sample cannot make a contract; the message says why and what to give instead."""


@dataclass(frozen=True)
class SourceSpec:
    """Where the sample came from, as hubSource will say it."""

    kind: str  # files | sql
    location: str  # the file, or the database URL without its password
    extension: str = ""  # files: csv, jsonl, ndjson, json or parquet
    table: str = ""  # sql: the source table
    sample: str | None = None  # files: the bundled sample folder (data/<sample>)


@dataclass
class Draft:
    text: str
    notes: list[str] = field(default_factory=list)


def draft_contract(dataset_id: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   source: SourceSpec) -> Draft:
    """The draft contract's YAML, and what it is unsure of."""
    domain, entity = _split(dataset_id)
    if not headers or not rows:
        raise DraftError(f"{source.location}: no rows to learn from; give a sample with a "
                         "header and some rows")
    profiles = profile(headers, rows)
    key, notes = candidate_key(profiles, rows)
    notes = [n for p in profiles for n in p.type.notes] + notes
    properties = [_property(p, key, len(rows)) for p in profiles]
    hub_source, source_notes = _hub_source(domain, entity, profiles, key, source)
    document = _document(domain, entity, source, properties, hub_source,
                         [profiles[i].name for i in key])
    text = _render(dataset_id, source, document)
    load_contract_text(text, f"draft of {dataset_id}")  # it lints, or this is a bug
    return Draft(text, notes + _review_notes(properties) + source_notes)


def _split(dataset_id: str) -> tuple[str, str]:
    domain, _, entity = dataset_id.partition(".")
    if not (IDENTIFIER.match(domain) and IDENTIFIER.match(entity)):
        raise DraftError(f"{dataset_id!r}: write the dataset as <department>.<table> in "
                         "lowercase, e.g. health.restaurant_inspections")
    return domain, entity


def _property(p: Profile, key: list[int], rows: int) -> dict[str, Any]:
    prop: dict[str, Any] = {"name": p.name, "logicalType": p.type.logical_type,
                            "physicalType": p.type.physical_type}
    if p.type.format:
        prop["logicalTypeOptions"] = {"format": p.type.format}
    keyed = p.index in key
    if keyed:
        prop |= {"primaryKey": True, "primaryKeyPosition": key.index(p.index) + 1}
        prop |= {"unique": True} if len(key) == 1 else {}
    prop["required"] = keyed or p.nulls == 0
    prop["classification"] = "personal" if p.name in PERSONAL else "public"
    if p.name in PERSONAL:
        mask = "redact" if p.type.logical_type == "string" else "null"
        prop["customProperties"] = [{"property": "hubMask", "value": mask}]
    elif not keyed and _offers_values(p, rows):
        prop["quality"] = [{"metric": "invalidValues",
                            "arguments": {"validValues": sorted(p.values)},
                            "mustBe": 0, "dimension": "conformity"}]
    return prop


def _offers_values(p: Profile, rows: int) -> bool:
    """A small set of text values, each seen several times: likely a closed list."""
    present = rows - p.nulls
    return (p.type.logical_type == "string" and 0 < p.distinct <= MAX_VALID_VALUES
            and p.distinct * 5 <= present)


def _hub_source(domain: str, entity: str, profiles: Sequence[Profile], key: list[int],
                source: SourceSpec) -> tuple[dict[str, Any], list[str]]:
    if source.kind == "sql":
        return _sql_source(domain, profiles, key, source)
    env = f"HUB_SOURCE_{domain}_{entity}_DROP".upper()
    value: dict[str, Any] = {"kind": "files", "connectionEnv": env,
                             "pattern": f"*.{source.extension}", "batchSize": 5000}
    if source.sample:
        value["sample"] = source.sample
    renamed = {p.name: p.source for p in profiles if p.name != p.source}
    if renamed:
        value["columns"] = renamed
    stand_in = (f" (with HUB_DEMO_SOURCES on, the bundled sample {source.sample} stands in)"
                if source.sample else "")
    what = FORMATS.get(source.extension, source.extension)
    return value, [f"hubSource: set {env} to the folder the department drops its {what} "
                   f"files in{stand_in}"]


def _sql_source(domain: str, profiles: Sequence[Profile], key: list[int],
                source: SourceSpec) -> tuple[dict[str, Any], list[str]]:
    env = f"HUB_SOURCE_{domain}_URL".upper()
    cursor, notes = _cursor(profiles, key)
    notes += [f"{p.source}: the sql source reads columns by their contract names, and this "
              f"one is {p.name}: rename it at the source (or in a view)"
              for p in profiles if p.name != p.source]
    value = {"kind": "sql", "connectionEnv": env, "table": source.table,
             "cursorColumn": cursor, "batchSize": 5000}
    return value, notes + [f"hubSource: set {env} to the department database's SQLAlchemy "
                           "URL (the contract only names the variable)"]


def _cursor(profiles: Sequence[Profile], key: list[int]) -> tuple[str, list[str]]:
    """The column rows are read in order of, incrementally: the time a row last changed."""
    moments = [p for p in profiles if p.type.logical_type in ("timestamp", "date")]
    changed = [p for p in moments if CURSOR_NAME.search(p.name)]
    if changed:
        return changed[0].name, []
    if moments:
        return moments[0].name, [f"cursorColumn: {moments[0].name} chosen; the hub reads rows "
                                 "whose cursor moved past the last one read: name the column "
                                 "that changes when a row does"]
    fallback = profiles[key[0]].name
    return fallback, [f"cursorColumn: no date or time column; {fallback} (the key) chosen: "
                      "rows changed in place will not be read again"]


def _document(domain: str, entity: str, source: SourceSpec, properties: list[dict],
              hub_source: dict[str, Any], key: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": str(uuid.uuid4()),
        "name": entity.replace("_", " ").capitalize(), "version": "1.0.0", "status": "active",
        "domain": domain, "dataProduct": entity,
        "description": {"purpose": f"Drafted from {source.location}: say what the dataset is "
                                   "for and who relies on it."},
        "team": {"name": f"{domain.replace('_', '-')}-data"},
        "customProperties": [{"property": "hubSource", "value": hub_source}],
        "schema": [{"name": entity, "physicalType": "table",
                    "dataGranularityDescription": f"One row per {', '.join(key)}.",
                    "quality": [{"metric": "rowCount", "mustBeGreaterThan": 0}],
                    "properties": properties}],
    }


def _render(dataset_id: str, source: SourceSpec, document: dict[str, Any]) -> str:
    header = (f"# Draft data contract for {dataset_id}, made by `hub contracts init` from\n"
              f"# {source.location}.\n# Review it: the notes printed with it say what was "
              "guessed.\n")
    return header + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def _review_notes(properties: list[dict]) -> list[str]:
    offered = [p["name"] for p in properties if "quality" in p]
    personal = [p["name"] for p in properties if p["classification"] == "personal"]
    notes = ["classification: every column is drafted public"
             + (f" but {', '.join(personal)} (personal, masked)" if personal else "")
             + ": mark other personal data personal, with a hubMask"]
    if offered:
        notes.append(f"validValues offered from the sample for {', '.join(offered)}: a value "
                     "outside them is quarantined; drop the rule where the list is open")
    return notes
