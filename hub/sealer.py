"""Background sealing for `hub serve`: chain and sign new audit rows every few seconds."""

from __future__ import annotations

import logging
import threading

import psycopg

from hub.ledger import load_signing_key, seal
from hub.settings import Settings

log = logging.getLogger(__name__)


class Sealer:
    """A daemon thread running `ledger.seal`; writers never wait for it."""

    def __init__(self, warehouse_url: str, settings: Settings) -> None:
        self.url, self.interval = warehouse_url, settings.audit_seal_seconds
        self.key = load_signing_key(settings.keys_dir)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.seal_once()  # what was written up to shutdown is sealed too

    def seal_once(self) -> int:
        with psycopg.connect(self.url) as conn:
            return seal(conn, self.key)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.seal_once()
            except psycopg.Error:  # the next tick retries; nothing is lost, only delayed
                log.exception("audit sealing failed; retrying in %.1f s", self.interval)
