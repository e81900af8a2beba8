"""Staff pages: the catalog, a dataset, its rows and a CSV download of the current query.

Each page calls the function the matching API route runs (api/routes/datasets.py), as the
signed-in person: the same policy decision, the same masks, the same audit record. The
rows view's address is the API's query grammar itself (`column=op.value`, order=, select=,
limit=, offset=), so a page's filters are exactly what the API would be asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast, get_args
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.console import charts
from api.console.web import guard, render, secure
from api.dataset_models import PublishedVersionRow
from api.deps import Principal, StateDep
from api.errors import ApiError, ensure_request_id
from api.models import Catalog
from api.query import OPERATORS, RESERVED
from api.routes import contracts as contract_routes
from api.routes import datasets
from api.routes import versions as api_versions
from api.search import Quality

router = APIRouter(prefix="/console", include_in_schema=False)
READ = guard("datasets:read")
PAGE = 50
FORM_FIELDS = ("f_col", "f_op", "f_val")  # the filter form's fields: folded into the grammar
QUALITIES = ("", *get_args(Quality))


@router.get("/catalog")
async def catalog(request: Request, state: StateDep, principal: Principal = READ,
                  q: str = "", department: str = "", quality: str = "") -> Response:
    """The datasets I may read, searched by words and filtered by department and quality:
    the API's own search, so the console ranks exactly as `GET /datasets?q=` does."""
    found = await search(request, state, q, department, quality)
    # Every department's name, not only those left after filtering: the filter must be
    # able to widen again. Names of departments are public (the transparency report).
    departments = sorted({c.department for c in state.contracts.values()})
    return render(request, "catalog.html", datasets=found.datasets, q=q,
                  department=department, quality=quality, departments=departments)


async def search(request: Request, state: Any, q: str, department: str,
                 quality: str) -> Catalog:
    """`GET /datasets?q=&department=&quality=` as this person: one audit record, ranked by
    PostgreSQL full-text search; an empty form field means no filter."""
    if quality not in QUALITIES:
        raise ApiError(400, "invalid_request", "quality: passed, failed or unchecked "
                       "(or empty for any)")
    return await datasets.list_datasets(
        request, state, ensure_request_id(request), q=q if q.strip() else None,
        department=department or None, quality=cast(Quality, quality) if quality else None)


@router.get("/datasets/{dataset_id}")
async def dataset(dataset_id: str, request: Request, state: StateDep,
                  principal: Principal = READ) -> Response:
    """Purpose, owner, the columns as I see them (masks), quality and versions."""
    rid = ensure_request_id(request)
    detail = await datasets.get_dataset(dataset_id, _api(request), state, rid)
    reports = await datasets.list_validations(dataset_id, _api(request), state, rid, limit=10)
    versions = await run_in_threadpool(_versions, dataset_id, principal, state, rid)
    published = (await api_versions.list_versions(dataset_id, request, state, rid)).versions
    return render(request, "dataset.html", d=detail, reports=reports.reports,
                  masks={c.name: c.mask for c in detail.columns},
                  fresh=age(detail.published_at), engineer="contracts:write" in principal.scopes
                  and principal.department == detail.department,
                  versions=versions, published=published, chart=await charts.bars(
                      _gate_counts(published), "version", "rows", "outcome",
                      "Published version", "Rows"))


def age(moment: datetime | None) -> str:
    """How long ago, in words: the freshness of a published version."""
    if moment is None:
        return ""
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}(s) ago"
    return "just now"


def _versions(dataset_id: str, principal: Principal, state: Any, rid: str) -> list[Any]:
    try:
        return contract_routes.contract_history(dataset_id, principal, state, rid).versions
    except ApiError:  # registered by the first `hub run`: none yet is not an error here
        return []


def _gate_counts(published: list[PublishedVersionRow]) -> list[dict[str, Any]]:
    out = []
    for v in reversed(published):  # oldest first, left to right
        if v.rows is None:  # withheld from a row-filtered reader: counts over every row
            continue
        label = f"v{v.version} ({v.contract_version})"
        out += [{"version": label, "outcome": "published", "rows": v.rows},
                {"version": label, "outcome": "quarantined", "rows": v.quarantined}]
    return out


