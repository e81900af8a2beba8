"""Process environment for the tools the hub drives (Prefect, dbt, GX), set before import.

These tools read their settings from environment variables at import time, so the CLI and
the tests call `configure()` first. Values already set by the user are kept.
"""

from __future__ import annotations

import logging
import os
import warnings

from hub import clock
from hub.settings import Settings

QUIET_OFFLINE = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
}


def configure(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    clock.fix_today(settings.clock)
    prefect_home = settings.home / "prefect"
    # Prefect does not create a missing PREFECT_HOME; its server then never comes up.
    prefect_home.mkdir(exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(prefect_home.resolve()))
    for key, value in QUIET_OFFLINE.items():
        os.environ.setdefault(key, value)
    quiet_libraries()


def quiet_libraries() -> None:
    # pgserver asks platformdirs for a runtime dir; on servers XDG_RUNTIME_DIR is unset.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
