"""Guess each column of a sample: its contract name, type, date format and nulls. Pure.

Values come as the source gives them: text from CSV (an empty value is null, as in the raw
landing tables), or typed values from JSON, Parquet and databases. Dates and times that are
not ISO get an ODCS `logicalTypeOptions.format`, a JDK DateTimeFormatter pattern such as
`MM/dd/yyyy hh:mm:ss a`. What the guess is unsure of is said in `notes`.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from contracts import dates

# Words PostgreSQL reserves (pg_get_keywords catcode R and T): no column may be named so.
RESERVED_WORDS = (
    "all analyse analyze and any array as asc asymmetric both case cast check collate column "
    "constraint create current_catalog current_date current_role current_time "
    "current_timestamp current_user default deferrable desc distinct do else end except false "
    "fetch for foreign from grant group having in initially intersect into lateral leading "
    "limit localtime localtimestamp not null offset on only or order placing primary "
    "references returning select session_user some symmetric table then to trailing true "
    "union unique user using variadic when where window with authorization binary collation "
    "concurrently cross current_schema freeze full ilike inner is isnull join left like "
    "natural notnull outer overlaps right similar tablesample verbose")
RESERVED = frozenset(RESERVED_WORDS.split())
# Numeric-looking codes whose leading zeros and digits are not quantities.
CODE_NAME = re.compile(r"(zip|postal|phone|fax|code)")
BOOLEANS = frozenset({"true", "false", "t", "f", "yes", "no", "y", "n"})  # PostgreSQL reads these
INT32 = 2**31
# A few values that do not parse do not stop a guess (they will be quarantined).
MAX_MISFITS = 3


@dataclass(frozen=True)
class TypeGuess:
    logical_type: str
    physical_type: str
    format: str | None = None  # JDK pattern, for dates and times that are not ISO
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """What the sample says about one column."""

    index: int  # its position in the source's rows
    source: str  # its name in the source
    name: str  # its name in the contract
    type: TypeGuess
    nulls: int
    distinct: int
    values: Counter = field(compare=False, repr=False)  # non-null values as text, counted


def profile(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Profile]:
    """A profile per column, in the source's order."""
    names = column_names(headers)
    found = []
    for i, header in enumerate(headers):
        present = [row[i] for row in rows if i < len(row) and not _null(row[i])]
        values = Counter(_text(v) for v in present)
        guess = guess_type(names[i], present)
        found.append(Profile(i, header, names[i], guess, len(rows) - len(present),
                             len(values), values))
    return found


def column_names(headers: Sequence[str]) -> list[str]:
    """Lowercase identifiers for the headers: `SRNumber` -> sr_number, unique."""
    names: list[str] = []
    for header in headers:
        name = snake_case(header)
        name = f"{name}_value" if name in RESERVED else name
        base, n = name, 2
        while name in names:
            name, n = f"{base[:60]}_{n}", n + 1
        names.append(name)
    return names


def snake_case(header: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", str(header).strip())
    name = re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")
    if not name:
        return "unnamed"
    return (name if name[0].isalpha() else f"column_{name}")[:63]


def guess_type(name: str, values: Sequence[Any]) -> TypeGuess:
    """The contract type that holds the (non-null) values."""
    if not values:
        return TypeGuess("string", "text", notes=(f"{name}: empty in the whole sample; typed "
                                                  "as string",))
    if any(isinstance(v, str) for v in values):
        return _text_type(name, Counter(str(v).strip() for v in values))
    return _typed(name, values)


def _typed(name: str, values: Sequence[Any]) -> TypeGuess:
    """Values a JSON, Parquet or database source typed itself."""
    kinds = {_kind(v) for v in values}
    if kinds == {"boolean"}:
        return TypeGuess("boolean", "boolean")
    if kinds == {"integer"}:
        return TypeGuess("integer", _int_width(values))
    if kinds <= {"integer", "number"}:
        return TypeGuess("number", "double precision")
    if kinds == {"timestamp"}:
        zoned = any(v.tzinfo is not None for v in values)
        return TypeGuess("timestamp", "timestamp with time zone" if zoned else "timestamp")
    if kinds in ({"date"}, {"time"}):
        return TypeGuess(*kinds, *kinds)  # the PostgreSQL type has the same name
    return TypeGuess("string", "text", notes=(f"{name}: holds {', '.join(sorted(kinds))} "
                                              "values; typed as string",))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, datetime):
        return "timestamp"
    return {date: "date", time: "time"}.get(type(value), "other")


