"""Extract a dataset from its departmental source and land it, batch by batch."""

from __future__ import annotations

import psycopg

from contracts import Contract
from flows.load import LoadResult, ensure_raw_table, load_batch, read_cursor
from flows.sources.sql import read_batches
from hub.warehouse import sqlalchemy_url


def ingest(warehouse_url: str, contract: Contract, source_url: str) -> LoadResult:
    """Load everything changed since the last committed cursor; return what was loaded."""
    if contract.source is None:
        raise ValueError(f"{contract.dataset_id}: the contract has no hubSource to ingest from")
    src = contract.source
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        ensure_raw_table(conn, contract)
        batches = read_batches(
            sqlalchemy_url(source_url), table=src.table,
            columns=[c.name for c in contract.columns], cursor_column=src.cursor_column,
            key_column=contract.primary_key[0], after=read_cursor(conn, contract.dataset_id),
            batch_size=src.batch_size,
        )
        count = rows = 0
        for batch in batches:
            with conn.transaction():  # rows, load record and cursor commit together
                rows += load_batch(conn, contract, batch, f"{src.kind}:{src.table}")
            count += 1
    return LoadResult(batches=count, rows=rows)
