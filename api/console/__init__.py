"""The web console: the hub's pages for people, served by `hub serve` at `/`.

Server-rendered (Jinja2), no script of its own, every asset in this package. Each page
calls the function its API route runs, with the signed-in person's token, so the console
shows what the API would answer that person, masked the same way and audited the same way
(docs/console.md).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console import access, auditor, engineer, feedback, public, quality, session, staff
from api.console.web import HERE, SessionBridge, error_page

ROUTERS = (public.router, session.router, staff.router, access.router, auditor.router,
           engineer.router, quality.router, feedback.router)

__all__ = ["error_page", "install"]


def install(app: FastAPI) -> None:
    """Add the console's pages, its static files and the session bridge to the app."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_middleware(SessionBridge)
