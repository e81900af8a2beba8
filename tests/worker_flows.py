"""A flow for tests/test_worker_stop.py: a run that lasts until the test lets it end."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow


@flow(name="wait-for-file")
def wait_for_file(path: str, seconds: float = 120) -> str:
    """Run until `path` exists (at most `seconds`: a guard against hanging)."""
    deadline = time.monotonic() + seconds
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in {seconds} s")
        time.sleep(0.1)
    return "released"
