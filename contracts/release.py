"""The `hubPublicRelease` custom property: a k-anonymous aggregate a contract lets the hub
publish to everyone (docs/open-data.md).

Only what the release names leaves the city: its dimensions, generalised (a timestamp by
month, a number in bands), a count of records per cell and the measures it asks for. The
rules here refuse, at lint time, a release that could single a person out however the data
falls: a personal or key column as a dimension, a free-text column anywhere, k under 5. The
rules that depend on the data (small cells, margins, differencing) are applied at each
publish by contracts/suppression.py.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from contracts.model_errors import Problems, closest, problems_of

WHERE = "customProperties.hubPublicRelease"
MIN_K = 5  # below this a cell is a handful of neighbours: never configurable lower
DEFAULT_K = 10
# The aggregates a measure may take; pNN is the NNth percentile (p90, p95...).
AGGREGATES = ("count", "sum", "mean", "median")
PERCENTILE = re.compile(r"^p([1-9][0-9]?)$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TEMPORAL = ("date", "timestamp")
NUMERIC = ("integer", "number")


class _Spec(BaseModel):
    # As hubSource: keys as ODCS writes them, no coercion, unknown keys refused.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, alias_generator=to_camel)


def _as_tuple(value: Any) -> Any:
    # YAML gives lists; tuples keep the model hashable (a Contract is a frozen dataclass).
    return tuple(value) if isinstance(value, list) else value


class Dimension(_Spec):
    """One axis of the aggregate, generalised so that a cell holds many records."""

    column: str = Field(min_length=1, description="name the column to group by")
    by: Literal["day", "week", "month", "year"] | None = None  # a date or timestamp
    bands: tuple[float, ...] | None = Field(None, description="write the band edges in "
                                            "ascending order, e.g. [0, 10, 100]")
    grid: float | None = Field(None, gt=0, description="write the grid cell's size in the "
                               "column's unit, e.g. 0.01")
    label: str | None = None  # the published column's name; default the column's

    _bands = field_validator("bands", mode="before")(_as_tuple)

    @property
    def name(self) -> str:
        return self.label or self.column

    @model_validator(mode="after")
    def _one_generalisation(self) -> Dimension:
        given = [k for k in ("by", "bands", "grid") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} both given; a dimension is generalised "
                             "one way")
        if self.bands is not None and list(self.bands) != sorted(set(self.bands)):
            raise ValueError("bands must be distinct edges in ascending order, e.g. [0, 10]")
        return self


class Measure(_Spec):
    """A published figure per cell: `count` of records, or an aggregate of a column (the
    days between two date/timestamp columns with `since`)."""

    name: str = Field(min_length=1, description="name the published column, e.g. "
                      "median_days_to_close")
    aggregate: str = Field(description="write count, sum, mean, median or pNN (p90...)")
    column: str | None = None
    since: str | None = None  # with a temporal `column`: the value is column - since, in days


class Release(_Spec):
    k: int = Field(DEFAULT_K, description=f"write the smallest cell size, {MIN_K} or more")
    dimensions: tuple[Dimension, ...] = Field(min_length=1, description="list the columns "
                                              "to group by")
    measures: tuple[Measure, ...] = ()
    title: str = ""
    licence: str = "CC-BY-4.0"

    _lists = field_validator("dimensions", "measures", mode="before")(_as_tuple)

    @property
    def columns(self) -> tuple[str, ...]:
        """The published table's columns, in order: dimensions, records, measures."""
        return (*(d.name for d in self.dimensions), "records", *(m.name for m in self.measures))


def parse_release(value: Any, columns: dict[str, Any], key: tuple[str, ...],
                  problems: Problems) -> Release | None:
    """The release a contract declares, or None with what is wrong with it. `columns` maps a
    name to the contract's Column (contracts/model.py), `key` is the primary key."""
    try:
        release = Release.model_validate(value)
    except ValidationError as exc:
        problems += problems_of(exc, Release, WHERE)
        return None
    found = release_problems(release, columns, key)
    problems += found
    return None if found else release


