"""What changed between two versions of a contract, and which changes break consumers.

Breaking: a column removed or renamed, a type narrowed, a column made required, the primary
key changed, a quality rule added or tightened, a public column reclassified as personal
(consumers would suddenly see it masked). Such a change needs a new major version.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.mapping import Rule, rules
from contracts.model import Column, Contract

# (old, new) logical types where every old value is still a valid new value.
LOGICAL_WIDENINGS = {("integer", "number"), ("date", "timestamp")} | {
    (kind, "string") for kind in ("integer", "number", "boolean", "date", "timestamp", "time")}
# PostgreSQL types in order of what they can hold; moving right is widening.
PG_LADDERS = (("smallint", "integer", "bigint", "numeric"), ("real", "double precision"),
              ("varchar", "text"), ("timestamp", "timestamptz"))


@dataclass(frozen=True)
class Diff:
    breaking: tuple[str, ...]
    other: tuple[str, ...]


def diff(old: Contract, new: Contract) -> Diff:
    """Every change from `old` to `new`, breaking ones first."""
    breaking = _column_breaks(old, new) + _rule_breaks(old, new)
    if old.primary_key != new.primary_key:
        breaking.append(f"primary key changed from {list(old.primary_key)} to "
                        f"{list(new.primary_key)}")
    added = [c.name for c in new.columns if c.name not in _names(old)]
    other = [f"column {name} added" for name in added]
    other += [f"column {c.name} type widened from {c.physical_type} to "
              f"{new.column(c.name).physical_type}" for c in old.columns
              if c.name in _names(new) and _widens(c, new.column(c.name))
              and c.physical_type != new.column(c.name).physical_type]
    other += [f"rule {r.name} removed or loosened" for r in _loosened(old, new)]
    return Diff(tuple(breaking), tuple(other))


def version_problem(old: Contract, new: Contract, changes: Diff) -> str | None:
    """Why `new` cannot follow `old`, or None when the version number fits the changes."""
    if semver(new.version) <= semver(old.version):
        return f"version {new.version} is not above the registered {old.version}: bump it"
    if changes.breaking and new.major == old.major:
        return (f"breaking changes need a new major version ({old.major + 1}.0.0), not "
                f"{new.version}: " + "; ".join(changes.breaking))
    return None


def _column_breaks(old: Contract, new: Contract) -> list[str]:
    found = []
    added = [c.name for c in new.columns if c.name not in _names(old)]
    for col in old.columns:
        if col.name not in _names(new):
            hint = f" (renamed to {added[0]}?)" if len(added) == 1 else ""
            found.append(f"column {col.name} removed{hint}")
            continue
        found += _column_change(col, new.column(col.name))
    found += [f"new column {c.name} is required" for c in new.columns
              if c.name in added and (c.required or c.primary_key)]
    return found


def _column_change(old: Column, new: Column) -> list[str]:
    found = []
    if not _widens(old, new):
        found.append(f"column {old.name} type narrowed or changed from "
                     f"{old.logical_type}/{old.physical_type} to "
                     f"{new.logical_type}/{new.physical_type}")
    if (new.required or new.primary_key) and not (old.required or old.primary_key):
        found.append(f"column {old.name} made required")
    if new.personal and not old.personal:
        found.append(f"column {old.name} reclassified as {new.classification} (now masked)")
    return found


def _widens(old: Column, new: Column) -> bool:
    if old.logical_type != new.logical_type:
        return (old.logical_type, new.logical_type) in LOGICAL_WIDENINGS
    before, after = _base(old.physical_type), _base(new.physical_type)
    if before == after:
        return _length(new.physical_type) >= _length(old.physical_type)
    return any(before in ladder and after in ladder and ladder.index(after) > ladder.index(before)
               for ladder in PG_LADDERS)


def _rule_breaks(old: Contract, new: Contract) -> list[str]:
    before = {r.name: r for r in rules(old)}
    found = []
    for rule in rules(new):
        if rule.kind == "not_null" or (rule.column and rule.column not in _names(old)):
            continue  # reported by the column checks: "made required", "new column"
        earlier = before.get(rule.name)
        if earlier is None:
            found.append(f"rule {rule.name} added")
        elif _tighter(earlier, rule):
            found.append(f"rule {rule.name} tightened from {_shown(earlier)} to {_shown(rule)}")
    return found


def _loosened(old: Contract, new: Contract) -> list[Rule]:
    after = {r.name: r for r in rules(new)}
    return [r for r in rules(old) if r.name not in after or _tighter(after[r.name], r)]


def _tighter(old: Rule, new: Rule) -> bool:
    """Does `new` refuse a value or table `old` accepted?"""
    if old.kind == "accepted_values":
        return not set(new.value) >= set(old.value)
    if old.kind == "between":
        return new.value[0] > old.value[0] or new.value[1] < old.value[1]
    if old.kind == "row_count_at_least":
        return new.value > old.value
    return old.value != new.value  # patterns and SQL cannot be compared: any change counts


def _shown(rule: Rule) -> str:
    return repr(list(rule.value) if isinstance(rule.value, tuple) else rule.value)


def _names(contract: Contract) -> set[str]:
    return {c.name for c in contract.columns}


def _base(physical: str) -> str:
    return physical.split("(", 1)[0].strip().lower().replace("character varying", "varchar")


def _length(physical: str) -> float:
    inside = physical.partition("(")[2].rstrip(")").split(",")[0].strip()
    return float(inside) if inside.isdigit() else float("inf")


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
