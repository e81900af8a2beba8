"""A dataset's key, guessed from a sample: a column, or up to three, unique in it. Pure.

Real samples are not always clean: a date delivered twice makes the true key repeat. A
column that is unique but for a handful of rows (at most NEAR_UNIQUE of them) is taken
over a combination that only happens to be unique, and the repeats are said.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from typing import Any

from contracts.infer import Profile

KEY_TYPES = ("string", "integer", "date", "timestamp")  # not measures, flags or times of day
NEAR_UNIQUE = 0.005  # share of rows that may repeat a near-unique column's value
MAX_COMBINED = 10  # columns tried in combinations, the most varied first
KEY_NAME = re.compile(r"(^|_)(id|key|number|no|code|uuid)$")


def candidate_key(profiles: Sequence[Profile],
                  rows: Sequence[Sequence[Any]]) -> tuple[list[int], list[str]]:
    """(positions of the key's columns, what is unsure about it)."""
    eligible = [i for i, p in enumerate(profiles) if p.type.logical_type in KEY_TYPES]
    complete = [i for i in eligible if profiles[i].nulls == 0]
    unique = [i for i in complete if profiles[i].distinct == len(rows)]
    if unique:
        return [min(unique, key=lambda i: (not KEY_NAME.search(profiles[i].name), i))], []
    near = [i for i in complete if len(rows) - profiles[i].distinct <= NEAR_UNIQUE * len(rows)]
    if near:
        best = max(near, key=lambda i: profiles[i].distinct)
        return [best], [_repeats(profiles[best], len(rows), "chosen as the key although")]
    combined = _combination(profiles, rows, complete)
    if combined:
        names = ", ".join(profiles[i].name for i in combined)
        return combined, [f"no single column is unique in the sample; ({names}) is: check that "
                          "it is the dataset's key"]
    return _fallback(profiles, rows, eligible or list(range(len(profiles))))


def _combination(profiles: Sequence[Profile], rows: Sequence[Sequence[Any]],
                 complete: list[int]) -> list[int] | None:
    varied = sorted(complete, key=lambda i: -profiles[i].distinct)[:MAX_COMBINED]
    for size in (2, 3):
        for combo in itertools.combinations(sorted(varied), size):
            if math.prod(profiles[i].distinct for i in combo) < len(rows):
                continue  # too few value combinations to tell every row apart
            if len({tuple(row[i] for i in combo) for row in rows}) == len(rows):
                return list(combo)
    return None


def _fallback(profiles: Sequence[Profile], rows: Sequence[Sequence[Any]],
              eligible: list[int]) -> tuple[list[int], list[str]]:
    best = max(eligible, key=lambda i: (profiles[i].distinct, -profiles[i].nulls))
    note = _repeats(profiles[best], len(rows), "no column or combination of up to three is "
                    "unique in the sample; chosen as the key:")
    return [best], [note + "; give the dataset a real key if it has one"]


def _repeats(profile: Profile, rows: int, what: str) -> str:
    repeated = rows - profile.nulls - profile.distinct
    faults = ([f"{repeated} row(s) repeat a value"] if repeated else []) + (
        [f"{profile.nulls} row(s) have none"] if profile.nulls else [])
    said = " and ".join(faults) or "no row repeats a value"
    return f"{profile.name}: {what} {said}: such rows are quarantined"
