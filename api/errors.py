"""One error body for the whole API, the OAuth2 shape (RFC 6749 5.2 / RFC 6750 3):
`{"error": <code>, "error_description": <what to fix>, "request_id": <id>}`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    """Every error: an OAuth2 error code, what to fix, and the id to quote when asking."""

    error: str = Field(description="e.g. invalid_request, invalid_token, insufficient_scope,"
                       " access_denied, not_found, rate_limited")
    error_description: str = Field(description="what went wrong and what to change")
    request_id: str = Field(description="X-Request-Id, or the id the hub gave the request")


# The documented error responses of every route, built by the handlers below. Their body
# is JSON even where the route's own answer is HTML; api/openapi.py adds the ErrorBody
# schema. "4XX" also stands in for FastAPI's default 422: parameter errors are 400 here.
ERROR_SCHEMA = f"#/components/schemas/{ErrorBody.__name__}"


def _documented(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, **extra,
            "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA}}}}


RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": _documented("The request cannot be served as sent"),
    "5XX": _documented("The hub cannot serve it now"),
}
# ...and of the routes that need an access token.
TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _documented("No access token, or not a valid one", headers={"WWW-Authenticate": {
        "description": "Bearer challenge (RFC 6750 3)", "schema": {"type": "string"}}}),
    403: _documented("The token lacks the scope, or the role the grant, the route needs"),
    429: _documented("Too many requests from this client", headers={"Retry-After": {
        "description": "seconds to wait", "schema": {"type": "integer"}}}),
}


class ApiError(Exception):
    """An error answered with ErrorBody. `audit` is for the record of the refusal only:
    `reason` when the log should say more than the caller is told (the grant a dataset
    lacks, where the caller only hears "no grant"), and facts such as a probed column."""

    def __init__(self, status: int, code: str, description: str,
                 headers: dict[str, str] | None = None,
                 audit: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description
        self.headers = headers or {}
        self.audit = audit or {}


# Called with every error answered: the request, the error and its audit facts.
# api/refusals.py records the refusals; errors.py itself knows nothing of the audit log.
OnError = Callable[[Request, ApiError], Awaitable[None]]
# Optional: a page for the error instead of the JSON body (the console's pages for people,
# api/console/); None keeps the JSON body.
AsPage = Callable[[Request, ApiError], Response | None]


def unauthorized(description: str) -> ApiError:
    challenge = ('Bearer realm="civic-data-hub", error="invalid_token", '
                 f'error_description="{description}"')
    return ApiError(401, "invalid_token", description, {"WWW-Authenticate": challenge})


def forbidden(description: str, code: str = "access_denied") -> ApiError:
    return ApiError(403, code, description)


def ensure_request_id(request: Request) -> str:
    """The caller's X-Request-Id, or one made for the request; the same all through it."""
    if not getattr(request.state, "request_id", None):
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    return request.state.request_id


def _body(request: Request, code: str, description: str) -> dict[str, str]:
    # Errors raised before any route code ran (no route, bad parameters) get an id too.
    return {"error": code, "error_description": description,
            "request_id": ensure_request_id(request)}


def install(app: FastAPI, on_error: OnError | None = None, as_page: AsPage | None = None) -> None:
    async def answer(request: Request, error: ApiError) -> Response:
        body = _body(request, error.code, error.description)
        if on_error is not None:  # on record before the answer leaves
            await on_error(request, error)
        page = as_page(request, error) if as_page is not None else None
        return page or JSONResponse(body, error.status, error.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return await answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return await answer(request, ApiError(400, "invalid_request",
                                              f"{where}: {first['msg']}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        headers = dict(exc.headers or {})  # 405 carries Allow
        return await answer(request, ApiError(exc.status_code, code, str(exc.detail), headers))
