"""Refused requests on record, rate-limited in the log itself.

Every refused API request is audited, but a flood of refusals must not fill the disk: per
client and reason at most one record is written per second (`INTERVAL`). The first refusal
is written at once; the ones that follow within the second are counted in memory and
written as one record when the second ends (or folded into the next record, if that comes
first). Each record says how many refusals it stands for in `detail.count`, and keeps the
request ids of the first `KEPT_REQUEST_IDS` of them in `detail.request_ids`.

A caller varying the reason (a new column name in every probe) could still make a record
per request, so a client has at most `MAX_REASONS` reasons of its own in flight; beyond
that its refusals share one overflow record per second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hub.audit import AuditEvent

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds: at most one record per client and reason in each
KEPT_REQUEST_IDS = 20  # request ids kept per record (the count covers them all)
MAX_REASONS = 20  # distinct reasons per client in flight before they share one record
OVERFLOW = "(more distinct refusals than the log keeps apart)"

Key = tuple[str, str, int | None, str | None, str]
Writer = Callable[[AuditEvent], Awaitable[None]]


@dataclass
class _Slot:
    """One client's refusals for one reason: when its last record was written, and the
    refusals counted since."""

    written_at: float
    first: AuditEvent | None = None  # the first refusal not yet written
    count: int = 0
    request_ids: list[str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None

    def add(self, event: AuditEvent) -> None:
        self.first = self.first or event
        self.count += 1
        if event.request_id and len(self.request_ids) < KEPT_REQUEST_IDS:
            self.request_ids.append(event.request_id)

    def take(self) -> AuditEvent | None:
        """The record of the refusals counted so far (None if none), and start again."""
        if self.first is None:
            return None
        event = dataclasses.replace(self.first, detail={
            **self.first.detail, "count": self.count, "request_ids": self.request_ids})
        self.first, self.count, self.request_ids = None, 0, []
        return event


class RefusalLog:
    """Writes refusal records through `write` (GroupCommit.write in the API), at most one
    per client and reason per `interval` seconds, with the count of refusals each stands for.
    Runs on one event loop; `close` writes what is still counted."""

    def __init__(self, write: Writer, interval: float = INTERVAL) -> None:
        self.write, self.interval = write, interval
        self._slots: dict[Key, _Slot] = {}
        self._reasons: Counter[str] = Counter()  # slots per client
        self._flushing: set[asyncio.Task[None]] = set()

    async def refuse(self, event: AuditEvent) -> None:
        """Count one refusal; write its record now if none was written for its client and
        reason in the last interval (and wait for the commit), else leave it to the timer."""
        loop = asyncio.get_running_loop()
        key = self._key(event)
        if key[4] == OVERFLOW:  # its own reason stays on record; the count is shared
            event = dataclasses.replace(event, detail={**event.detail, "overflow": True})
        slot = self._slots.get(key)
        if slot is not None and loop.time() - slot.written_at < self.interval:
            slot.add(event)  # written when the interval ends
            return
        if slot is None:
            slot = self._slots[key] = _Slot(written_at=loop.time())
            self._reasons[key[0]] += 1
            slot.timer = loop.call_later(self.interval, self._due, key)
        slot.add(event)  # with any refusals the timer has not written yet
        slot.written_at = loop.time()
        await self.write(slot.take())

    async def close(self) -> None:
        """Write every refusal still counted; stop the timers."""
        pending = []
        for slot in self._slots.values():
            if slot.timer:
                slot.timer.cancel()
            pending.append(slot.take())
        self._slots.clear()
        self._reasons.clear()
        await asyncio.gather(*self._flushing, return_exceptions=True)
        for event in pending:
            if event is not None:
                await self._write_logged(event)

    def _key(self, event: AuditEvent) -> Key:
        who = event.client_id or event.source_address or "unknown"
        key = (who, event.kind, event.status_code, event.dataset, event.reason)
        if key not in self._slots and self._reasons[who] >= MAX_REASONS:
            return (who, event.kind, None, None, OVERFLOW)
        return key

    def _due(self, key: Key) -> None:
        """The timer of a slot: write what it counted, or forget it once it is idle."""
        slot = self._slots.get(key)
        if slot is None:
            return
        loop = asyncio.get_running_loop()
        left = slot.written_at + self.interval - loop.time()
        event = slot.take() if left <= 0 else None
        if left > 0:  # a record was written since this timer was set: wait out its second
            slot.timer = loop.call_later(left, self._due, key)
        elif event is None:  # a quiet second: nothing to write, nothing to remember
            del self._slots[key]
            self._reasons[key[0]] -= 1
            if not self._reasons[key[0]]:
                del self._reasons[key[0]]
        else:
            slot.written_at = loop.time()
            slot.timer = loop.call_later(self.interval, self._due, key)
            task = asyncio.create_task(self._write_logged(event))
            self._flushing.add(task)  # held, so the task is not collected mid-write
            task.add_done_callback(self._flushing.discard)

    async def _write_logged(self, event: AuditEvent) -> None:
        # No request waits on a timer's record, so a failure can only be logged, loudly.
        try:
            await self.write(event)
        except Exception:
            log.exception("could not write the audit record of %s refused requests (%s: %s)",
                          event.detail.get("count"), event.kind, event.reason)