@router.get("/datasets/{dataset_id}/rows")
async def rows_view(dataset_id: str, request: Request, state: StateDep,
                    principal: Principal = READ) -> Response:
    """A page of rows, filtered and sorted with the API's grammar, masked for me."""
    if any(f in request.query_params for f in FORM_FIELDS):
        return RedirectResponse(f"{request.url.path}?{urlencode(grammar_items(request))}",
                                status_code=303)
    items = grammar_items(request)
    limit, offset = _int(items, "limit", PAGE), _int(items, "offset", 0)
    columns = await _visible(dataset_id, request, state)
    answer = await datasets.read_rows(
        dataset_id, _api(request, items), state, ensure_request_id(request), limit=limit,
        offset=offset, cursor=_get(items, "cursor"), select=_get(items, "select"),
        order=_get(items, "order"))
    page = orjson.loads(answer.body)
    filters = [(k, v) for k, v in items if k not in RESERVED]
    return render(request, "rows.html", dataset_id=dataset_id, page=page, columns=columns,
                  filters=filters, order=_get(items, "order") or "", operators=sorted(OPERATORS),
                  links=_links(request.url.path, items, limit, offset, page))


@router.get("/datasets/{dataset_id}/download")
async def download(dataset_id: str, request: Request, state: StateDep,
                   principal: Principal = READ) -> Response:
    """Every row of the current query as CSV: the API's export, audited as one."""
    items = [(k, v) for k, v in grammar_items(request) if k not in ("limit", "offset", "cursor")]
    answer = await datasets.export_rows(
        dataset_id, _api(request, items), state, ensure_request_id(request),
        select=_get(items, "select"), order=_get(items, "order"), format="csv")
    name = dataset_id.replace(".", "_")
    answer.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return secure(answer)


def grammar_items(request: Request) -> list[tuple[str, str]]:
    """The query in the API's grammar: the filter form's fields become `column=op.value`."""
    given = request.query_params
    items = [(k, v) for k, v in given.multi_items() if k not in FORM_FIELDS and v != ""]
    if given.get("f_col") and given.get("f_op") and given.get("f_val"):
        items.append((given["f_col"], f"{given['f_op']}.{given['f_val']}"))
        items = [(k, v) for k, v in items if k != "offset"]  # a new filter starts at page 1
    return items


def _links(path: str, items: list[tuple[str, str]], limit: int, offset: int,
           page: dict[str, Any]) -> dict[str, str]:
    base = [(k, v) for k, v in items if k not in ("offset", "limit", "cursor")]

    def at(*where: tuple[str, Any]) -> str:
        return f"{path}?{urlencode([*base, ('limit', limit), *where])}"

    # The API's next_cursor when it gives one (key order): a page costs the same at any
    # depth, where offset= stops at HUB_MAX_OFFSET. A keyset page has no way back but the
    # first page (and the browser's back button).
    if page.get("next_cursor"):
        following = at(("cursor", page["next_cursor"]))
    else:
        following = at(("offset", offset + limit)) if len(page["rows"]) == limit else ""
    download = path.removesuffix("/rows") + "/download"
    return {"previous": at(("offset", max(0, offset - limit))) if offset else "",
            "first": at() if offset or _get(items, "cursor") else "",
            "next": following, "download": f"{download}?{urlencode(base)}"}


async def _visible(dataset_id: str, request: Request, state: Any) -> list[Any]:
    """The columns I see and their masks: the policy decision the rows route takes
    (no audit record of its own: the rows read that follows is the one on record)."""
    async with state.apool.connection() as conn:
        _, _, decision = await datasets._admit(_api(request), state, conn, dataset_id)
    return list(decision.columns)


def _api(request: Request, items: list[tuple[str, str]] | None = None) -> Request:
    """This request as the API function sees it: same identity and request id, and (for
    rows) only the grammar's parameters in its query."""
    if items is None:
        return request
    return Request(dict(request.scope, query_string=urlencode(items).encode()),
                   request.receive)


def _get(items: list[tuple[str, str]], key: str) -> str | None:
    return next((v for k, v in items if k == key), None)


def _int(items: list[tuple[str, str]], key: str, default: int) -> int:
    raw = _get(items, key)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ApiError(400, "invalid_request", f"{key}: a whole number, e.g. {default}")
    return int(raw)
