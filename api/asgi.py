"""ASGI entry point for servers that start their own workers:
`uvicorn --factory api.asgi:app --workers 2` (settings from HUB_* variables)."""

from __future__ import annotations

from fastapi import FastAPI

from api.main import create_app
from hub.runtime import configure
from hub.settings import get_settings
from hub.warehouse import resolve_url


def app() -> FastAPI:
    settings = get_settings()
    configure(settings)
    return create_app(settings, resolve_url(settings))