def _int_width(values: Any) -> str:
    return "integer" if all(-INT32 <= int(v) < INT32 for v in values) else "bigint"


# ---------- text values


INTEGER = re.compile(r"^[+-]?\d+$")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _text_type(name: str, values: Counter) -> TypeGuess:
    for guess in (_boolean, _integer, _number, _temporal):
        found = guess(name, values)
        if found is not None:
            return found
    return TypeGuess("string", "text")


def _boolean(name: str, values: Counter) -> TypeGuess | None:
    return TypeGuess("boolean", "boolean") if {v.lower() for v in values} <= BOOLEANS else None


def _integer(name: str, values: Counter) -> TypeGuess | None:
    fitted = _fitted(values, INTEGER.match)
    if fitted is None:
        return None
    misfits = fitted[0]
    numbers = [int(v) for v in values if v not in misfits]
    if CODE_NAME.search(name) or any(v.lstrip("+-").startswith("0") and len(v) > 1
                                     for v in values if v not in misfits):
        return TypeGuess("string", "text", notes=(f"{name}: digits kept as text (a code, or "
                                                  "leading zeros); type it integer if it is a "
                                                  "quantity",))
    return _with_misfits(TypeGuess("integer", _int_width(numbers)), name, misfits, values)


def _number(name: str, values: Counter) -> TypeGuess | None:
    fitted = _fitted(values, NUMBER.match)
    if fitted is None:
        return None
    return _with_misfits(TypeGuess("number", "double precision"), name, fitted[0], values)


def _fitted(values: Counter, fits: Callable[[str], Any]) -> tuple[list[str], list] | None:
    """(the values that do not fit, what `fits` found in the others), if the misfits are
    few enough to be defects (at most MAX_MISFITS distinct, 1% of the rows); else None.
    `fits` answers None for a value that does not fit."""
    misfits: list[str] = []
    found = []
    for value in values:
        result = fits(value)
        if result is not None:
            found.append(result)
            continue
        misfits.append(value)
        if len(misfits) > MAX_MISFITS or len(misfits) == len(values):
            return None
    if sum(values[v] for v in misfits) * 100 > sum(values.values()):
        return None
    return misfits, found


def _with_misfits(guess: TypeGuess, name: str, misfits: list[str],
                  values: Counter) -> TypeGuess:
    if not misfits:
        return guess
    rows = sum(values[v] for v in misfits)
    note = (f"{name}: typed {guess.logical_type}, but {rows} value(s) do not parse as such "
            f"({', '.join(repr(v) for v in misfits)}): those rows will be quarantined")
    return TypeGuess(guess.logical_type, guess.physical_type, guess.format,
                     guess.notes + (note,))


def _temporal(name: str, values: Counter) -> TypeGuess | None:
    for logical, pattern in dates.CANDIDATES:
        fitted = _fitted(values, functools.partial(dates.parses, logical, pattern))
        if fitted is not None:
            guess = _dated(name, logical, pattern, values, fitted[1])
            return _with_misfits(guess, name, fitted[0], values)
    return None


def _dated(name: str, logical: str, pattern: str | None, values: Counter,
           parsed: list[dict]) -> TypeGuess:
    physical = logical
    if logical == "timestamp" and pattern is None and dates.zoned(values):
        physical = "timestamp with time zone"
    if pattern is None:
        return TypeGuess(logical, physical)
    chosen, other, notes = dates.padded(pattern, parsed), dates.swapped(pattern), ()
    if other and all(dates.parses(logical, other, v) is not None for v in values):
        notes = (f"{name}: every value reads as {chosen} and as {dates.swapped(chosen)}; "
                 f"{chosen} chosen: check which the source means",)
    return TypeGuess(logical, physical, chosen, notes)


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else str(value)
