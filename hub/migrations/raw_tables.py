"""Raw landing tables from before the load id, upgraded in place when next ingested.

Raw tables are not in the numbered migrations: each is created from its contract when its
dataset is first ingested (flows/load.py), in a schema bootstrap does not know. So their
upgrade runs there too, on the table in hand, and is recognised by the column it removes.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from contracts import Contract

# Such tables carried `_batch_id`, `_source` and `_delivery_id` on every row. Their batches
# move to hub.load_batches (a batch with no record there gets one) and each row gets its
# batch's load id. Migration 0002 gave hub.load_batches the load id before this runs.
UPGRADE = """
alter table {table} add column if not exists _delivery_id uuid;  -- from before deliveries
insert into hub.load_batches (batch_id, dataset, source, rows, loaded_at)
select _batch_id, {dataset}, min(_source), count(*), min(_loaded_at) from {table}
group by _batch_id on conflict (batch_id) do nothing;
update hub.load_batches b set delivery_id = d._delivery_id
from (select distinct _batch_id, _delivery_id from {table}) d
where b.batch_id = d._batch_id and b.delivery_id is null;
alter table {table} add column _load_id bigint;
update {table} r set _load_id = b.load_id from hub.load_batches b
where b.batch_id = r._batch_id;
alter table {table} drop column _batch_id, drop column _source,
    drop column _delivery_id, alter column _load_id set not null;
"""


def upgrade_raw_table(conn: psycopg.Connection, contract: Contract) -> bool:
    """Upgrade the contract's raw table if it is from before the load id; say whether it was.
    Runs in a transaction of its own (a savepoint inside the caller's, if one is open)."""
    if not _has_row_batches(conn, contract):
        return False
    table = sql.Identifier(contract.raw_schema, contract.entity)
    with conn.transaction():
        # Two ingests starting at once: the second waits here, then finds nothing to do.
        conn.execute(sql.SQL("lock table {} in access exclusive mode").format(table))
        if not _has_row_batches(conn, contract):
            return False
        conn.execute(sql.SQL(UPGRADE).format(table=table,
                                             dataset=sql.Literal(contract.dataset_id)))
    return True


def _has_row_batches(conn: psycopg.Connection, contract: Contract) -> bool:
    [found] = conn.execute(
        "select exists (select from information_schema.columns where table_schema = %s"
        " and table_name = %s and column_name = '_batch_id')",
        [contract.raw_schema, contract.entity]).fetchone()
    return found
