"""The rows query grammar (PostgREST-like), parsed into parameterised SQL.

    ?select=a,b  &col=op.value  &order=a.desc,b  &limit=&offset=  or  &cursor=

Operators: eq, neq, gt, gte, lt, lte, in.(a,b), like.*part* (with * as the wildcard),
is.null|true|false. Only columns the caller sees unmasked can be filtered or ordered on,
so a filter cannot reveal what a mask hides. Values are always bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from api.errors import ApiError

RESERVED = {"select", "order", "limit", "offset", "cursor", "format", "major", "since_version"}
COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
OPERATORS = set(COMPARISONS) | {"in", "like", "is"}
IS_VALUES = {"null": sql.SQL("null"), "true": sql.SQL("true"), "false": sql.SQL("false")}
# Casts the hub will write into SQL: a contract's physicalType is untrusted text.
SAFE_CASTS = {"text", "bigint", "integer", "smallint", "numeric", "double precision", "real",
              "boolean", "date", "timestamp", "timestamptz", "time"}
MAX_FILTERS = 20
MAX_IN_VALUES = 100


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str


@dataclass(frozen=True)
class Query:
    select: list[str]
    filters: list[Filter]
    order: list[tuple[str, bool]]  # (column, descending)


def bad(where: str, message: str, **audit: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{where}: {message}", audit=audit)


def parse(params: list[tuple[str, str]], visible: list[str], unmasked: set[str]) -> Query:
    """Parse query parameters against the columns the caller may see."""
    given = dict(params)
    select = _select(given.get("select"), visible)
    filters = [_filter(k, v, visible, unmasked) for k, v in params if k not in RESERVED]
    if len(filters) > MAX_FILTERS:
        raise bad("filters", f"at most {MAX_FILTERS} per request")
    return Query(select, filters, _order(given.get("order"), visible, unmasked))


def _select(raw: str | None, visible: list[str]) -> list[str]:
    if not raw:
        return list(visible)
    wanted = [c.strip() for c in raw.split(",") if c.strip()]
    for column in wanted:
        _known("select", column, visible)
    return list(dict.fromkeys(wanted))


def _filter(column: str, raw: str, visible: list[str], unmasked: set[str]) -> Filter:
    _known(column, column, visible)
    _unmasked(column, column, unmasked)
    op, dot, value = raw.partition(".")
    if not dot or op not in OPERATORS:
        raise bad(column, f"unknown operator in {raw!r}; write {column}=<op>.<value> with op "
                  f"one of {', '.join(sorted(OPERATORS))}")
    if op == "is" and value not in IS_VALUES:
        raise bad(column, "is. takes null, true or false")
    if op == "in" and not (value.startswith("(") and value.endswith(")")):
        raise bad(column, "in. takes a list in parentheses: in.(a,b)")
    return Filter(column, op, value)


def _order(raw: str | None, visible: list[str], unmasked: set[str]) -> list[tuple[str, bool]]:
    order = []
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        column, _, direction = part.strip().partition(".")
        _known("order", column, visible)
        _unmasked("order", column, unmasked)
        if direction not in ("", "asc", "desc"):
            raise bad("order", f"{part!r}: direction must be asc or desc")
        order.append((column, direction == "desc"))
    return order


# The refusals below are marked as probes in the audit log (api/refusals.py tells a hidden
# column from one that does not exist): a burst of them is an anomaly (hub/anomalies.py).


def _known(where: str, column: str, visible: list[str]) -> None:
    if column not in visible:
        raise bad(where, f"unknown column {column!r} (or not granted to your role)",
                  probe="unknown_column", column=column, at=_position(where))


def _unmasked(where: str, column: str, unmasked: set[str]) -> None:
    if column not in unmasked:
        raise bad(where, f"column {column!r} is masked for your role and cannot be "
                  "filtered or ordered on", probe="masked_column", column=column,
                  at=_position(where))


def _position(where: str) -> str:
    return where if where in ("select", "order") else "filter"


# ---------- SQL


# A filter's SQL depends only on its shape: column, operator, the keyword of `is.`, and the
# column's type. Values are bound apart, so a statement is composed once per shape.
Shape = tuple[str, str, str, str]


def shape(f: Filter, pg_type: str) -> Shape:
    return (f.column, f.op, f.value if f.op == "is" else "", pg_type)


def where_sql(shapes: tuple[Shape, ...]) -> sql.Composable:
    parts = [_condition(*s) for s in shapes]
    return sql.SQL(" and ").join(parts) if parts else sql.SQL("true")


def where_params(filters: list[Filter]) -> list:
    """The bound values, in the order of where_sql's placeholders."""
    params: list = []
    for f in filters:
        if f.op in COMPARISONS:
            params.append(f.value)
        elif f.op == "in":
            values = [v.strip() for v in f.value[1:-1].split(",")]
            if len(values) > MAX_IN_VALUES:
                raise bad(f.column, f"in. takes at most {MAX_IN_VALUES} values")
            params.append(values)
        elif f.op == "like":
            params.append(f.value.replace("*", "%"))
    return params


def _condition(column_name: str, op: str, is_value: str, pg_type: str) -> sql.Composable:
    column = sql.Identifier(column_name)
    cast = sql.SQL(pg_type if pg_type in SAFE_CASTS else "text")
    target = column if pg_type in SAFE_CASTS else sql.SQL("{}::text").format(column)
    if op in COMPARISONS:
        return sql.SQL("{} {} %s::{}").format(target, sql.SQL(COMPARISONS[op]), cast)
    if op == "in":
        return sql.SQL("{} = any(%s::{}[])").format(target, cast)
    if op == "like":
        return sql.SQL("{}::text like %s").format(column)
    return sql.SQL("{} is {}").format(column, IS_VALUES[is_value])


def order_clause(order: list[tuple[str, bool]], key: str | tuple[str, ...]) -> sql.Composable:
    """`order`, then the key's columns not in it: a stable order for paging."""
    terms = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL("desc" if d else "asc"))
             for c, d in order]
    ordered = {c for c, _ in order}
    terms += [sql.Identifier(k) for k in ((key,) if isinstance(key, str) else key)
              if k not in ordered]
    return sql.SQL(", ").join(terms)
