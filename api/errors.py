"""One error body for the whole API, the OAuth2 shape (RFC 6749 5.2 / RFC 6750 3):
`{"error": <code>, "error_description": <what to fix>, "request_id": <id>}`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(self, status: int, code: str, description: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description
        self.headers = headers or {}


def unauthorized(description: str) -> ApiError:
    challenge = ('Bearer realm="civic-data-hub", error="invalid_token", '
                 f'error_description="{description}"')
    return ApiError(401, "invalid_token", description, {"WWW-Authenticate": challenge})


def forbidden(description: str, code: str = "access_denied") -> ApiError:
    return ApiError(403, code, description)


def _body(request: Request, code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description,
            "request_id": getattr(request.state, "request_id", "")}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(request, exc.code, exc.description), exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse(_body(request, "invalid_request", f"{where}: {first['msg']}"), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return JSONResponse(_body(request, code, str(exc.detail)), exc.status_code)
