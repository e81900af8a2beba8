"""The console's test rig: the real API server (uvicorn, a port of its own) over the test
warehouse, a person per role signed up with `hub users add`'s function, sign-in over plain
HTTP (the real PKCE flow), and Debian's Chromium for Playwright."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import psycopg
import pytest

from hub import users
from hub.settings import Settings
from tests.conftest import free_port, serving

ROLES = ("transport_analyst", "health_inspector", "public_works_data_admin",
         "public_works_engineer", "auditor")
INSTALL = "apt-get update && apt-get install -y chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@dataclass(frozen=True)
class Console:
    base: str
    app: object  # the served FastAPI app: its routes are swept
    people: dict[str, tuple[str, str]]  # role -> (username, password)
    url: str  # the warehouse


@contextmanager
def running_console(settings: Settings, url: str) -> Iterator[Console]:
    """`hub serve`'s app on a free port; the issuer (and so the console's redirect URI)
    follows the address, as `hub serve --port` does."""
    from api.main import create_app

    port = free_port()
    served = settings.model_copy(update={"api_port": port})
    app = create_app(served, url)
    with serving(app, port) as base:
        yield Console(base, app, _people(url), url)


def _people(url: str) -> dict[str, tuple[str, str]]:
    made = {}
    with psycopg.connect(url) as conn:
        for role in ROLES:
            name = f"{role.split('_')[0]}-{secrets.token_hex(3)}"
            made[role] = (name, users.add_user(conn, name, role))
    return made


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("name"):
            self.fields[found["name"]] = found.get("value") or ""


def form_fields(html: str) -> dict[str, str]:
    """The named inputs of a page's forms (hidden ones included), name -> value."""
    parser = _Inputs()
    parser.feed(html)
    return parser.fields


def signed_in(console: Console, role: str) -> httpx.Client:
    """An HTTP client holding a console session of `role`'s person (real PKCE sign-in)."""
    client = httpx.Client(base_url=console.base, follow_redirects=True, timeout=30)
    sign_in_over(client, *console.people[role])
    return client


def sign_in_over(client: httpx.Client, user: str, password: str) -> httpx.Response:
    """Sign in through the console's real flow (PKCE, the sign-in form, the callback); the
    answer it landed on, whose history holds the callback that set the session cookie."""
    form = client.get("/console/signin")
    assert form.status_code == 200 and "Sign in" in form.text, form.text
    fields = form_fields(form.text) | {"username": user, "password": password}
    landed = client.post("/oauth/authorize", data=fields)
    assert landed.status_code == 200 and "hub_console" in client.cookies, landed.text[:500]
    return landed


def chromium() -> str | None:
    """Debian's Chromium; else Playwright's own build, installed now if it can be (None);
    else a failure naming the one command to run. Never a skip."""
    found = shutil.which("chromium")
    if found is not None:
        return found
    try:
        done = subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"],
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        done = None
    if done is not None and done.returncode == 0:
        return None
    pytest.fail(f"the console's browser tests need Chromium: run `{INSTALL}` (as root), "
                "then run the tests again")
