"""File-drop source: CSV, JSON (lines or an array) and Parquet files appearing in a folder
(any fsspec URL).

A plain generator with no Prefect code. Each file is read once: every batch carries the
file's manifest entry (path, sha256, rows done so far, complete or not), which the loader
writes in the same transaction as the batch's rows. A complete file is skipped; a file cut
off mid-way resumes after its last committed row; a file whose content changed in place is
reported, never silently loaded again. Headers are compared with the contract before a
file's first row is read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fsspec

from flows.sources.base import Batch, SchemaDrift, check_drift

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
           ".parquet": "parquet"}


@dataclass(frozen=True)
class ChangedFile:
    """A file whose bytes differ from what was loaded under its name."""

    path: str
    loaded_sha256: str
    now_sha256: str


def read_files(url: str, *, fields: dict[str, str], pattern: str = "*",
               manifest: dict[str, dict] | None = None, batch_size: int = 5000,
               on_changed: Callable[[ChangedFile], None] | None = None) -> Iterator[Batch]:
    """Yield the rows of each new or unfinished file, in batches. `manifest` maps the paths
    seen before to their entries ({"sha256", "rows_done", "complete"})."""
    manifest = manifest or {}
    fs, root = fsspec.core.url_to_fs(url)
    for path in sorted(fs.glob(f"{root.rstrip('/')}/{pattern}")):
        data = fs.cat_file(path)
        digest = hashlib.sha256(data).hexdigest()
        seen = manifest.get(path)
        if seen and seen["sha256"] != digest:
            if on_changed is not None:
                on_changed(ChangedFile(path, seen["sha256"], digest))
        elif not (seen and seen["complete"]):
            yield from _batches(path, data, digest, fields, batch_size,
                                seen["rows_done"] if seen else 0)


def _batches(path: str, data: bytes, digest: str, fields: dict[str, str],
             batch_size: int, skip: int) -> Iterator[Batch]:
    header, records = read_records(path, data)
    check_drift(f"file {path}", header, list(fields.values()))
    positions = [header.index(name) for name in fields.values()]
    done, batch = skip, []
    for number, record in enumerate(records):
        if number < skip:
            continue
        batch.append(tuple(record[i] for i in positions))
        if len(batch) == batch_size:
            done += len(batch)
            yield Batch(batch, file=_entry(path, digest, len(data), done, False))
            batch = []
    yield Batch(batch, file=_entry(path, digest, len(data), done + len(batch), True))


def _entry(path: str, digest: str, size: int, done: int, complete: bool) -> dict:
    return {"path": path, "sha256": digest, "bytes": size, "rows_done": done,
            "complete": complete}


def read_records(path: str, data: bytes) -> tuple[list[str], Iterator[list]]:
    """The header and the records of one delivered file, by its extension (`hub contracts
    init` reads samples with it too, so a draft's columns are what the drop will see)."""
    kind = next((k for ext, k in FORMATS.items() if path.lower().endswith(ext)), None)
    if kind == "csv":
        rows = csv.reader(io.StringIO(data.decode("utf-8-sig")))
        return next(rows, []), (r for r in rows if r)
    if kind in ("jsonl", "json"):
        objects = _objects(path, data.decode("utf-8"), kind)
        header = list(dict.fromkeys(k for record in objects for k in record))
        return header, ([record.get(k) for k in header] for record in objects)
    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        return table.column_names, (list(r.values()) for r in table.to_pylist())
    raise SchemaDrift(f"file {path}: not .csv, .jsonl, .ndjson, .json or .parquet; "
                      "rename it or leave it out of the drop folder")


def _objects(path: str, text: str, kind: str) -> list[dict]:
    """JSON lines, or (a .json file) an array of objects such as open-data portals export."""
    if kind == "json" and text.lstrip().startswith("["):
        objects = json.loads(text)
    else:
        objects = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not all(isinstance(o, dict) for o in objects):
        raise SchemaDrift(f"file {path}: write one JSON object per record (JSON lines, or an "
                          "array of objects in a .json file)")
    return objects
