"""Secret key files under HUB_HOME/keys: created once, 0600, safe when processes race."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


class ExposedKeyFile(Exception):
    """A key file others can read: the hub refuses to use it (and so to start)."""


def check_private(path: Path) -> None:
    """Refuse a key file that its group or others may read or write (as ssh does)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ExposedKeyFile(f"key file {path} is readable by others (mode {mode:04o}): "
                             f"run `chmod 600 {path}`; the hub will not use it until then")


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's bytes, creating it with `make()` if missing.

    The content is written to a private temporary file first and published with a hard
    link, which fails if the name exists: a racing process (two API workers starting)
    never reads a half-written key, and the loser of the race reads the winner's key.
    """
    if path.exists():
        check_private(path)
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".new-")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(make())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        os.unlink(temp)
    return path.read_bytes()
