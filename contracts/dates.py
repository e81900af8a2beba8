"""Dates and times in text, read with JDK DateTimeFormatter patterns (as ODCS writes them in
`logicalTypeOptions.format`).

One reading of a pattern serves two uses:
- the warehouse: `translate` gives PostgreSQL's to_date / to_timestamp template and the
  value's shape as an anchored regular expression. PostgreSQL's parser is lenient (it ignores
  trailing text and reads `05/01/2024` through `YYYY/MM/DD`), so a value is parsed only when
  it has the shape the pattern describes: JDK widths are strict (`MM` is two digits, `M` one
  or two), and so is the shape. Unsupported pattern letters are refused at lint with the
  letters the hub does read.
- `hub contracts init`: `CANDIDATES` are the layouts a sample is tried against, ISO first
  (ISO values need no format). A candidate is written with two-letter fields (`MM/dd/yyyy`)
  and tried leniently (as `M/d/yyyy`); `padded` keeps one letter for a field the sample
  writes without its leading zero, as JDK parsing requires.

Pure: no database here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

SUPPORTED = ("y (year), M (month), d (day), D (day of year), H (hour 0-23), h (hour 1-12), "
             "m (minute), s (second), S (fraction), a (AM/PM), E (day name), Z or xx "
             "(+0100), xxx (+01:00), and literal text in single quotes ('T')")
# Letters JDK reserves that the hub cannot read, named so the message says what they are.
UNSUPPORTED = {
    "G": "era", "Q": "quarter", "q": "quarter", "w": "week of year", "W": "week of month",
    "Y": "week-based year", "e": "localized day of week", "c": "localized day of week",
    "F": "aligned week of month", "k": "hour 1-24", "K": "hour 0-11", "n": "nanosecond",
    "N": "nano of day", "A": "milli of day", "V": "time-zone id", "z": "time-zone name",
    "O": "localized offset", "X": "offset with Z for zero", "v": "generic time-zone name",
    "p": "pad modifier", "B": "period of day", "g": "modified Julian day",
}
# PostgreSQL reads these between fields as separators; any other literal is quoted.
PLAIN = set(" /-:.,_;")
REGEX_SPECIAL = set("\\.^$*+?()[]{}|")


class FormatError(ValueError):
    """A pattern the hub cannot translate; the message says which letters it reads."""


@dataclass(frozen=True)
class DateFormat:
    pg: str  # PostgreSQL template, e.g. DD/MM/YYYY
    shape: str  # anchored regular expression a value must match, e.g. ^\d{2}/\d{2}/\d{4}$
    # The shape with a named group per numeric field (and AM/PM), for Python's re only:
    # PostgreSQL's regular expressions have no named groups.
    fields: str = ""


def translate(pattern: str) -> DateFormat:
    """The PostgreSQL template and value shape of a JDK DateTimeFormatter pattern."""
    if not pattern.strip():
        raise FormatError("is empty; write a pattern such as yyyy-MM-dd, or leave format out "
                          "for ISO 8601 values")
    pg, shape, named = [], [], []
    for kind, text in _tokens(pattern):
        if kind == "literal":
            pg.append(_pg_literal(text))
            shape.append("".join(_escape(ch) for ch in text))
            named.append(shape[-1])
        else:
            template, regex = _field(text[0], len(text))
            pg.append(template)
            shape.append(regex)
            named.append(_named(text, regex, named))
    return DateFormat("".join(pg), "^" + "".join(shape) + "$", "^" + "".join(named) + "$")


def _named(field: str, regex: str, so_far: list[str]) -> str:
    """`regex` as a named group when `parses` reads the field's value (the first time only:
    a group name is unique); else as it is."""
    group = GROUPS.get(field[0])
    if group is None or (group == "M" and len(field) > 2) or f"?P<{group}>" in "".join(so_far):
        return regex
    return f"(?P<{group}>{regex})"


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """(field, 'yyyy') and (literal, '/') runs, quotes resolved as JDK does ('' is ')."""
    tokens, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            text, i = _quoted(pattern, i)
            tokens.append(("literal", text))
        elif ch.isascii() and ch.isalpha():
            end = i
            while end < len(pattern) and pattern[end] == ch:
                end += 1
            tokens.append(("field", pattern[i:end]))
            i = end
        elif ch in "[]{}#":
            raise FormatError(f"{ch!r} (optional sections and reserved characters) is not "
                              f"supported; write one fixed pattern with {SUPPORTED}")
        else:
            tokens.append(("literal", ch))
            i += 1
    return tokens


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    """The text of a quoted literal starting at `start`, and the index after it."""
    if pattern.startswith("''", start):
        return "'", start + 2
    text, i = [], start + 1
    while i < len(pattern):
        if pattern.startswith("''", i):
            text.append("'")
            i += 2
        elif pattern[i] == "'":
            return "".join(text), i + 1
        else:
            text.append(pattern[i])
            i += 1
    raise FormatError("has a quote (') that is never closed; close it or write '' for a quote")


def _pg_literal(text: str) -> str:
    if any(ch in '"\\' for ch in text):
        raise FormatError('a double quote or backslash in the pattern is not supported; '
                          "write the pattern without it")
    return text if set(text) <= PLAIN else f'"{text}"'


def _escape(ch: str) -> str:
    return "\\" + ch if ch in REGEX_SPECIAL else ch


def _digits(count: int, most: int) -> str:
    """JDK widths: one letter reads 1 to `most` digits, more letters exactly that many."""
    return rf"\d{{1,{most}}}" if count == 1 else rf"\d{{{count}}}"


def _field(letter: str, count: int) -> tuple[str, str]:
    """(PostgreSQL template, regex) of one run of a pattern letter."""
    build = FIELDS.get(letter)
    found = build(count) if build else None
    if found is None:
        what = (f"{letter * count!r} ({count} letters {letter})" if build else
                f"pattern letter {letter!r} ({UNSUPPORTED.get(letter, 'not a pattern letter')})")
        raise FormatError(f"{what} is not supported; write {SUPPORTED}")
    return found


def _year(n: int) -> tuple[str, str] | None:
    if n > 4:
        return None
    return ("YY", r"\d{2}") if n == 2 else ("YYYY", r"\d{4}" if n == 4 else rf"\d{{{n},4}}")


def _month(n: int) -> tuple[str, str] | None:
    if n <= 2:
        return "MM", _digits(n, 2)
    return {3: ("Mon", "[A-Za-z]{3}"), 4: ("Month", "[A-Za-z]+")}.get(n)


def _two(template: str) -> Callable[[int], tuple[str, str] | None]:
    return lambda n: (template, _digits(n, 2)) if n <= 2 else None


def _fraction(n: int) -> tuple[str, str] | None:
    return (f"FF{n}", rf"\d{{{n}}}") if n <= 6 else None


def _offset(n: int) -> tuple[str, str] | None:
    return {2: ("TZHTZM", r"[+-]\d{4}"), 3: ("TZH:TZM", r"[+-]\d{2}:\d{2}")}.get(n)


FIELDS = {
    "y": _year, "u": _year, "M": _month, "L": _month, "d": _two("DD"),
    "D": lambda n: ("DDD", _digits(n, 3)) if n <= 3 else None,
    "H": _two("HH24"), "h": _two("HH12"), "m": _two("MI"), "s": _two("SS"), "S": _fraction,
    "a": lambda n: ("AM", "[AaPp][Mm]") if n == 1 else None,
    "E": lambda n: ("Dy", "[A-Za-z]{3}") if n <= 3 else ("Day", "[A-Za-z]+") if n == 4 else None,
    "Z": lambda n: _offset(2) if n <= 3 else _offset(3) if n == 5 else None,
    "x": lambda n: _offset(n) if n in (2, 3) else None,
}
# Letters whose values `parses` checks make a real moment, by the group name it reads.
GROUPS = {"y": "y", "u": "y", "M": "M", "L": "M", "d": "d", "H": "H", "h": "h", "m": "m",
          "s": "s", "a": "a"}


# ---------- inference of a pattern from sample values (hub contracts init)

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
    """The pattern read leniently, as JDK reads its one-letter form: a two-letter month,
    day or hour also matches a value without its leading zero (`padded` then says so).
    The candidates have no quoted text, so letters outside quotes are all there is."""
    lenient = re.sub(r"(?<![A-Za-z])(MM|dd|HH|hh)(?![A-Za-z])", lambda f: f[0][0], pattern)
    return re.compile(translate(lenient).fields)


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
