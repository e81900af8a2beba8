"""Public releases: the k-anonymous aggregate of an open dataset, published with each
version of it (flows/publish.py) and read by anyone (api/routes/open_data.py).

The aggregate is one GROUPING SETS query over the published table: the cells (every
dimension fixed), each dimension's totals and the grand total. contracts/suppression.py
then decides which of them may be published; only those are stored. The previous
release's counts are kept for the differencing rule: for every cell ever published, the
count it was last published with (docs/open-data.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from contracts import Contract
from contracts.release import Dimension, Measure, Release, percentile
from contracts.suppression import Key, suppress

KEPT = 2  # the release served, and the one before it for differencing
MISSING = "(none)"  # a dimension's value for records without one: a value like any other
TRUNC_FORMATS = {"day": "YYYY-MM-DD", "week": 'IYYY-"W"IW', "month": "YYYY-MM", "year": "YYYY"}
AGGREGATES = {"sum": "sum", "mean": "avg"}


@dataclass(frozen=True)
class Published:
    version: int
    cells: int  # rows published, margins included
    suppressed: dict[str, int]  # rule -> cells it held back


def publish_release(conn: psycopg.Connection, contract: Contract,
                    dataset_version: int) -> Published | None:
    """Aggregate the just-published `shared` table, suppress, store the release; in the
    caller's transaction, so the release and the dataset's version commit together."""
    release = contract.release
    if release is None:
        return None
    rows = conn.execute(aggregate_query(contract.relation_name, release)).fetchall()
    dims = len(release.dimensions)
    counts = {_key(row, dims): row[2 * dims] for row in rows}
    known = _previous(conn, contract.dataset_id, dims)
    reasons = suppress(counts, release.k, known)
    cells = [_cell(row, dims, release) for row in rows if _key(row, dims) not in reasons]
    known |= {tuple(cell[:dims]): cell[dims] for cell in cells}
    held = {rule: list(reasons.values()).count(rule) for rule in sorted(set(reasons.values()))}
    [version] = conn.execute("select coalesce(max(version), 0) + 1 from releases.versions"
                             " where dataset = %s", [contract.dataset_id]).fetchone()
    conn.execute(
        "insert into releases.versions (dataset, version, dataset_version, k, columns, cells,"
        " suppressed, published) values (%s, %s, %s, %s, %s, %s, %s, %s)",
        [contract.dataset_id, version, dataset_version, release.k, Jsonb(list(release.columns)),
         Jsonb(sorted(cells, key=_sort_key)), Jsonb(held),
         Jsonb([[*key, n] for key, n in known.items()])])
    conn.execute("delete from releases.versions where dataset = %s and version <= %s",
                 [contract.dataset_id, version - KEPT])
    return Published(version, len(cells), held)


def _key(row: tuple, dims: int) -> Key:
    """A row's key: its dimension values, None where the row is a total over one."""
    return tuple(None if row[i] else row[dims + i] for i in range(dims))


def _cell(row: tuple, dims: int, release: Release) -> list[Any]:
    """The published row: dimensions (null for "all"), records, measures. A measure over
    fewer than k values is null: a median of three closed requests describes three."""
    measures = []
    for i in range(len(release.measures)):
        taken, value = row[2 * dims + 1 + 2 * i], row[2 * dims + 2 + 2 * i]
        measures.append(round(float(value), 2) if taken >= release.k and value is not None
                        else None)
    return [*_key(row, dims), row[2 * dims], *measures]


def _sort_key(cell: list[Any]) -> tuple:
    return tuple((v is None, str(v)) for v in cell)


def _previous(conn: psycopg.Connection, dataset: str, dims: int) -> dict[Key, int]:
    """Every cell published so far, with the count it was last published with (empty for
    a first release): comparing with the last release alone, a cell shown, hidden once,
    then shown again would give away the difference between its first and third counts."""
    row = conn.execute("select published from releases.versions where dataset = %s"
                       " order by version desc limit 1", [dataset]).fetchone()
    return {tuple(cell[:dims]): cell[dims] for cell in row[0]} if row else {}


