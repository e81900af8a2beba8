"""Key files: created once with mode 0600, and one winner when processes race."""

from __future__ import annotations

import stat
from concurrent.futures import ProcessPoolExecutor

from hub.keyfiles import read_or_create


def _create(path_text: str) -> bytes:
    import os
    from pathlib import Path

    return read_or_create(Path(path_text), lambda: os.urandom(32))


def test_key_file_is_private_and_kept(tmp_path):
    path = tmp_path / "keys" / "k"
    first = _create(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _create(str(path)) == first and len(first) == 32


def test_racing_processes_all_get_the_same_key(tmp_path):
    path = str(tmp_path / "k")
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = list(pool.map(_create, [path] * 16))
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind
