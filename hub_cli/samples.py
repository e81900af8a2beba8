"""Read a sample for `hub contracts init`: a file as the file-drop source reads it, or a
table at a SQLAlchemy URL. What cannot be read is a UsageError saying what to give instead."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.draft import SourceSpec
from hub_cli.common import UsageError

URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
EXTENSIONS = ("csv", "jsonl", "ndjson", "json", "parquet")


@dataclass
class Sample:
    headers: list[str]
    rows: list[list[Any]]
    spec: SourceSpec
    notes: list[str] = field(default_factory=list)


def read_sample(location: str, table: str, limit: int, sample_root: Path) -> Sample:
    """The first `limit` rows of the file or table; notes say when there were more."""
    if URL.match(location) and not location.lower().startswith("file://"):
        return _table(location, table, limit)
    return _file(Path(location.removeprefix("file://")), limit, sample_root)


def _file(path: Path, limit: int, sample_root: Path) -> Sample:
    from flows.sources.base import SchemaDrift
    from flows.sources.files import read_records

    extension = path.suffix.lower().lstrip(".")
    if extension not in EXTENSIONS:
        raise UsageError(f"{path}: give a .csv, .jsonl, .ndjson, .json or .parquet file, or "
                         "a database URL")
    try:
        headers, records = read_records(str(path), path.read_bytes())
        rows = [list(r) for r in itertools.islice(records, limit)]
        more = sum(1 for _ in records)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (UnicodeDecodeError, ValueError, SchemaDrift) as exc:  # JSON errors are ValueErrors
        raise UsageError(f"{path}: cannot be read ({exc}); give UTF-8 CSV with a header row, "
                         "JSON (lines, or an array of objects) or Parquet") from None
    spec = SourceSpec("files", str(path), extension=extension, sample=_bundled(path, sample_root))
    return Sample(headers, rows, spec, _cut(len(rows), more))


def _bundled(path: Path, sample_root: Path) -> str | None:
    """The bundled sample folder a file is in (data/<sample>/...), which demo mode serves."""
    try:
        relative = path.resolve().relative_to(sample_root.resolve())
    except ValueError:
        return None
    return relative.parts[0] if len(relative.parts) > 1 else None


def _table(url: str, table: str, limit: int) -> Sample:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise UsageError(f"{url.split('://')[0]}://...: not a SQLAlchemy URL ({exc})") from None
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            source = _reflect(conn, table, shown)
            rows = [list(r) for r in conn.execute(sa.select(source).limit(limit))]
            total = conn.execute(sa.select(sa.func.count()).select_from(source)).scalar_one()
    except sa.exc.OperationalError as exc:
        raise UsageError(f"{shown}: cannot connect ({str(exc.orig).strip()})") from None
    finally:
        engine.dispose()
    spec = SourceSpec("sql", shown, table=table)
    return Sample([c.name for c in source.columns], rows, spec, _cut(len(rows), total - len(rows)))


def _reflect(conn: Any, table: str, shown: str) -> Any:
    import sqlalchemy as sa

    tables = sa.inspect(conn).get_table_names()
    if table not in tables:
        raise UsageError(f"{shown} has no table {table!r}; give --table, one of: "
                         f"{', '.join(sorted(tables)) or '(none)'}")
    return sa.Table(table, sa.MetaData(), autoload_with=conn)


def _cut(read: int, more: int) -> list[str]:
    if more <= 0:
        return []
    return [f"inferred from the first {read} of {read + more} rows (--rows reads more)"]
