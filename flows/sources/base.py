"""What every source connector yields, and the schema-drift check they all share.

Connectors are plain generators with no Prefect code: each takes the last committed
position and yields `Batch`es of rows in the contract's column order. The loader commits a
batch's rows, its load record and its new position in one transaction, then calls
`acknowledge` (a broker's ack, a file's manifest entry is already in that transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


class SchemaDrift(ValueError):
    """The source no longer matches the contract; nothing was loaded."""


class SourceError(RuntimeError):
    """The source answered in a way the hub cannot use; the message says how."""


@dataclass(frozen=True, order=True)
class Cursor:
    """Position after the last committed row: its cursor value and its key (as text; a
    composite key's first column in `key`, the others in `key_rest`). Cursors compare as
    rows are ordered: by value, then key column by key column."""

    value: str
    key: str
    key_rest: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key, *self.key_rest)

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"value": self.value, "key": self.key}
        if self.key_rest:
            found["key_rest"] = list(self.key_rest)
        return found

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Cursor | None:
        if not data:
            return None
        return cls(data["value"], data["key"], tuple(data.get("key_rest", ())))

    @classmethod
    def of(cls, value: str, keys: Sequence[str]) -> Cursor:
        return cls(value, keys[0], tuple(keys[1:]))


def key_columns(key_column: str | Sequence[str]) -> list[str]:
    """The key column, or the columns of a composite key, as a list."""
    return [key_column] if isinstance(key_column, str) else list(key_column)


@dataclass
class Batch:
    rows: list[tuple[Any, ...]]
    cursor: Cursor | None = None  # where the next read resumes once this batch is committed
    file: dict[str, Any] | None = None  # manifest entry (path, sha256, rows done) of a file
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (payload, why) unreadable
    # Rows already in COPY text format (PostgreSQL sources), in chunks as they arrive;
    # `cursor` and `copy_rows` are set once they have all been read.
    copy_text: Iterable[bytes] | None = None
    copy_rows: int = 0
    acknowledge: Callable[[], None] | None = field(default=None, repr=False)


def check_drift(where: str, actual: Sequence[str], expected: Sequence[str],
                types: dict[str, tuple[str, str]] | None = None) -> None:
    """Stop before loading when the source's fields differ from what the contract maps.

    `types` optionally gives, per expected field, (type in the source, type the contract
    wants) for fields whose source type cannot hold the contract's values.
    """
    problems = drift_problems(actual, expected)
    problems += [f"column {name!r} is {have} in the source; the contract expects {want}: "
                 "retyped? change the contract (with a major version) or the source"
                 for name, (have, want) in (types or {}).items()]
    if problems:
        raise SchemaDrift(f"{where}: " + "; ".join(problems))


# Which source type families can hold each contract logical type's values. Text holds
# anything for a string column and Y/N flags for a boolean one; a numeric or temporal column
# that became text in the source is drift: its values may no longer cast.
HOLDS = {
    "string": {"text", "integer", "number", "boolean", "date", "timestamp", "time", "other"},
    "integer": {"integer"}, "number": {"integer", "number"},
    "boolean": {"boolean", "text", "integer"},  # Y/N flags, MariaDB's tinyint(1)
    "date": {"date", "timestamp"}, "timestamp": {"timestamp", "date"}, "time": {"time"},
}
PG_FAMILIES = (("timestamp", "timestamp"), ("date", "date"), ("time", "time"),
               ("bool", "boolean"), ("int", "integer"), ("bigint", "integer"),
               ("smallint", "integer"), ("serial", "integer"), ("bigserial", "integer"),
               ("numeric", "number"), ("decimal", "number"), ("double", "number"),
               ("real", "number"), ("float", "number"), ("char", "text"), ("text", "text"))


def pg_family(type_name: str) -> str:
    """`timestamp without time zone` -> timestamp, `character varying(20)` -> text..."""
    name = type_name.lower()
    return next((family for prefix, family in PG_FAMILIES if name.startswith(prefix)), "other")


def retyped(source: dict[str, str], wanted: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{column: (family in the source, logical type wanted)} for columns that drifted."""
    return {name: (source[name], kind) for name, kind in wanted.items()
            if name in source and source[name] not in HOLDS.get(kind, {source[name]})}


def drift_problems(actual: Sequence[str], expected: Sequence[str]) -> list[str]:
    added = [c for c in actual if c not in expected]
    removed = [c for c in expected if c not in actual]
    problems = []
    for name in removed:
        near = [a for a in added if _norm(a) == _norm(name)]
        if near:
            problems.append(f"column {name!r} is missing; the source has {near[0]!r} "
                            "(spacing or case differs): map that exact name in hubSource.columns")
            added.remove(near[0])
        elif len(removed) == 1 and len(added) == 1:
            problems.append(f"column {name!r} is missing and {added[0]!r} is new: renamed? "
                            "map it in hubSource.columns or update the contract")
            added.clear()
        else:
            problems.append(f"column {name!r} was removed from the source; the contract "
                            "expects it")
    problems += [f"column {c!r} appeared in the source; the contract does not list it"
                 for c in added]
    return problems


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())
