"""A dataset's quarantine: the rows its contract held back, each with the rules it broke
and why. For the owning department's engineers (contracts:write) only: quarantined rows are
the department's own repair list, not shared data. Still read through the policy engine
(the caller's grant on the dataset, its masks) and audited like a read (`quarantine.read`);
refusals are on record as `data.denied` (api/refusals.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from psycopg import AsyncConnection, sql

from access_policies import Decision
from access_policies.masking import as_records
from api.dataset_models import QuarantinePage
from api.deps import AppState, Principal, RequestIdDep, StateDep, authenticate, record_now
from api.errors import ApiError, forbidden
from api.openapi import token_scopes
from api.routes.datasets import _decision, _event
from api.rows import cap_offset
from contracts import Contract
from hub.row_filters import clause

router = APIRouter(prefix="/datasets", tags=["datasets"])
SCOPE = token_scopes("contracts:write")
REASONS = ("failed_rules", "reasons")


@router.get("/{dataset_id}/quarantine", openapi_extra=SCOPE)
async def read_quarantine(
    dataset_id: str, request: Request, state: StateDep, _rid: RequestIdDep,
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="rows to skip (at most HUB_MAX_OFFSET)")] = 0,
) -> QuarantinePage:
    """The quarantined rows of the latest publish, by primary key, with the rules each
    broke and why. Only the owning department's engineers (and their grant): masked as it says."""
    async with state.apool.connection() as conn:
        principal, contract, decision = await _admit_engineer(request, state, conn, dataset_id)
        cap_offset(offset, state.settings, "the quarantine pages by offset only (its rows "
                   "may repeat a key): fix the rules the first rows break and publish again")
        version, total, found = await _fetch(conn, contract, decision, limit, offset)
    names = [c.name for c in decision.columns]
    await record_now(state, _event(request, "quarantine.read", principal, dataset_id, "allow",
                                   decision.reason, 200, decision=decision, contract=contract,
                                   version=version, rows=len(found), columns=names))
    masks = [c.mask for c in decision.columns] + [None, None]
    records = as_records([*names, *REASONS], found, masks, state.pseudonym_key)
    return QuarantinePage(dataset=dataset_id, version=version, total=total, columns=names,
                          rows=records)


async def _admit_engineer(request: Request, state: AppState, conn: AsyncConnection,
                          dataset_id: str) -> tuple[Principal, Contract, Decision]:
    """An engineer of the owning department with a grant on the dataset; else 403 (an
    unknown dataset looks like another department's, so ids do not leak)."""
    principal = await authenticate(request, state, conn)
    principal.require("contracts:write")
    if state.catalog is not None:  # registrations in other workers show within seconds
        await state.catalog.refresh(conn)
    contract = state.contracts.get(dataset_id)
    if contract is None or contract.department != principal.department:
        raise forbidden(f"only the owning department's engineers read the quarantine of "
                        f"{dataset_id!r}; role {principal.role} is of {principal.department}")
    decision = _decision(state, principal, contract, await state.request_grants.current(conn))
    if not decision.allowed:
        raise ApiError(403, "access_denied", f"no grant lets role {principal.role} read "
                       f"dataset {dataset_id!r}", audit={"reason": decision.reason})
    return principal, contract, decision


async def _fetch(conn: AsyncConnection, contract: Contract, decision: Decision, limit: int,
                 offset: int) -> tuple[int | None, int, list[tuple[Any, ...]]]:
    """(published version, quarantined rows in all, this page's rows); nothing before the
    first publish."""
    version = (await (await conn.execute(
        "select max(version) from hub.dataset_versions where dataset = %s",
        [contract.dataset_id])).fetchone())[0]
    table = sql.Identifier("quarantine", contract.relation_name)
    exists = (await (await conn.execute("select to_regclass(%s)", [
        f"quarantine.{contract.relation_name}"])).fetchone())[0]
    if version is None or exists is None:
        return version, 0, []
    columns = [sql.Identifier(c.name) for c in decision.columns]
    keys = [sql.Identifier(k) for k in contract.primary_key]
    # The grant's row filter holds here too: held-back rows are rows of the dataset.
    where, params = clause(decision.rows)
    # The key's index (flows/publish.py) serves the order: a page costs offset + limit rows.
    query = sql.SQL("select {}, failed_rules, reasons from {} where {}"
                    " order by {} limit %s offset %s").format(
        sql.SQL(", ").join(columns), table, where, sql.SQL(", ").join(keys))
    found = await (await conn.execute(query, [*params, limit, offset])).fetchall()
    filtered = (where, params) if decision.rows is not None else None
    return version, await _total(conn, contract, version, table, filtered), found


async def _total(conn: AsyncConnection, contract: Contract, version: int,
                 table: sql.Composable, filtered: tuple[sql.Composable, list] | None) -> int:
    """Quarantined rows in all: counted once, at publish, unless the grant filters rows
    (`filtered`: then this caller's share is counted here)."""
    if filtered is not None:
        where, params = filtered
        return (await (await conn.execute(sql.SQL("select count(*) from {} where {}").format(
            table, where), params)).fetchone())[0]
    return (await (await conn.execute(
        "select quarantined from hub.dataset_versions where dataset = %s and version = %s",
        [contract.dataset_id, version])).fetchone())[0]
