"""pg_dump and pg_restore of a version that fits the server: the machine's PostgreSQL
(`/usr/lib/postgresql/*/bin`, PATH) or the embedded server's own (`pgserver`)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import psycopg

from hub.backup import BackupError


def server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("show server_version_num").fetchone()[0]) // 10000


def find_tool(name: str, major: int) -> Path:
    """The `name` binary of the lowest major version >= the server's (a newer pg_dump can
    read an older server; an older one refuses a newer server)."""
    usable = sorted((v, p) for p in _candidates(name) if (v := _major(p)) and v >= major)
    if not usable:
        raise BackupError(f"no {name} for PostgreSQL {major} or newer was found: install "
                          f"postgresql-client-{major} (or put its bin folder on PATH)")
    return usable[0][1]


def _candidates(name: str) -> list[Path]:
    found = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))]
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:
        found.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    if on_path := shutil.which(name):
        found.append(Path(on_path))
    return [p for p in found if p.exists()]


@lru_cache
def _major(path: Path) -> int | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(match.group(1)) if match else None


def error_line(stderr: bytes) -> str:
    """The line of a tool's messages that says what went wrong (its last error)."""
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["no message"])[-1]
