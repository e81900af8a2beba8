"""A department's REST API on loopback, serving a bundled JSON sample as is.

The demo stands it up in place of the transport department's open-data API, and the
tests use it as a real HTTP server: Socrata-style `$limit`/`$offset`/`$where`, or page,
cursor and Link-header pagination, an API key or OAuth2 client credentials, and injected
faults: 429/503 answers to exercise retries, a 302 redirect, and `Link` headers pointing at
another host (the connector must follow neither to an address the guard never checked).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SINCE = re.compile(r"^(?P<field>\w+) > '(?P<value>[^']*)'$")


@dataclass
class DemoApi:
    records: list[dict[str, Any]]
    order_by: str
    api_key: str | None = None
    client: tuple[str, str] | None = None  # OAuth2 client id and secret, when required
    fail_next: list[int] = field(default_factory=list)  # statuses to answer first
    fail_after: int | None = None  # answer 500 once this many pages were served
    redirect_to: str | None = None  # answer every GET with a 302 to this URL
    link_base: str = ""  # where `Link: rel="next"` points: "" this server, or another's base
    requests: int = 0
    tokens: set[str] = field(default_factory=set)

    @classmethod
    def from_file(cls, path: Path, order_by: str, **options: Any) -> DemoApi:
        return cls(json.loads(path.read_text()), order_by, **options)

    def start(self, host: str = "127.0.0.1") -> tuple[str, ThreadingHTTPServer]:
        """Serve on a free port of `host` (a loopback address) in a daemon thread; return
        the base URL and the server (`shutdown()` stops it)."""
        server = ThreadingHTTPServer((host, 0), _handler(self))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://{host}:{server.server_address[1]}", server

    def page(self, query: dict[str, str]) -> list[dict[str, Any]]:
        found = sorted(self.records, key=lambda r: str(r.get(self.order_by, "")))
        since = SINCE.match(query.get("$where", ""))
        if since:
            found = [r for r in found if str(r.get(since["field"], "")) > since["value"]]
        return found


def _handler(api: DemoApi) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to one stand-in API (the server makes one per request)."""
    return type("Handler", (_Handler,), {"api": api})


class _Handler(BaseHTTPRequestHandler):
    api: DemoApi

    def log_message(self, *args: Any) -> None:  # quiet: tests and demo own the console
        pass

    def do_POST(self) -> None:  # OAuth2 token endpoint (client credentials)
        length = int(self.headers.get("content-length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        given = (form.get("client_id", [""])[0], form.get("client_secret", [""])[0])
        if self.api.client is None or given != self.api.client:
            return self._send(401, {"error": "invalid_client"})
        token = secrets.token_urlsafe(16)
        self.api.tokens.add(token)
        self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 60})

    def do_GET(self) -> None:
        self.api.requests += 1
        if self.api.fail_next:
            status = self.api.fail_next.pop(0)
            return self._send(status, {"error": "try later"}, {"Retry-After": "1"})
        if self.api.fail_after is not None and self.api.requests > self.api.fail_after:
            return self._send(500, {"error": "the department's API is down"})
        if self.api.redirect_to is not None:
            return self._send(302, {"moved": self.api.redirect_to},
                              {"Location": self.api.redirect_to})
        if not self._authorised():
            return self._send(401, {"error": "unauthorised"})
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        style = parts.path.strip("/").split("/")[0]
        self._paged(style, self.api.page(query), query)

    def _authorised(self) -> bool:
        if self.api.api_key is not None:
            return self.headers.get("X-Api-Key") == self.api.api_key
        if self.api.client is not None:
            return self.headers.get("Authorization", "")[7:] in self.api.tokens
        return True

    def _paged(self, style: str, found: list, query: dict[str, str]) -> None:
        limit = int(query.get("$limit") or query.get("limit") or 1000)
        if style == "page" or style == "link":
            start = (int(query.get("page") or 1) - 1) * limit
        elif style == "cursor":
            start = int(query.get("cursor") or 0)
        else:
            start = int(query.get("$offset") or 0)
        chunk = found[start:start + limit]
        more = start + limit < len(found)
        if style == "cursor":
            return self._send(200, {"data": chunk, "next_cursor": str(start + limit)
                                    if more else None})
        headers = {}
        if style == "link" and more:
            page = int(query.get("page") or 1) + 1
            headers["Link"] = (f'<{self.api.link_base}/link/data.json?limit={limit}'
                               f'&page={page}>; rel="next"')
        self._send(200, chunk, headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
