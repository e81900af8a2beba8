"""Date and time formats: ODCS `logicalTypeOptions.format` (JDK DateTimeFormatter patterns)
translated to PostgreSQL's to_date / to_timestamp templates.

Each translation also gives the value's shape as an anchored regular expression. PostgreSQL's
parser is lenient (it ignores trailing text and reads `05/01/2024` through `YYYY/MM/DD`), so
a value is parsed only when it has the shape the pattern describes: JDK widths are strict
(`MM` is two digits, `M` one or two), and so is the shape.

Pure: no database here. Unsupported pattern letters are refused at lint with the letters
the hub does read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def translate(pattern: str) -> DateFormat:
    """The PostgreSQL template and value shape of a JDK DateTimeFormatter pattern."""
    if not pattern.strip():
        raise FormatError("is empty; write a pattern such as yyyy-MM-dd, or leave format out "
                          "for ISO 8601 values")
    pg, shape = [], []
    for kind, text in _tokens(pattern):
        if kind == "literal":
            pg.append(_pg_literal(text))
            shape.append("".join(_escape(ch) for ch in text))
        else:
            template, regex = _field(text[0], len(text))
            pg.append(template)
            shape.append(regex)
    return DateFormat("".join(pg), "^" + "".join(shape) + "$")


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
