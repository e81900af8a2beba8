"""Per-client rate limits: a token bucket per client id (or address), in each API worker's
memory.

With N workers a client may get up to N times the rate in the worst case; the limit is a
guard against runaway scripts, not an accounting tool.
"""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    """`per_minute` requests a minute, in bursts of as many; `window` other than 60 s makes
    it that many per window (residents' feedback: a few an hour per address)."""

    def __init__(self, per_minute: int, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.rate = per_minute / window  # tokens per second
        self.capacity = float(per_minute)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def retry_after(self, client_id: str) -> int | None:
        """Take one request's token; None if allowed, else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(client_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1:
                if len(self._buckets) >= self.max_keys:
                    self._forget_full(now)
                self._buckets[client_id] = (tokens - 1, now)
                return None
            self._buckets[client_id] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))

    def _forget_full(self, now: float) -> None:
        # Keyed by address, the buckets would grow with every address ever seen: drop those
        # refilled by now, which a new request would find full anyway.
        self._buckets = {k: (tokens, at) for k, (tokens, at) in self._buckets.items()
                         if tokens + (now - at) * self.rate < self.capacity}
