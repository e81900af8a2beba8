"""The public release rules (contracts/suppression.py), property-based on generated tables:
no published cell under k, no suppressed cell recoverable from the release's margins, no
cell recoverable by differencing two consecutive releases.

Recoverability is checked here independently of the module: exact rational elimination
over equations built from the table's own sums (a margin is the sum of the cells it
covers), not the module's floating-point rank test.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.suppression import Key, margins, suppress

# Fixed and modest: the same examples on every run (CI reproducible), in about a second.
RULES = settings(max_examples=60, derandomize=True, deadline=None)


def levels(dims: int) -> list[tuple[bool, ...]]:
    """The hub's release shape: each dimension's totals and the grand total."""
    return [tuple(i == j for j in range(dims)) for i in range(dims)] + [(False,) * dims]


@st.composite
def tables(draw: st.DrawFn) -> tuple[dict[Key, int], int]:
    """(base cells by key, k): 2 or 3 dimensions of 1 to 4 values, many small cells."""
    k = draw(st.integers(5, 12))
    sizes = draw(st.lists(st.integers(1, 4), min_size=2, max_size=3))
    keys = list(product(*[[f"v{i}" for i in range(n)] for n in sizes]))
    counts = draw(st.lists(st.one_of(st.integers(0, k - 1), st.integers(k, 4 * k)),
                           min_size=len(keys), max_size=len(keys)))
    return {key: n for key, n in zip(keys, counts, strict=True) if n}, k


def release(base: dict[Key, int], k: int,
            previous: dict[Key, int] | None = None) -> tuple[dict[Key, int], set[Key]]:
    """(published counts, suppressed keys) of the table with its margins."""
    table = margins(base, levels(len(next(iter(base)))))
    hidden = set(suppress(table, k, previous))
    return {key: n for key, n in table.items() if key not in hidden}, hidden


def exposed(base: dict[Key, int], published: dict[Key, int], hidden: set[Key]) -> set[Key]:
    """The hidden keys that the published margins pin down exactly."""
    dims = len(next(iter(base)))
    table = margins(base, levels(dims))
    rows = []
    for margin in (key for key in table if None in key):
        covered = [key for key in base
                   if all(m in (None, v) for m, v in zip(margin, key, strict=True))]
        rows.append({margin: 1, **{key: -1 for key in covered}})
    total = (None,) * dims
    for d in range(dims):  # the grand total is also the sum of each dimension's totals
        ones = [key for key in table if key != total
                and sum(v is not None for v in key) == 1 and key[d] is not None]
        rows.append({total: 1, **{key: -1 for key in ones}})
    unknown = sorted(hidden, key=str)
    reduced = echelon([[Fraction(row.get(key, 0)) for key in unknown] for row in rows])
    # In reduced row echelon form a unit vector lies in the row space iff it is a row.
    return {unknown[row.index(1)] for row in reduced if sum(1 for v in row if v) == 1}


def echelon(rows: list[list[Fraction]]) -> list[list[Fraction]]:
    """The reduced row echelon form, exact; the zero rows dropped."""
    rows = [row for row in rows if any(row)]
    found, width = 0, len(rows[0]) if rows else 0
    for column in range(width):
        pivot = next((r for r in range(found, len(rows)) if rows[r][column]), None)
        if pivot is None:
            continue
        rows[found], rows[pivot] = rows[pivot], rows[found]
        lead = rows[found][column]
        rows[found] = [v / lead for v in rows[found]]
        nonzero = [(i, v) for i, v in enumerate(rows[found]) if v]
        for r in range(len(rows)):
            factor = rows[r][column]
            if r != found and factor:
                row = rows[r]
                for i, v in nonzero:
                    row[i] -= factor * v
        found += 1
    return rows[:found]


@RULES
@given(tables())
def test_no_published_cell_under_k(drawn: tuple[dict[Key, int], int]) -> None:
    base, k = drawn
    if base:
        published, _ = release(base, k)
        assert all(n >= k for n in published.values())


@RULES
@given(tables())
def test_no_suppressed_cell_recoverable_from_margins(drawn: tuple[dict[Key, int], int]) -> None:
    base, k = drawn
    if base:
        published, hidden = release(base, k)
        assert not exposed(base, published, hidden)


@RULES
@given(tables(), st.data())
def test_no_cell_recoverable_by_differencing(drawn: tuple[dict[Key, int], int],
                                              data: st.DataObject) -> None:
    """Three releases of a changing table, each compared with every cell's last published
    count (as hub/releases.py keeps it): any two counts of a cell anyone saw differ by 0 or
    by k and more, even with the cell hidden in between."""
    base, k = drawn
    known: dict[Key, int] = {}
    for _ in range(3):
        if not base:
            return
        published, hidden = release(base, k, previous=known)
        for key in set(known) & set(published):
            assert published[key] == known[key] or abs(published[key] - known[key]) >= k
        assert not exposed(base, published, hidden)
        known |= published
        changes = data.draw(st.lists(st.integers(-k, k), min_size=len(base),
                                     max_size=len(base)))
        base = {key: n + c for (key, n), c in zip(base.items(), changes, strict=True)
                if n + c > 0}


def test_the_checker_catches_a_recoverable_cell() -> None:
    """Small cells alone are not enough: a row total minus its published cells gives the
    hidden one. The check above sees it, and the rules suppress a second cell instead."""
    base = {("a", "x"): 3, ("a", "y"): 20, ("b", "x"): 30, ("b", "y"): 40}
    table = margins(base, levels(2))
    only_small = {key for key, n in table.items() if n < 10}
    naive = {key: n for key, n in table.items() if key not in only_small}
    assert exposed(base, naive, only_small) == {("a", "x")}
    published, hidden = release(base, 10)
    assert ("a", "x") in hidden and len(hidden) > 1 and not exposed(base, published, hidden)
