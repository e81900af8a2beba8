"""Residents' feedback in the console: the department's queue and the form to answer. Each
step is the function of the matching API route (api/routes/feedback.py), audited the same
way."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.console.web import guard, render
from api.deps import Principal, StateDep
from api.errors import ApiError, ensure_request_id
from api.routes import feedback as api_feedback

router = APIRouter(prefix="/console", include_in_schema=False)
STAFF = guard("datasets:read")


@router.get("/feedback")
async def queue(request: Request, state: StateDep, principal: Principal = STAFF) -> Response:
    """What residents said about my department's datasets: waiting, then answered."""
    rid = ensure_request_id(request)
    waiting = await run_in_threadpool(api_feedback.department_queue, principal, state, rid)
    answered = await run_in_threadpool(api_feedback.department_queue, principal, state, rid,
                                       True)
    return render(request, "feedback.html", waiting=waiting.items, answered=answered.items)


@router.post("/feedback/{feedback_id}")
async def answer(feedback_id: int, request: Request, state: StateDep,
                 principal: Principal = STAFF) -> Response:
    """Answer one item: public at once, with the time it took."""
    form = await request.form()
    try:
        body = api_feedback.Answer(answer=str(form.get("answer") or "").strip(),
                                   message_public=form.get("message_public") == "yes")
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", f"answer: {exc.errors()[0]['msg']}") from None
    await run_in_threadpool(api_feedback.answer_feedback, principal, feedback_id, body,
                            request, state, ensure_request_id(request))
    return RedirectResponse("/console/feedback", status_code=303)
