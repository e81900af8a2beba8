"""The public transparency report: what the city's departments read of each other's data.

Unauthenticated, and aggregate only: counts per month, dataset and consuming department,
and the active grants with their purposes. No client, person or column values.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from psycopg.rows import dict_row

from api.deps import StateDep
from api.models import TransparencyReport

router = APIRouter(prefix="/transparency", tags=["transparency"])

READS_BY_MONTH = """
select to_char(date_trunc('month', occurred_at at time zone 'UTC'), 'YYYY-MM') as month,
       dataset, department as consuming_department, count(*) as reads,
       coalesce(sum(rows_returned), 0)::bigint as rows
from audit.events where kind = 'data.read' and decision = 'allow'
group by 1, 2, 3 order by 1 desc, 2, 3
"""


@router.get("/report")
def report(state: StateDep) -> TransparencyReport:
    """Monthly reads per dataset and consuming department, and the grants in force."""
    with state.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        reads = cur.execute(READS_BY_MONTH).fetchall()
    today = datetime.now(UTC).date()
    roles = state.policy.roles
    grants = [{
        "dataset": g.dataset, "purpose": g.purpose,
        "departments": sorted({roles[r].department for r in g.roles}),
        "valid_from": g.valid_from, "valid_until": g.valid_until,
    } for g in state.policy.grants
        if (g.valid_from is None or g.valid_from <= today)
        and (g.valid_until is None or today <= g.valid_until)]
    return TransparencyReport.model_validate({
        "generated_at": datetime.now(UTC), "reads_by_month": reads, "active_grants": grants})
