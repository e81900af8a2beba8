"""Failed sign-ins, counted per user and per address, so that passwords cannot be guessed
at the speed of the server.

After `per_user` failures for one username, or `per_address` from one address, within
`window` seconds, further attempts are refused without checking the password until the
oldest failure leaves the window. Counts are per API worker (memory only): with N workers
a guesser gets at most N times the limit, still far too few tries to matter.
"""

from __future__ import annotations

import math
import time
from collections import deque


class SignInThrottle:
    def __init__(self, per_user: int, per_address: int, window: float) -> None:
        self.per_user, self.per_address, self.window = per_user, per_address, window
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def wait(self, username: str, address: str | None) -> int | None:
        """Seconds until this user may try again from this address, or None: try now."""
        now = time.monotonic()
        waits = [self._wait(("user", username), self.per_user, now),
                 self._wait(("address", address or "?"), self.per_address, now)]
        found = [w for w in waits if w is not None]
        return max(found) if found else None

    def failed(self, username: str, address: str | None) -> None:
        now = time.monotonic()
        for key in (("user", username), ("address", address or "?")):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        # The person knows the password: the user's count starts over (the address's does
        # not, so one right password cannot unlock guessing at other users).
        self._failures.pop(("user", username), None)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> int | None:
        times = self._failures.get(key)
        if not times:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]  # memory stays bounded by recent failures
            return None
        if len(times) < limit:
            return None
        return max(1, math.ceil(self.window - (now - times[-limit])))
