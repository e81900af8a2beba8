"""Dates and times in text, read with JDK DateTimeFormatter patterns (as ODCS writes them).

`CANDIDATES` are the layouts a sample is tried against, ISO first (ISO values need no
format). A pattern is written with two-letter fields (`MM/dd/yyyy`); `padded` turns a field
into one letter (`M/d/yyyy`) when the sample writes it without its leading zero, as JDK
parsing requires. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

ISO = {
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "timestamp": re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                            r"(?P<zone>Z|[+-]\d{2}(:?\d{2})?)?$"),
    "time": re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$"),
}
DATES = ["MM/dd/yyyy", "dd/MM/yyyy", "yyyy/MM/dd", "dd.MM.yyyy", "dd-MM-yyyy", "MM-dd-yyyy",
         "yyyy-MM-dd"]
TIMES = ["hh:mm:ss a", "hh:mm a", "HH:mm:ss.SSS", "HH:mm:ss", "HH:mm"]
# (logical type, pattern); None: ISO 8601, which needs no format.
CANDIDATES: list[tuple[str, str | None]] = (
    [("date", None), ("timestamp", None), ("time", None)]
    + [("date", d) for d in DATES[:-1]]
    + [("timestamp", f"{d} {t}") for d in DATES for t in TIMES]
    + [("time", t) for t in TIMES[:2]])
FIELDS = {"yyyy": r"(?P<y>\d{4})", "MM": r"(?P<M>\d{1,2})", "dd": r"(?P<d>\d{1,2})",
          "HH": r"(?P<H>\d{1,2})", "hh": r"(?P<h>\d{1,2})", "mm": r"(?P<m>\d{2})",
          "ss": r"(?P<s>\d{2})", "SSS": r"(?P<S>\d{1,9})", "a": r"(?P<a>[AaPp][Mm])"}
TOKEN = re.compile("|".join(sorted(FIELDS, key=len, reverse=True)))


def parses(logical: str, pattern: str | None, value: str) -> dict[str, str] | None:
    """The fields of `value` read with `pattern` (ISO when None), or None if it does not
    read as a real date or time that way."""
    if pattern is None:
        return _iso(logical, value)
    found = _regex(pattern).match(value)
    if found is None:
        return None
    fields = found.groupdict()
    return fields if _real(fields) else None


def zoned(values: Iterable[str]) -> bool:
    """Whether ISO timestamps carry a UTC offset."""
    return any((m := ISO["timestamp"].match(v)) and m["zone"] for v in values)


def padded(pattern: str, parsed: Iterable[dict[str, str]]) -> str:
    """One letter for each field the sample writes without its leading zero."""
    short = {k for fields in parsed for k in "MdHh" if len(fields.get(k) or "xx") == 1}
    for letter in sorted(short):
        pattern = pattern.replace(letter * 2, letter)
    return pattern


def swapped(pattern: str) -> str | None:
    """The pattern with day and month exchanged, when the layout allows both readings."""
    found = DAY_MONTH.match(pattern)
    if found is None:
        return None
    first, separator, second = found.groups()
    swap = {"M": "d", "d": "M"}
    return (swap[first[0]] * len(first) + separator + swap[second[0]] * len(second)
            + pattern[found.end():])


DAY_MONTH = re.compile(r"^(M{1,2}|d{1,2})([/-])(M{1,2}|d{1,2})(?=[/-]yyyy)")


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern:
    parts, at = [], 0
    for token in TOKEN.finditer(pattern):
        parts += [re.escape(pattern[at:token.start()].replace("'", "")), FIELDS[token[0]]]
        at = token.end()
    parts.append(re.escape(pattern[at:].replace("'", "")))
    return re.compile("^" + "".join(parts) + "$")


def _iso(logical: str, value: str) -> dict[str, str] | None:
    if not ISO[logical].match(value):
        return None
    if logical == "time":  # hh:mm[:ss[.fff]]
        second = int(value[6:8]) if len(value) >= 8 else 0
        return {} if int(value[:2]) < 24 and int(value[3:5]) < 60 and second < 60 else None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return {}


def _real(fields: dict[str, str | None]) -> bool:
    """Whether the fields make a real moment (no 31 February, no hour 13 PM)."""
    hour = int(fields.get("H") or 0)
    if fields.get("h"):
        twelve = int(fields["h"])
        if not 1 <= twelve <= 12:
            return False
        hour = twelve % 12 + (12 if (fields.get("a") or "").upper() == "PM" else 0)
    try:
        datetime(int(fields.get("y") or 2000), int(fields.get("M") or 1),
                 int(fields.get("d") or 1), hour, int(fields.get("m") or 0),
                 int(fields.get("s") or 0))
    except ValueError:
        return False
    return True
