"""Notices for the caller's department: failed checks on its datasets, breaking changes
to datasets it uses. Newest first; `after` pages on by notification id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import Principal, RequestIdDep, StateDep, json_response, scoped

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("")
def list_notifications(
    principal: Annotated[Principal, scoped("datasets:read", "contracts:write", "grants:admin")],
    state: StateDep, _rid: RequestIdDep,
    before: Annotated[int | None, Query(ge=1, description="notification_id to page from")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Your department's notifications."""
    with state.pool.connection() as conn:
        found = conn.execute(
            "select notification_id, dataset, kind, message, detail, created_at"
            " from hub.notifications where department = %s and notification_id < %s"
            " order by notification_id desc limit %s",
            [principal.department, before or 2**62, limit]).fetchall()
    keys = ("id", "dataset", "kind", "message", "detail", "created_at")
    return json_response({"department": principal.department,
                          "notifications": [dict(zip(keys, r, strict=True)) for r in found]})