def release_problems(release: Release, columns: dict[str, Any],
                     key: tuple[str, ...]) -> Problems:
    found: Problems = []
    if release.k < MIN_K:
        found.append((f"{WHERE}.k", f"got {release.k}; a release never publishes a cell of "
                      f"fewer than {MIN_K} records: write k: {MIN_K} or more (default "
                      f"{DEFAULT_K})"))
    for i, dim in enumerate(release.dimensions):
        found += _dimension(f"{WHERE}.dimensions[{i}]", dim, columns, key)
    for i, measure in enumerate(release.measures):
        found += _measure(f"{WHERE}.measures[{i}]", measure, columns)
    names = list(release.columns)
    for name in sorted({n for n in names if names.count(n) > 1}):
        found.append((WHERE, f"{name!r} is published twice; give one a `label` or `name`"))
    found += [(WHERE, f"{n!r} is not a lowercase identifier; rename it") for n in names
              if not NAME.match(n)]
    return found


def _known(at: str, name: str, columns: dict[str, Any]) -> Problems:
    if name in columns:
        return []
    return [(at, f"{name!r} is not a column of the contract{closest(name, list(columns))}")]


def _dimension(at: str, dim: Dimension, columns: dict[str, Any],
               key: tuple[str, ...]) -> Problems:
    unknown = _known(f"{at}.column", dim.column, columns)
    if unknown:
        return unknown
    col = columns[dim.column]
    if col.personal:
        return [(f"{at}.column", f"{dim.column!r} is personal ({col.classification}): a "
                 "personal column is never a dimension of a public release; use a named "
                 "area or category column instead")]
    if col.free_text:
        return [(f"{at}.column", f"{dim.column!r} is free text: free text is never "
                 "published; group by a category column instead")]
    if dim.column in key:
        return [(f"{at}.column", f"{dim.column!r} is the primary key: every cell would be "
                 "one record; group by a column many records share")]
    return _generalised(at, dim, col.logical_type)


def _generalised(at: str, dim: Dimension, logical_type: str) -> Problems:
    if logical_type in TEMPORAL and dim.by is None:
        return [(f"{at}.by", f"{dim.column!r} is a {logical_type}: write by: day, week, "
                 "month or year (an exact time nearly singles a record out)")]
    if logical_type == "number" and dim.bands is None and dim.grid is None:
        return [(at, f"{dim.column!r} is a number: write bands: [edges...] or grid: <size> "
                 "(exact values nearly single a record out)")]
    if dim.by is not None and logical_type not in TEMPORAL:
        return [(f"{at}.by", f"{dim.column!r} is {logical_type}, not a date or timestamp; "
                 "remove by")]
    if (dim.bands is not None or dim.grid is not None) and logical_type not in NUMERIC:
        return [(at, f"{dim.column!r} is {logical_type}: bands and grid apply to integer or "
                 "number columns")]
    return []


def _measure(at: str, measure: Measure, columns: dict[str, Any]) -> Problems:
    agg = measure.aggregate
    if agg not in AGGREGATES and not PERCENTILE.match(agg):
        return [(f"{at}.aggregate", f"got {agg!r}; write one of {', '.join(AGGREGATES)} or "
                 "pNN, e.g. p90")]
    if agg == "count":
        return ([] if measure.column is None and measure.since is None else
                [(at, "count counts the cell's records: remove column and since")])
    if measure.column is None:
        return [(f"{at}.column", f"missing; name the column to take the {agg} of")]
    found = _known(f"{at}.column", measure.column, columns)
    if measure.since is not None:
        found += _known(f"{at}.since", measure.since, columns)
    if found:
        return found
    return _measured(at, measure, [columns[measure.column]] + (
        [columns[measure.since]] if measure.since else []))


def _measured(at: str, measure: Measure, used: list[Any]) -> Problems:
    for col in used:
        if col.personal:
            return [(f"{at}.column", f"{col.name!r} is personal ({col.classification}): a "
                     "public release aggregates no personal column")]
        if col.free_text:
            return [(f"{at}.column", f"{col.name!r} is free text: free text is never "
                     "published")]
    types = {col.logical_type for col in used}
    if measure.since is not None and not types <= set(TEMPORAL):
        return [(f"{at}.since", "since takes the days between two date or timestamp "
                 "columns: name two of them")]
    if measure.since is None and not types <= set(NUMERIC):
        return [(f"{at}.column", f"{measure.column!r} is {used[0].logical_type}: a "
                 f"{measure.aggregate} needs an integer or number column (or a date with "
                 "since)")]
    return []


def percentile(aggregate: str) -> float | None:
    """The fraction a median or pNN aggregate takes (None for the others)."""
    if aggregate == "median":
        return 0.5
    match = PERCENTILE.match(aggregate)
    return int(match[1]) / 100 if match else None
