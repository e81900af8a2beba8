"""The hub's view of a data contract: just the fields it acts on, read from ODCS v3."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.release import Release
from contracts.source_config import SourceConfig, SqlConfig

# ODCS `classification` values that mean "personal data": masked by default.
PERSONAL_CLASSES = frozenset({"personal", "pii", "sensitive"})
KNOWN_CLASSES = PERSONAL_CLASSES | {"public", "internal", "restricted", "confidential"}
# The customProperty that declares a public release of a dataset.
# How a personal column may be masked (customProperty `hubMask`); access_policies implements them.
MASK_KINDS = frozenset({"redact", "null", "last4", "hash", "year_only", "bucket"})


@dataclass(frozen=True)
class Column:
    """One schema property of the shared dataset."""

    name: str
    logical_type: str
    physical_type: str
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    classification: str = "public"
    description: str = ""
    # Row-level quality rules on this column: (rule kind, argument), e.g. ("pattern", "^\\d+$")
    checks: tuple[tuple[str, Any], ...] = ()
    mask: str | None = None  # hub customProperty `hubMask`: how to mask when personal
    # ODCS `primaryKeyPosition`: where the column stands in a composite key (None: unstated)
    key_position: int | None = None
    # ODCS `logicalTypeOptions.format` of a date/timestamp/time column: the JDK
    # DateTimeFormatter pattern its values arrive in (None: ISO 8601)
    date_format: str | None = None
    # customProperty `hubFreeText: true`: people's own words (comments, descriptions), which
    # a public release never publishes (contracts/release.py)
    free_text: bool = False

    @property
    def personal(self) -> bool:
        return self.classification in PERSONAL_CLASSES


@dataclass(frozen=True)
class Contract:
    """A validated contract for one shared dataset."""

    dataset_id: str  # "<domain>.<schema name>", e.g. public_works.service_requests
    version: str
    title: str
    department: str
    owner: str
    description: str
    columns: tuple[Column, ...]
    grain: str = ""
    min_row_count: int | None = None
    # SLA `latency` on an element: (column, seconds) its newest value may be old at most
    freshness: tuple[str, int] | None = None
    # ODCS `type: sql` rules: (query with {object} for the table, SQL operator, threshold)
    sql_checks: tuple[tuple[str, str, Any], ...] = ()
    source: SourceConfig | None = None
    # ODCS `status`: a `retired` dataset is no longer built or served (hub/registry.py)
    status: str = "active"
    # customProperty `hubPublicRelease`: the k-anonymous aggregate anyone may read (None:
    # the dataset is not open)
    release: Release | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def entity(self) -> str:
        return self.dataset_id.split(".", 1)[1]

    @property
    def relation_name(self) -> str:
        """Table name used in the warehouse: public_works__service_requests."""
        return self.dataset_id.replace(".", "__")

    @property
    def field_map(self) -> dict[str, str]:
        """Contract column -> name in the source, for every column: the source's `columns`
        names those that differ (a SQL source is read by the contract's names)."""
        renamed = {} if self.source is None or isinstance(self.source, SqlConfig) else (
            self.source.columns)
        return {c.name: renamed.get(c.name, c.name) for c in self.columns}

    @property
    def raw_schema(self) -> str:
        return f"raw_{self.department}"

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The key columns in `primaryKeyPosition` order; unpositioned ones by their place
        among the columns."""
        keyed = [(c.key_position or i + 1, i, c.name)
                 for i, c in enumerate(self.columns) if c.primary_key]
        return tuple(name for _, _, name in sorted(keyed))

    @property
    def open(self) -> bool:
        """Published to everyone (as aggregates), not only shared between departments."""
        return self.release is not None

    @property
    def retired(self) -> bool:
        return self.status == "retired"

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)
