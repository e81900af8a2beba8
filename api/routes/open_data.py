"""Open data: the public releases of open datasets, for anyone, without a token.

Only what contracts/suppression.py let through is ever read here: the stored release
(releases.versions), never the shared table. Each read of a dataset is on record as an
`open.read` audit event with the dataset and the release, and nothing about the reader
(no address, no user agent, no request id to join with the access logs); the transparency
report counts them. docs/open-data.md describes the release and these routes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Response
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from api.deps import StateDep, record_now
from api.errors import ApiError
from api.rows import csv_lines
from contracts import Contract
from hub.audit import AuditEvent

router = APIRouter(prefix="/open", tags=["open data"])
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv"}
LATEST = """
select distinct on (dataset) dataset, version, published_at, k, columns, cells
from releases.versions where dataset = any(%s) order by dataset, version desc
"""


class Distribution(BaseModel):
    format: Literal["csv", "json"]
    media_type: str
    url: str = Field(description="where to download it, relative to the hub")


class OpenDataset(BaseModel):
    """An open dataset: what its release holds and where to get it."""

    id: str
    title: str
    department: str
    description: str
    licence: str
    k: int = Field(description="every published cell counts at least this many records")
    release_version: int
    published_at: datetime
    dimensions: list[str]
    measures: list[str]
    columns: list[str] = Field(description="the release's columns: dimensions, records, "
                               "measures; a null dimension is the total over all its values")
    distributions: list[Distribution]
    feedback: str = Field(description="residents' feedback on this dataset and the "
                          "department's answers, with response times (POST to tell it)")


class OpenCatalog(BaseModel):
    datasets: list[OpenDataset]


class OpenRelease(BaseModel):
    dataset: str
    release_version: int
    published_at: datetime
    k: int
    columns: list[str]
    rows: list[dict[str, Any]]
    feedback: str


@router.get("/datasets")
async def list_open(state: StateDep) -> OpenCatalog:
    """Every open dataset with a published release, and its distributions."""
    opened = _open(state.contracts)
    async with state.apool.connection() as conn:
        found = await _latest(conn, list(opened))
    # Every public read is on record, the list too; nothing about the reader.
    await record_now(state, AuditEvent(
        kind="open.read", decision="allow", reason="public", status_code=200,
        rows_returned=len(found), detail={"route": "/open/datasets"}))
    return OpenCatalog(datasets=[_summary(opened[d], found[d]) for d in sorted(found)])


# The body is built here (orjson, or CSV text): documented, not validated, by FastAPI.
CSV_BODY = {200: {"content": {"text/csv": {"schema": {
    "type": "string", "description": "a header line of column names, then one line per "
    "cell (a total over a dimension as an empty field)"}}}}}


@router.get("/datasets/{dataset_id}", response_model=OpenRelease, responses=CSV_BODY)
async def read_open(
    state: StateDep, dataset_id: str,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")
                      ] = "json",
) -> Response:
    """The latest release of an open dataset: its published cells, as JSON or CSV."""
    opened = _open(state.contracts)
    async with state.apool.connection() as conn:
        found = (await _latest(conn, [dataset_id])) if dataset_id in opened else {}
    if dataset_id not in found:
        raise ApiError(404, "not_found", f"no open dataset {dataset_id!r}; GET /open/datasets "
                       "lists those published")
    release = found[dataset_id]
    await record_now(state, AuditEvent(
        kind="open.read", dataset=dataset_id, rows_returned=len(release["cells"]),
        detail={"release_version": release["version"], "format": format}))
    if format == "csv":
        body = csv_lines([release["columns"], *release["cells"]])
        return Response(body, media_type=MEDIA_TYPES["csv"])
    rows = [dict(zip(release["columns"], cell, strict=True)) for cell in release["cells"]]
    return Response(orjson.dumps({
        "dataset": dataset_id, "release_version": release["version"],
        "published_at": release["published_at"], "k": release["k"],
        "columns": release["columns"], "rows": rows, "feedback": _feedback(dataset_id)}),
        media_type=MEDIA_TYPES["json"])


def _open(contracts: dict[str, Contract]) -> dict[str, Contract]:
    """The contracts in force that declare a public release."""
    return {d: c for d, c in contracts.items() if c.release is not None and not c.retired}


async def _latest(conn: AsyncConnection, datasets: list[str]) -> dict[str, dict[str, Any]]:
    cur = await conn.execute(LATEST, [datasets])
    names = [d.name for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in await cur.fetchall()}


def _summary(contract: Contract, release: dict[str, Any]) -> OpenDataset:
    spec = contract.release
    assert spec is not None  # _open keeps only these
    base = f"/open/datasets/{contract.dataset_id}"
    return OpenDataset(
        id=contract.dataset_id, title=spec.title or contract.title,
        department=contract.department, description=contract.description,
        licence=spec.licence, k=release["k"], release_version=release["version"],
        published_at=release["published_at"], columns=release["columns"],
        dimensions=[d.name for d in spec.dimensions], measures=[m.name for m in spec.measures],
        distributions=[Distribution(format=f, media_type=t, url=f"{base}?format={f}")
                       for f, t in MEDIA_TYPES.items()],
        feedback=_feedback(contract.dataset_id))


def _feedback(dataset_id: str) -> str:
    return f"/open/feedback?{urlencode({'dataset': dataset_id})}"
