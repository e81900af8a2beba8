"""The public transparency report: what the city's departments read of each other's data.

Unauthenticated, and aggregate only: counts per month, dataset and consuming department,
public reads of the open releases per month and dataset, and the active grants with their
purposes. No client, person or column values.

It also publishes the audit ledger's latest signed checkpoint: once seen outside the
database, the entries it covers cannot be erased unnoticed (docs/audit-guarantees.md).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi import APIRouter
from psycopg.rows import dict_row

from api.deps import StateDep
from api.models import TransparencyReport
from hub import clock, feedback, ledger

router = APIRouter(prefix="/transparency", tags=["transparency"])

READS_BY_MONTH = """
select to_char(date_trunc('month', occurred_at at time zone 'UTC'), 'YYYY-MM') as month,
       dataset, department as consuming_department, count(*) as reads,
       coalesce(sum(rows_returned), 0)::bigint as rows
from audit.events where kind = 'data.read' and decision = 'allow'
group by 1, 2, 3 order by 1 desc, 2, 3
"""
# Reads of the open releases (api/routes/open_data.py): by whom is never recorded.
OPEN_READS_BY_MONTH = """
select to_char(date_trunc('month', occurred_at at time zone 'UTC'), 'YYYY-MM') as month,
       coalesce(dataset, detail->>'route') as dataset, count(*) as reads
from audit.events where kind = 'open.read'
group by 1, 2 order by 1 desc, 2
"""


@router.get("/report")
def report(state: StateDep) -> TransparencyReport:
    """Monthly reads per dataset and consuming department, public reads of the open
    releases per dataset, and the grants in force."""
    with state.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        reads = cur.execute(READS_BY_MONTH).fetchall()
        open_reads = cur.execute(OPEN_READS_BY_MONTH).fetchall()
        checkpoint = latest_checkpoint(conn, state.settings.keys_dir)
        answered = feedback.per_department(conn)
    today = clock.today()
    roles = state.policy.roles
    grants = [{
        "dataset": g.dataset, "purpose": g.purpose,
        "departments": sorted({roles[r].department for r in g.roles}),
        "valid_from": g.valid_from, "valid_until": g.valid_until,
    } for g in state.policy.grants
        if (g.valid_from is None or g.valid_from <= today)
        and (g.valid_until is None or today <= g.valid_until)]
    return TransparencyReport.model_validate({
        "generated_at": datetime.now(UTC), "reads_by_month": reads,
        "open_reads_by_month": open_reads, "active_grants": grants,
        "ledger_checkpoint": checkpoint, "feedback": answered})


# By id, the primary key's index: seals take turns (an advisory lock), so ids grow with seq.
LATEST_CHECKPOINT = """
select checkpoint_id, last_seq, head_hash, signed_at, key_id, signature
from audit.checkpoints order by checkpoint_id desc limit 1
"""


def latest_checkpoint(conn: psycopg.Connection, keys_dir: Path) -> dict[str, Any] | None:
    """The newest signed checkpoint, as `hub audit verify --checkpoint` reads it back, with
    the fingerprint of the ledger key (to compare with `hub audit public-key`'s)."""
    row = conn.execute(LATEST_CHECKPOINT).fetchone()
    if row is None:  # nothing sealed yet
        return None
    return {**ledger.Checkpoint(*row).public_record(),
            "public_key_sha256": _fingerprint(keys_dir)}


@functools.cache
def _fingerprint(keys_dir: Path) -> str:
    # The ledger key never changes under a running hub: read once per process.
    return ledger.fingerprint(ledger.load_signing_key(keys_dir).public_key())