def aggregate_query(relation: str, release: Release) -> sql.Composed:
    """grouping flags, dimension values, records, then (values taken, value) per measure;
    one row per cell, per dimension's total and for the grand total."""
    dims = [sql.Identifier(f"d{i}") for i in range(len(release.dimensions))]
    inner = [sql.SQL("{} as {}").format(_dimension(d), name)
             for d, name in zip(release.dimensions, dims, strict=True)]
    inner += [sql.SQL("{} as {}").format(_value(m), sql.Identifier(f"v{i}"))
              for i, m in enumerate(release.measures)]
    outer = [sql.SQL("grouping({})::int").format(d) for d in dims] + dims
    outer.append(sql.SQL("count(*)"))
    for i, measure in enumerate(release.measures):
        outer += _aggregate(measure, sql.Identifier(f"v{i}"))
    n = len(dims)
    sets = sorted({tuple(range(n))} | {(i,) for i in range(n)} | {()}, key=len, reverse=True)
    return sql.SQL("select {} from (select {} from {}) s group by grouping sets ({})").format(
        sql.SQL(", ").join(outer), sql.SQL(", ").join(inner),
        sql.Identifier("shared", relation),
        sql.SQL(", ").join(sql.SQL("({})").format(sql.SQL(", ").join(dims[i] for i in s))
                           for s in sets))


def _dimension(dim: Dimension) -> sql.Composable:
    column = sql.Identifier(dim.column)
    if dim.by is not None:
        expr = sql.SQL("to_char(date_trunc({}, {}::timestamp), {})").format(
            sql.Literal(dim.by), column, sql.Literal(TRUNC_FORMATS[dim.by]))
    elif dim.bands is not None:
        expr = _bands(column, dim.bands)
    elif dim.grid is not None:
        step = sql.Literal(str(dim.grid))
        expr = sql.SQL("(floor({} / {}::numeric)::numeric * {}::numeric)::text").format(
            column, step, step)
    else:
        expr = sql.SQL("{}::text").format(column)
    return sql.SQL("coalesce({}, {})").format(expr, sql.Literal(MISSING))


def _bands(column: sql.Identifier, edges: tuple[float, ...]) -> sql.Composable:
    """'< 0', '0 to < 10', ..., '>= 100': a band's label says which values it holds."""
    cases = [sql.SQL("when {} < {} then {}").format(column, sql.Literal(edges[0]),
                                                     sql.Literal(f"< {edges[0]:g}"))]
    for low, high in zip(edges, edges[1:], strict=False):
        cases.append(sql.SQL("when {} < {} then {}").format(
            column, sql.Literal(high), sql.Literal(f"{low:g} to < {high:g}")))
    return sql.SQL("case when {} is null then null {} else {} end").format(
        column, sql.SQL(" ").join(cases), sql.Literal(f">= {edges[-1]:g}"))


def _value(measure: Measure) -> sql.Composable:
    if measure.column is None:
        return sql.SQL("null::double precision")
    column = sql.Identifier(measure.column)
    if measure.since is None:
        return sql.SQL("{}::double precision").format(column)
    return sql.SQL("extract(epoch from ({}::timestamp - {}::timestamp)) / 86400.0").format(
        column, sql.Identifier(measure.since))


def _aggregate(measure: Measure, value: sql.Identifier) -> list[sql.Composable]:
    """How many values the measure took, and its value."""
    if measure.aggregate == "count":
        return [sql.SQL("count(*)"), sql.SQL("count(*)")]
    fraction = percentile(measure.aggregate)
    if fraction is not None:
        agg = sql.SQL("percentile_cont({}) within group (order by {})").format(
            sql.Literal(fraction), value)
    else:
        agg = sql.SQL("{}({})").format(sql.SQL(AGGREGATES[measure.aggregate]), value)
    return [sql.SQL("count({})").format(value), agg]
