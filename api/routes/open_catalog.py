"""GET /open/catalog: every shared dataset as a DCAT-AP 3.0 catalog, for anyone (no token).

Open-data portals (CKAN with ckanext-dcat, data.europa.eu) harvest it. Turtle by default;
JSON-LD with `?format=jsonld` or `Accept: application/ld+json`. Open datasets list their
released aggregates; restricted ones only their description and how to ask for access
(api/dcat/graph.py). Each read is audited as `open.read`, with nothing about the reader.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, Query, Request, Response
from psycopg import sql
from starlette.concurrency import run_in_threadpool

from api.dcat.graph import PREFIXES, CatalogFacts, catalog_graph
from api.deps import AppState, RequestIdDep, StateDep
from api.errors import ApiError
from contracts import Contract
from hub.audit import AuditEvent, record

router = APIRouter(prefix="/open", tags=["open data"])

TURTLE, JSON_LD = "text/turtle", "application/ld+json"
# Prefixes, not the official DCAT-AP context (api/dcat/shapes/context__dcat-ap.jsonld): its
# terms are scoped by class (Dataset.accessRights...), and compacting picked whichever term
# shares an IRI, so a Catalogue's publisher read "DatasetSeries.publisher". With prefixes
# every key says what it is (dct:publisher), and the graph is the same.
CONTEXT = {prefix: str(namespace) for prefix, namespace in PREFIXES}
TEMPORAL = ("date", "timestamp")


@router.get("/catalog", response_class=Response, responses={200: {
    "description": "The DCAT-AP 3.0 catalog (format= or Accept)",
    "content": {TURTLE: {"schema": {"type": "string"}},
                JSON_LD: {"schema": {"type": "object"}}}}})
async def open_catalog(
    request: Request, state: StateDep, _rid: RequestIdDep,
    format: Annotated[Literal["turtle", "jsonld"] | None, Query(
        description="turtle or jsonld; unset: by Accept, else turtle")] = None,
) -> Response:
    """Every dataset in force, described in DCAT-AP 3.0: open ones with their CSV and JSON
    distributions, restricted ones as metadata with where to ask for access."""
    media = _negotiated(format, request.headers.get("accept", ""))
    await refreshed(state)
    body = await run_in_threadpool(_serialized, request, state, media)
    return Response(body, media_type=media)


async def refreshed(state: AppState) -> None:
    """Contracts registered in other workers show here too, within seconds."""
    if state.catalog is not None:
        async with state.apool.connection() as conn:
            await state.catalog.refresh(conn)


def _serialized(request: Request, state: AppState, media: str) -> str:
    # In the thread pool: the queries are synchronous and building the graph is CPU work.
    contracts = [c for c in state.contracts.values() if not c.retired]
    with state.pool.connection() as conn, conn.transaction():
        facts = _facts(conn, state, [c for c in contracts if c.open])
        record(conn, open_read(request, "/open/catalog", {"format": media}))
    graph = catalog_graph(contracts, facts)
    if media == JSON_LD:
        return graph.serialize(format="json-ld", context=CONTEXT, auto_compact=True)
    return graph.serialize(format="turtle")


def open_read(request: Request, route: str, detail: dict | None = None,
              dataset: str | None = None) -> AuditEvent:
    """The audit record of a public read: which route, never who (no address, no agent)."""
    return AuditEvent(kind="open.read", request_id=request.state.request_id, decision="allow",
                      reason="public", status_code=200, dataset=dataset,
                      detail={"route": route, **(detail or {})})


def _negotiated(format: str | None, accept: str) -> str:
    if format is not None:
        return JSON_LD if format == "jsonld" else TURTLE
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for media in wanted:
        if media in (JSON_LD, "application/json"):
            return JSON_LD
        if media in (TURTLE, "*/*", "text/*", ""):
            return TURTLE
    raise ApiError(406, "not_acceptable", f"the catalog is served as {TURTLE} or {JSON_LD}; "
                   "send one of them in Accept, or ?format=turtle / ?format=jsonld")


def _facts(conn: psycopg.Connection, state: AppState, open_ones: list[Contract]) -> CatalogFacts:
    settings = state.settings
    modified = dict(conn.execute(
        "select dataset, max(published_at) from hub.dataset_versions where dataset = any(%s)"
        " group by dataset", [[c.dataset_id for c in open_ones]]).fetchall())
    temporal = {c.dataset_id: span for c in open_ones
                if (span := _time_span(conn, c)) is not None}
    return CatalogFacts(base_url=settings.token_issuer, publisher=settings.open_publisher,
                        licence=settings.open_licence, temporal=temporal, modified=modified)


def _time_span(conn: psycopg.Connection, contract: Contract) -> tuple[date, date] | None:
    """The first and last day of the dataset's first date or timestamp column, or None
    when it has none or is not published yet."""
    column = next((c.name for c in contract.columns if c.logical_type in TEMPORAL), None)
    if column is None:
        return None
    query = sql.SQL("select min({c})::date, max({c})::date from shared.{t}").format(
        c=sql.Identifier(column), t=sql.Identifier(contract.relation_name))
    try:
        with conn.transaction():  # a savepoint: a missing table must not end the read
            first, last = conn.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return (first, last) if isinstance(first, date | datetime) else None
