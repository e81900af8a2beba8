"""Served over TLS (`hub serve --ssl-certfile/--ssl-keyfile`): every response tells browsers
to use https only (HSTS), and every cookie is marked Secure, so none travels in clear."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def secure_cookie(value: bytes) -> bytes:
    attributes = {part.strip().lower() for part in value.split(b";")[1:]}
    return value if b"secure" in attributes else value + b"; Secure"


class TransportSecurity:
    """Pure ASGI middleware (no buffering of streamed bodies): rewrites response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, secure_cookie(v) if k.lower() == b"set-cookie" else v)
                           for k, v in message.get("headers", [])]
                message = {**message, "headers": [*headers, HSTS]}
            await send(message)

        await self.app(scope, receive, send_secured)
