"""The public transparency report as a page: no sign-in, aggregate counts only. It shows
exactly what GET /transparency/report answers (the same function builds both)."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.console import charts
from api.console.web import render, signed_in_or_none
from api.deps import StateDep
from api.models import MonthlyReads
from api.routes import transparency

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request, state: StateDep) -> Response:
    """The console's front page: the transparency report, for anyone."""
    await signed_in_or_none(request)  # only to show who is signed in, if anyone
    report = await run_in_threadpool(transparency.report, state)
    by_dataset = _summed(report.reads_by_month, "dataset")
    by_department = _summed(report.reads_by_month, "consuming_department")
    return render(request, "transparency.html", report=report,
                  chart_datasets=await charts.bars(by_dataset, "dataset", "reads", "month",
                                                   "Dataset", "Reads"),
                  chart_departments=await charts.bars(by_department, "consuming_department",
                                                      "reads", "month", "Consuming department",
                                                      "Reads"))


def _summed(reads: list[MonthlyReads], key: str) -> list[dict[str, object]]:
    """Reads per month and `key`, oldest month first."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for r in reads:
        totals[r.month, str(getattr(r, key) or "unknown")] += r.reads
    return [{"month": m, key: k, "reads": n} for (m, k), n in sorted(totals.items())]
