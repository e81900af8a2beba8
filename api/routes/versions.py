"""A dataset's published versions: when each was published, under which contract version,
with how many rows published and quarantined. Metadata like the validation reports: visible
to whoever may read the dataset, and not a data read (no rows leave). A caller whose grant
filters rows gets no counts: they are over every row, as in the catalog."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from psycopg.rows import dict_row

from api.dataset_models import DatasetVersions
from api.deps import RequestIdDep, StateDep
from api.openapi import token_scopes
from api.routes.datasets import _admit

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get("/{dataset_id}/versions", openapi_extra=token_scopes("datasets:read"))
async def list_versions(dataset_id: str, request: Request, state: StateDep,
                        _rid: RequestIdDep,
                        limit: Annotated[int, Query(ge=1, le=100)] = 20) -> DatasetVersions:
    """The dataset's published versions, newest first, with rows published and quarantined."""
    async with state.apool.connection() as conn:
        _, _, decision = await _admit(request, state, conn, dataset_id)
        async with conn.cursor(row_factory=dict_row) as cur:
            found = await (await cur.execute(
                "select version, contract_version, published_at, row_count as rows,"
                " quarantined from hub.dataset_versions where dataset = %s"
                " order by version desc limit %s", [dataset_id, limit])).fetchall()
    if decision.rows is not None:  # counts over every row would say what the filter hides
        found = [{**row, "rows": None, "quarantined": None} for row in found]
    return DatasetVersions(dataset=dataset_id, versions=found)
