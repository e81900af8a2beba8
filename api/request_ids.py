"""Every request gets its id before anything can fail, and every failure the one error body.

The id (the caller's `X-Request-Id`, or a new one) used to be set by a route dependency:
an error raised before it ran (no token on a scoped route, an unknown path, a wrong
method) answered with an empty `request_id`. Set here, first, it is in every error body
and in the audit record of the same request. An exception no handler knows becomes a 500
in the one error shape, with the id to quote, instead of a plain-text page.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class RequestIds:
    """Pure ASGI middleware: no per-request task or body buffering (streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = given_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            # Logged with its id: the caller quotes the id, the operator finds the cause.
            log.exception("request %s failed", rid)
            if started:  # headers are gone: nothing left to answer with
                raise
            await _server_error(send, rid)


def given_id(scope: Scope) -> str | None:
    """The caller's X-Request-Id header, if it sent one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and value:
            return value.decode("latin-1")
    return None


async def _server_error(send: Send, rid: str) -> None:
    body: dict[str, Any] = {
        "error": "server_error",
        "error_description": "the hub could not answer this request; try again, and if it "
                             f"keeps failing quote request_id {rid} to the hub's operators",
        "request_id": rid}
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
