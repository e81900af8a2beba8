"""The hub's calendar: the one place that says what day it is.

Everything that compares a date against today (grant validity, access-request expiry,
contract deprecation, the transparency report, `hub policies test`) asks `today()` here, so
one setting, `HUB_CLOCK=YYYY-MM-DD`, fixes the day for a whole process and for the API
servers and commands it starts (they read the same environment). Unset: the real day in
UTC. Times of day (token expiry, authorization codes, ledger timestamps) stay real: a fixed
clock moves the calendar, not the seconds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

_fixed: date | None = None


def fix_today(day: date | None) -> None:
    """Make `today()` answer `day` from now on in this process; None: the real day again."""
    global _fixed
    _fixed = day


def today() -> date:
    return _fixed or datetime.now(UTC).date()


def fixed() -> date | None:
    """The fixed day, if one is set (recorded where a decision's day matters)."""
    return _fixed
