"""Mask functions, one per kind a contract or grant may name (contracts.model.MASK_KINDS)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
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
    inner, outer = _pads(key)
    digest = inner.copy()
    digest.update(str(value).encode())
    mac = outer.copy()
    mac.update(digest.digest())
    return mac.hexdigest()[:16]


@lru_cache(maxsize=8)
def _pads(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256 (RFC 2104) of the key, as two keyed SHA-256 states: every pseudonym on a
    page runs this, and copying these two costs less than the hmac module's glue. The
    result is byte for byte hmac.new(key, value, sha256) (tests/test_access_policies.py)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)),
            hashlib.sha256(bytes(b ^ 0x5C for b in key)))


_BLOCK = 64  # SHA-256's block size


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


def as_records(names: list[str], rows: list[tuple], masks: list[str | None],
               key: bytes) -> list[dict[str, Any]]:
    """Rows as records (column name -> value), each masked column replaced by its mask.

    A row may carry values past `names` (the API's rows end with their version); they are
    left out. Records are built once and masked column by column: every page served runs
    this, so no row is copied twice."""
    records = [dict(zip(names, row, strict=False)) for row in rows]
    for name, mask in zip(names, masks, strict=True):
        if mask:
            function = MASKS[mask]
            for record in records:
                record[name] = function(record[name], key)
    return records
