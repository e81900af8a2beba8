"""Publish a validated candidate to `shared`, as a new numbered version.

The swap happens in one transaction: readers see the old version or the new one, never
a half-copied table, and a failure leaves the last good version served. The rows the
contract held back move to `quarantine` in the same transaction, so at every moment
published + quarantined accounts for every source record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql

from contracts import Contract
from flows.routing import Route, changed_rows, notify_routes, stage_changes
from hub import change_keys, changes, releases

DEFAULT_KEPT = 10  # HUB_CHANGE_FEED_VERSIONS' default


@dataclass(frozen=True)
class Published:
    version: int
    rows: int
    quarantined: int
    routed: dict[str, int] | None = None  # department -> new or changed rows it was told of


def publish(warehouse_url: str, contract: Contract, run_id: uuid.UUID,
            kept: int = DEFAULT_KEPT, routes: list[Route] | None = None) -> Published:
    """Copy candidate -> shared (and its quarantine -> quarantine); record the version.
    The version it replaces moves to history, for change feeds (hub/changes.py), and
    at most `kept` versions stay there; the keys that changed since it are written beside
    them (hub/change_keys.py). An open dataset's public release is published with it.
    With `routes`, each responsible department is notified of
    new or changed rows (flows/routing.py). All in one transaction."""
    name = contract.relation_name
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [contract.dataset_id])
        new_major = _keep_older_major(conn, contract)
        staged = bool(routes) and kept == 0  # no change keys will be written to count from
        if staged:
            stage_changes(conn, contract, sql.Identifier("candidate", name))
        changes.keep(conn, contract.dataset_id, name, kept, new_major)
        change_keys.drop_stale(conn, contract.dataset_id)
        rows = _swap(conn, sql.Identifier("candidate", name), "shared", name,
                     contract.primary_key)
        held = _swap(conn, sql.Identifier("candidate", f"{name}__quarantine"), "quarantine",
                     name, contract.primary_key, unique=False)
        version, keys = _record_version(conn, contract, rows, held, run_id)
        # An open dataset's public aggregate moves with it (hub/releases.py).
        releases.publish_release(conn, contract, version)
        routed = notify_routes(conn, contract, version, routes,
                               changed_rows(contract, keys, staged)) if routes else None
    return Published(version, rows, held, routed)


def _record_version(conn: psycopg.Connection, contract: Contract, rows: int, held: int,
                    run_id: uuid.UUID) -> tuple[int, str | None]:
    """The next version number, recorded with the keys it changed (hub/change_keys.py);
    the version and the name of its change-key table (None when none was written)."""
    [version] = conn.execute("select coalesce(max(version), 0) + 1 from"
                             " hub.dataset_versions where dataset = %s",
                             [contract.dataset_id]).fetchone()
    keys = change_keys.record(conn, contract.dataset_id, contract.relation_name,
                              [c.name for c in contract.columns], contract.primary_key,
                              version)
    conn.execute(
        "insert into hub.dataset_versions (dataset, version, contract_version, row_count,"
        " quarantined, run_id, changed_keys) values (%s, %s, %s, %s, %s, %s, %s)",
        [contract.dataset_id, version, contract.version, rows, held, run_id, keys])
    return version, keys


def _keep_older_major(conn: psycopg.Connection, contract: Contract) -> bool:
    """A new major version does not replace the old one's table: it stays, as
    shared.<dataset>__v<major>, for consumers to read until its deprecation date.
    True when this publish starts a new major version."""
    served = conn.execute(
        "select split_part(contract_version, '.', 1)::int from hub.dataset_versions"
        " where dataset = %s order by version desc limit 1", [contract.dataset_id]).fetchone()
    if served is None or served[0] >= contract.major:
        return False
    kept = f"{contract.relation_name}__v{served[0]}"
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier("shared", kept)))
    conn.execute(sql.SQL("alter table {} rename to {}").format(
        sql.Identifier("shared", contract.relation_name), sql.Identifier(kept)))
    return True


def _swap(conn: psycopg.Connection, source: sql.Identifier, schema: str, name: str,
          key: tuple[str, ...], unique: bool = True) -> int:
    """Replace `schema.name` by a copy of `source`, indexed on `key` (its primary key, or,
    not `unique`, an index: quarantined rows may repeat or lack a key, and are paged by
    it); return its row count."""
    staged = sql.Identifier(schema, f"{name}__next")
    conn.execute(sql.SQL("drop table if exists {}").format(staged))
    conn.execute(sql.SQL("create table {} as table {}").format(staged, source))
    columns = sql.SQL(", ").join(map(sql.Identifier, key))
    if key and unique:
        conn.execute(sql.SQL("alter table {} add primary key ({})").format(staged, columns))
    elif key:
        conn.execute(sql.SQL("create index on {} ({})").format(staged, columns))
    # Statistics now, not when autovacuum gets round to it: without them the planner takes
    # a row filter's reference-dataset join for a handful of rows and sorts the whole table
    # for each page (bench/api.py: 34 ms a page instead of 0.2 ms).
    conn.execute(sql.SQL("analyze {}").format(staged))
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, name)))
    conn.execute(sql.SQL("alter table {} rename to {}").format(staged, sql.Identifier(name)))
    return conn.execute(sql.SQL("select count(*) from {}").format(
        sql.Identifier(schema, name))).fetchone()[0]
