"""The browser tests on a machine without Chromium: no `chromium` on PATH and Playwright's
own build impossible to fetch (its download host a closed local port, an empty browsers
folder), `chromium()` fails the test with one line naming the command to run. Never a skip.

Run in a pytest of its own (a subprocess), so this process's PATH is left as it is."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.console_support import INSTALL

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
from tests.console_support import chromium


def test_the_browser_is_found():
    chromium()
"""


def closed_port() -> int:
    """A local port nobody listens on (bound, then let go): a download from it fails fast."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_without_chromium_the_browser_tests_fail_naming_the_command(tmp_path):
    empty, browsers = tmp_path / "bin", tmp_path / "browsers"
    empty.mkdir()
    browsers.mkdir()
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "PATH": str(empty), "PYTHONPATH": str(ROOT),
           "PLAYWRIGHT_DOWNLOAD_HOST": f"http://127.0.0.1:{closed_port()}",
           "PLAYWRIGHT_BROWSERS_PATH": str(browsers)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=line",
         str(tmp_path / "test_probe.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # failed: not passed, not skipped, not an error
    assert "1 failed" in out and "skipped" not in out, out
    message = (f"Failed: the console's browser tests need Chromium: run `{INSTALL}` (as"
               " root), then run the tests again")
    assert out.splitlines().count(f"E   {message}") == 1, out  # one line, naming the command
    assert "Traceback" not in out and "def chromium" not in out, out
    # Playwright's own install was tried and got no browser (only its bookkeeping, .links)
    assert (browsers / ".links").is_dir()  # the install ran here...
    assert [p.name for p in browsers.iterdir() if not p.name.startswith(".")] == []  # in vain
