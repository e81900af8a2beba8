"""Where a pipeline pass's logs go: `HUB_HOME/logs/run-<time>.log`, not the terminal.

Prefect, dbt and the libraries under them log for their own developers; a department
engineer running `hub run` needs the summary and one line per problem. Their logs (and a
traceback, when the hub itself has a bug) go to the run's log file; `--verbose` shows
them on the terminal as well.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from hub.runtime import QUIET_OFFLINE
from hub.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def run_log(settings: Settings, verbose: bool) -> Iterator[Path]:
    """Log to a new file under HUB_HOME/logs for the duration; yields its path (created
    when the first line is written)."""
    path = settings.home.resolve() / "logs" / f"run-{datetime.now():%Y%m%d-%H%M%S-%f}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    _tools_env(verbose)
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect's handlers are in place before some are detached
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(FORMAT))
    detached = [] if verbose else _detach_consoles()
    # The file takes each console's place: a logger left with no handler at all would
    # print its warnings to stderr through logging's last resort.
    logging.getLogger().addHandler(handler)
    for logger in {logger for logger, _ in detached} - {logging.getLogger()}:
        logger.addHandler(handler)
    logging.captureWarnings(True)  # library warnings are log lines too
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        for logger in {logging.getLogger(), *(logger for logger, _ in detached)}:
            logger.removeHandler(handler)
        handler.close()
        for logger, console in detached:
            logger.addHandler(console)


def _tools_env(verbose: bool) -> None:
    """dbt and Prefect read these when they start (dbt on each invocation)."""
    if verbose:
        if os.environ.get("PREFECT_LOGGING_LEVEL") == QUIET_OFFLINE["PREFECT_LOGGING_LEVEL"]:
            os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"  # the flows' progress lines
    else:
        os.environ.setdefault("DBT_LOG_LEVEL", "none")  # dbt's console; its log file stays


def _detach_consoles() -> list[tuple[logging.Logger, logging.Handler]]:
    """Remove every handler writing to the terminal; return them to put back."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)]
    detached = []
    for logger in loggers:
        for handler in list(logger.handlers):
            if _console(handler):
                logger.removeHandler(handler)
                detached.append((logger, handler))
    return detached


def _console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return (isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)
            and stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__))
