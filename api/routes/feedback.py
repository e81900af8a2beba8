"""Residents' feedback: anyone posts on a dataset (no account); the owning department
answers from its queue; the answers and their response time are public.

Posts are limited per address (HUB_FEEDBACK_PER_HOUR, 429) and in length
(HUB_FEEDBACK_MAX_CHARS, 413). A contact email is optional and kept only as a keyed hash
(hub/feedback.py): no route returns it, nor its hash. Posts, answers and public reads are
audited; a public read records nothing about the reader.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import (
    AppState,
    Principal,
    RequestIdDep,
    StateDep,
    client_address,
    request_event,
    scoped,
)
from api.errors import ApiError
from api.openapi import token_scopes
from api.routes.open_catalog import open_read, refreshed
from hub import feedback
from hub.audit import AuditEvent, record

public = APIRouter(prefix="/open", tags=["open data"])
router = APIRouter(prefix="/feedback", tags=["feedback"])

Kind = Literal["wrong", "publish", "matters", "other"]
# Room for the JSON around a message of the longest allowed length (4 bytes a character
# at most in UTF-8, as JSON escapes may be longer still: \uXXXX is 6 for one character).
ENVELOPE_BYTES = 2048


class FeedbackPost(BaseModel):
    """What a resident sends: no name, no account; an email only if they want an answer
    to reach them some day (kept as a keyed hash, shown to no one)."""

    dataset: str = Field(description="the dataset it is about, e.g. public_works.service_requests")
    kind: Kind = Field(description="wrong: this looks wrong; publish: please publish this; "
                       "matters: this matters to me or my street; other")
    message: str = Field(min_length=1)
    about: str | None = Field(None, max_length=200, description="the cell, column or period")
    contact_email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class FeedbackPosted(BaseModel):
    feedback_id: int
    posted_at: datetime
    status: Literal["received"]


class PublicAnswer(BaseModel):
    feedback_id: int
    dataset: str
    department: str
    kind: Kind
    about: str | None = Field(description="shown only if the department chose to")
    message: str | None = Field(description="the resident's words, if the department chose "
                                "to show them (they may name a street or a person)")
    posted_at: datetime
    answer: str
    answered_at: datetime
    response_hours: float = Field(description="hours from the post to the answer")


class PublicAnswers(BaseModel):
    answers: list[PublicAnswer]


class QueueItem(BaseModel):
    feedback_id: int
    dataset: str
    kind: Kind
    about: str | None
    message: str
    posted_at: datetime
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None
    message_public: bool
    has_contact: bool = Field(description="the resident left an email (never shown)")


class Queue(BaseModel):
    department: str
    items: list[QueueItem]


class Answer(BaseModel):
    answer: str = Field(min_length=5, max_length=4000)
    message_public: bool = Field(False, description="show the resident's message beside the "
                                 "answer (only if it names no one)")


# The body is read by the route itself (below), so its schema is declared here.
POST_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": FeedbackPost.model_json_schema()}}}}


@public.post("/feedback", status_code=201, openapi_extra=POST_BODY)
async def post_feedback(request: Request, state: StateDep, _rid: RequestIdDep) -> FeedbackPosted:
    """Tell the owning department something about a dataset; no token needed. Too long:
    413; too many from one address: 429."""
    await _within_rate(state, request)
    # Read here, not by FastAPI: a flood of huge bodies is cut off at the length cap.
    body = _parsed(await _bounded_body(request, state.settings.feedback_max_chars),
                   state.settings.feedback_max_chars)
    await refreshed(state)
    contract = state.contracts.get(body.dataset)
    if contract is None or contract.retired:
        raise ApiError(404, "not_found", f"dataset: no dataset {body.dataset!r}; see "
                       "GET /open/catalog for their ids")
    item = feedback.NewFeedback(
        body.dataset, contract.department, body.kind, body.message.strip(), body.about,
        feedback.contact_hash(state.feedback_key, body.contact_email)
        if body.contact_email else None)
    posted = await run_in_threadpool(_store, state, request.state.request_id, item)
    return FeedbackPosted(**posted, status="received")


def _store(state: AppState, request_id: str, item: feedback.NewFeedback) -> dict:
    with state.pool.connection() as conn, conn.transaction():
        posted = feedback.post(conn, item)
        record(conn, AuditEvent(
            kind="feedback.posted", request_id=request_id, decision="allow", reason="public",
            status_code=201, dataset=item.dataset, department=item.department,
            detail={"feedback_id": posted["feedback_id"], "kind": item.kind}))
    return posted


async def _within_rate(state: AppState, request: Request) -> None:
    wait = await state.feedback_limiter.retry_after("feedback:" + (client_address(request) or "?"))
    if wait is not None:
        raise ApiError(429, "rate_limited", f"too many posts from your address; retry in "
                       f"{wait} s", {"Retry-After": str(wait)},
                       audit={"reason": "feedback over the rate limit"})


async def _bounded_body(request: Request, max_chars: int) -> bytes:
    """The body, read no further than a message of the longest allowed length needs."""
    limit = max_chars * 6 + ENVELOPE_BYTES
    too_long = ApiError(413, "payload_too_large", f"message: at most {max_chars} characters; "
                        "shorten it and send it again")
    if int(request.headers.get("content-length") or 0) > limit:
        raise too_long
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_long
    return body


def _parsed(body: bytes, max_chars: int) -> FeedbackPost:
    try:
        post = FeedbackPost.model_validate(json.loads(body or b"null"))
    except json.JSONDecodeError:
        raise ApiError(400, "invalid_request", 'send JSON, e.g. {"dataset": "...", "kind": '
                       '"wrong", "message": "..."}') from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, "invalid_request", f"{where}: {first['msg']}") from None
    if not post.message.strip():
        raise ApiError(400, "invalid_request", "message: empty; write what you want to tell "
                       "the department")
    if len(post.message) > max_chars:
        raise ApiError(413, "payload_too_large", f"message: {len(post.message)} characters, "
                       f"at most {max_chars}; shorten it and send it again")
    return post


@public.get("/feedback")
def public_feedback(
    request: Request, state: StateDep, _rid: RequestIdDep,
    dataset: Annotated[str | None, Query(description="only this dataset's")] = None,
) -> PublicAnswers:
    """The departments' answers, newest first, with how long each took; no token needed."""
    with state.pool.connection() as conn, conn.transaction():
        found = feedback.public_answers(conn, dataset)
        record(conn, open_read(request, "/open/feedback", {"answers": len(found)}, dataset))
    return PublicAnswers.model_validate({"answers": found})


