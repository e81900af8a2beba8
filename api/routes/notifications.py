"""Notices for the caller's department: failed checks on its datasets, breaking changes
to datasets it uses. Newest first; `after` pages on by notification id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from psycopg.rows import dict_row

from api.deps import Principal, RequestIdDep, StateDep, scoped
from api.models import Notifications
from api.openapi import token_scopes

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("", openapi_extra=token_scopes("datasets:read", "contracts:write", "grants:admin"))
def list_notifications(
    principal: Annotated[Principal, scoped("datasets:read", "contracts:write", "grants:admin")],
    state: StateDep, _rid: RequestIdDep,
    before: Annotated[int | None, Query(ge=1, description="notification_id to page from")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Notifications:
    """Your department's notifications."""
    with state.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            "select notification_id as id, dataset, kind, message, detail, created_at"
            " from hub.notifications where department = %s and notification_id < %s"
            " order by notification_id desc limit %s",
            [principal.department, before or 2**62, limit]).fetchall()
    return Notifications.model_validate({"department": principal.department,
                                         "notifications": found})
