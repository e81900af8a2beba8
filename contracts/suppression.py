"""Which cells of an aggregate table a public release may publish: pure, so that the rules
are tested on generated tables (tests/test_release_rules.py) without a database.

A table is its cells' record counts by key: a key holds one value per dimension, or None
for "every value" (a margin or the total). Three rules, in order:

1. small cells: a cell of fewer than k records is suppressed;
2. differencing: a cell published before whose count changed by 1..k-1 since it was last
   published is suppressed, or subtracting the two releases would count the records that
   came or went (zero change or k and more tells no one about fewer than k records);
3. complementary suppression: a suppressed cell must not be recoverable from the published
   ones. Every margin is the sum of the finer cells it covers; a suppressed cell is
   recoverable when those equations, with the published values filled in, fix its value.
   That is a rank question: the cell's unit vector lies in the row space of the equations
   restricted to the suppressed cells. While one is, the smallest published cell in an
   equation with it is suppressed too.

The attacker is assumed to know which cells exist (so an absent cell is no cover for a
suppressed one): stricter than needed, never weaker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

Key = tuple[str | None, ...]
Equation = tuple[Key, tuple[Key, ...]]  # a margin, and the finer cells that sum to it
# Above this, the projection of a unit vector on the row space counts as the whole vector:
# the equations' coefficients are 0 and 1, far from rounding trouble.
DETERMINED = 1 - 1e-7


def level(key: Key) -> tuple[bool, ...]:
    """Which dimensions a key fixes (False where it is a margin over that dimension)."""
    return tuple(v is not None for v in key)


def covers(margin: Key, cell: Key) -> bool:
    return all(m is None or m == c for m, c in zip(margin, cell, strict=True))


def equations(keys: Iterable[Key]) -> list[Equation]:
    """For each key and each finer level present in the table: the key is the sum of the
    cells of that level it covers. Levels, not cells: an absent cell counts zero."""
    by_level: dict[tuple[bool, ...], list[Key]] = {}
    for key in keys:
        by_level.setdefault(level(key), []).append(key)
    found = []
    for coarse, margins in by_level.items():
        finer = [lv for lv in by_level if lv != coarse
                 and all(f or not c for c, f in zip(coarse, lv, strict=True))]
        for fine in finer:
            # The fine cells by the values they share with the margins: one pass, not a
            # scan of the fine level per margin.
            under: dict[Key, list[Key]] = {}
            for cell in by_level[fine]:
                under.setdefault(_project(cell, coarse), []).append(cell)
            found += [(margin, tuple(under.get(margin, ()))) for margin in margins]
    return found


def _project(key: Key, onto: tuple[bool, ...]) -> Key:
    return tuple(v if keep else None for v, keep in zip(key, onto, strict=True))


def recoverable(counts: Mapping[Key, int], suppressed: set[Key],
                eqs: list[Equation]) -> set[Key]:
    """The suppressed keys whose value the published cells and the equations fix."""
    unknown = sorted(suppressed, key=_order)
    index = {key: i for i, key in enumerate(unknown)}
    rows = [[(index[m], 1.0) for m in (margin,) if m in index]
            + [(index[c], -1.0) for c in cells if c in index] for margin, cells in eqs]
    rows = [row for row in rows if row]
    if not rows:
        return set()
    matrix = np.zeros((len(rows), len(unknown)))
    for r, row in enumerate(rows):
        for column, value in row:
            matrix[r, column] = value
    # An orthonormal basis of the row space from the small Gram matrix (equations squared)
    # rather than an SVD of the wide one: the same answer, and on a table of a thousand
    # cells an SVD ran multi-threaded BLAS for up to a second on a busy machine.
    weight, vectors = np.linalg.eigh(matrix @ matrix.T)
    kept = weight > 1e-9 * max(weight.max(), 1.0)
    rowspace = (vectors[:, kept] / np.sqrt(weight[kept])).T @ matrix
    projection = (rowspace ** 2).sum(axis=0)
    return {unknown[i] for i in np.flatnonzero(projection > DETERMINED)}


def suppress(counts: Mapping[Key, int], k: int,
             previous: Mapping[Key, int] | None = None) -> dict[Key, str]:
    """The keys not to publish, each with why: `small`, `difference` or `complementary`.
    `previous` holds each cell ever published, with the count it was last published with."""
    reasons = {key: "small" for key, n in counts.items() if n < k}
    for key, n in (previous or {}).items():
        if key in counts and key not in reasons and 0 < abs(counts[key] - n) < k:
            reasons[key] = "difference"
    eqs = equations(counts)
    while True:
        _complete_lines(counts, reasons, eqs)
        exposed = recoverable(counts, set(reasons), eqs)
        if not exposed:
            return reasons
        added = {_cover(key, counts, reasons, eqs) for key in sorted(exposed, key=_order)}
        if added == {None}:  # nothing left to suppress: cannot happen with real counts
            return reasons
        reasons.update({key: "complementary" for key in added if key is not None})


def _complete_lines(counts: Mapping[Key, int], reasons: dict[Key, str],
                    eqs: list[Equation]) -> None:
    """The cheap part first: an equation with a single suppressed member gives it away at
    once; suppress its smallest published member too, until no equation has one."""
    changed = True
    while changed:
        changed = False
        for margin, cells in eqs:
            members = (margin, *cells)
            hidden = [m for m in members if m in reasons]
            if len(hidden) == 1:
                shown = [m for m in members if m not in reasons]
                if shown:
                    reasons[_smallest(shown, counts)] = "complementary"
                    changed = True


def _cover(key: Key, counts: Mapping[Key, int], reasons: dict[Key, str],
           eqs: list[Equation]) -> Key | None:
    """The published cell to suppress to hide `key`: the smallest one in an equation with
    it, else in an equation with a suppressed cell next to it (breadth first)."""
    seen, frontier = {key}, [key]
    while frontier:
        near = [(m, c) for m, c in eqs if any(f == m or f in c for f in frontier)]
        members = [member for margin, cells in near for member in (margin, *cells)]
        shown = [member for member in members if member not in reasons]
        if shown:
            return _smallest(shown, counts)
        frontier = [member for member in members if member not in seen]
        seen.update(frontier)
    return None


def _smallest(keys: list[Key], counts: Mapping[Key, int]) -> Key:
    # Finest and smallest first: hiding a small cell costs less than hiding a total.
    return min(keys, key=lambda key: (counts[key], -sum(level(key)), _order(key)))


def _order(key: Key) -> tuple:
    return tuple((v is None, v or "") for v in key)


def margins(base: Mapping[Key, int], levels: Iterable[tuple[bool, ...]]) -> dict[Key, int]:
    """The table with the margins of `levels` added: their counts summed from `base`."""
    table = dict(base)
    for lv in levels:
        for key, n in base.items():
            margin = tuple(v if keep else None for v, keep in zip(key, lv, strict=True))
            if margin != key:
                table[margin] = table.get(margin, 0) + n
    return table
