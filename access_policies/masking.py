"""Mask functions, one per kind a contract or grant may name (contracts.model.MASK_KINDS)."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

REDACTED = "[redacted]"
BUCKET_SIZE = 10


def redact(value: Any, key: bytes) -> Any:
    return None if value is None else REDACTED


def null(value: Any, key: bytes) -> Any:
    return None


def last4(value: Any, key: bytes) -> Any:
    if value is None:
        return None
    text = str(value)
    return "*" * max(len(text) - 4, 0) + text[-4:]


def pseudonym(value: Any, key: bytes) -> Any:
    # Keyed, so the same value links across rows and datasets but cannot be looked up
    # by hashing guesses without the hub's key.
    if value is None:
        return None
    return hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:16]


def year_only(value: Any, key: bytes) -> Any:
    return value.year if isinstance(value, (date, datetime)) else None


def bucket(value: Any, key: bytes) -> Any:
    """The value's range at one significant digit, at least BUCKET_SIZE wide: 14 -> 10-20,
    97974 -> 90000-100000, so a bucket hides about as much of a salary as of a count."""
    if value is None:
        return None
    number = float(value)
    width = max(BUCKET_SIZE, 10 ** math.floor(math.log10(abs(number)))) if number else BUCKET_SIZE
    low = (number // width) * width
    return f"{low:g}-{low + width:g}"


MASKS: dict[str, Callable[[Any, bytes], Any]] = {
    "redact": redact, "null": null, "last4": last4, "hash": pseudonym,
    "year_only": year_only, "bucket": bucket,
}


def mask_rows(rows: list[tuple], masks: list[str | None], key: bytes) -> list[tuple]:
    """Apply per-column masks (None: as stored) to every row."""
    functions = [MASKS[m] if m else None for m in masks]
    if not any(functions):
        return rows
    return [tuple(v if f is None else f(v, key) for f, v in zip(functions, row, strict=True))
            for row in rows]
