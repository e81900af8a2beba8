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

Key = tuple[str | None, ...]
Equation = tuple[Key, tuple[Key, ...]]  # a margin, and the finer cells that sum to it
PRIME = (1 << 61) - 1  # the field the recoverability check computes in (see _reduce)


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
    """The suppressed keys whose value the published cells and the equations fix: those
    whose unit vector lies in the row space of the equations over the suppressed keys.
    In reduced row echelon form, that is a row holding that key alone."""
    reduced: dict[Key, dict[Key, int]] = {}  # pivot key -> its row, pivot 1
    rank = {key: i for i, key in enumerate(sorted(suppressed, key=_order))}  # pivot order
    for margin, cells in eqs:
        row = {c: PRIME - 1 for c in cells if c in suppressed}
        if margin in suppressed:
            row[margin] = 1
        _reduce(row, reduced, rank)
    return {pivot for pivot, row in reduced.items() if len(row) == 1}


def _reduce(row: dict[Key, int], reduced: dict[Key, dict[Key, int]],
            rank: dict[Key, int]) -> None:
    """Add `row` to the reduced echelon form `reduced`. Integers modulo a 61-bit prime:
    exact (no rounding), and fast where rationals spent seconds on the 311 table. A key
    this misses would need the prime to divide one of the equations' minors, a chance
    of about 1 in 10^18; tests/test_release_rules.py checks with true rationals."""
    for pivot in [key for key in row if key in reduced]:
        factor = row.get(pivot)
        if factor:
            _subtract(row, reduced[pivot], factor)
    if not row:
        return  # a combination of the equations already there
    pivot = min(row, key=rank.__getitem__)
    inverse = pow(row[pivot], PRIME - 2, PRIME)
    row = {key: value * inverse % PRIME for key, value in row.items()}
    for other in reduced.values():  # keep every other row free of the new pivot
        factor = other.get(pivot)
        if factor:
            _subtract(other, row, factor)
    reduced[pivot] = row


def _subtract(row: dict[Key, int], other: dict[Key, int], factor: int) -> None:
    """row -= factor * other, dropping what becomes zero."""
    for key, value in other.items():
        left = (row.get(key, 0) - factor * value) % PRIME
        if left:
            row[key] = left
        else:
            row.pop(key, None)


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