@router.get("", openapi_extra=token_scopes("datasets:read"))
def department_queue(principal: Annotated[Principal, scoped("datasets:read")], state: StateDep,
                     _rid: RequestIdDep, answered: bool = False) -> Queue:
    """My department's feedback: waiting items oldest first (answered=true: the answers)."""
    with state.pool.connection() as conn:
        items = feedback.queue(conn, principal.department, answered)
    return Queue.model_validate({"department": principal.department, "items": items})


@router.post("/{feedback_id}/answer", openapi_extra=token_scopes("datasets:read"))
def answer_feedback(principal: Annotated[Principal, scoped("datasets:read")], feedback_id: int,
                    body: Answer, request: Request, state: StateDep,
                    _rid: RequestIdDep) -> QueueItem:
    """Answer an item of my department's, once: the answer is public at once."""
    with state.pool.connection() as conn, conn.transaction():
        try:
            answered = feedback.answer(conn, feedback_id, principal.department,
                                       body.answer.strip(), principal.client_id,
                                       body.message_public)
        except feedback.FeedbackError as exc:
            code = {404: "not_found", 403: "access_denied", 409: "conflict"}[exc.status]
            raise ApiError(exc.status, code, str(exc)) from None
        record(conn, request_event(request, "feedback.answered", principal, decision="allow",
                                   reason="feedback.answered", status_code=200,
                                   dataset=answered["dataset"],
                                   detail={"feedback_id": feedback_id}))
    return QueueItem.model_validate(answered)
