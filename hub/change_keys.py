"""Change-key tables: the keys that differ between a version and the one before it, written
when a version is published so that a feed page looks its rows up by key instead of
joining two whole versions.

Publishing version M (flows/publish.py), once hub.changes.keep has moved version M-1 into
history, joins the two versions once on the primary key (every column of a composite one)
and writes the keys of the rows inserted, updated or deleted into
history.<relation>__keys_v<M>, keyed by them; hub.dataset_versions.changed_keys names it.
A feed since N to the newest M reads the distinct keys of the tables of N+1..M in key order
(so the rows route's keyset cursor and limit stop the scan early), and for each key probes
version N and the newest through their primary-key indexes: a page costs a few hundred
index probes whatever the size of the dataset. A key whose row went back to its old value
compares equal and is skipped, so the answer is the full diff's (hub.changes.diff_sql).

Retention drops a version's key table when no kept version can start a feed before it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from hub.changes import COLUMNS, HISTORY

SNAPSHOT_OF = "select snapshot from hub.dataset_versions where dataset = %s and version = %s"


def keys_name(relation: str, version: int) -> str:
    return f"{relation}__keys_v{version}"


def record(conn: psycopg.Connection, dataset: str, relation: str, columns: list[str],
           key: tuple[str, ...], version: int) -> str | None:
    """After `version` was published as shared.<relation> (not yet in dataset_versions):
    write its change-key table against the kept version before it and return its name;
    None when that version is not kept (the first version, a new major, none kept)."""
    found = conn.execute(SNAPSHOT_OF, [dataset, version - 1]).fetchone()
    if found is None or found[0] is None:
        return None
    snapshot = found[0]
    kept = [r[0] for r in conn.execute(COLUMNS, [HISTORY, snapshot])]
    name = keys_name(relation, version)
    table = sql.Identifier(HISTORY, name)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    # Both versions have their primary-key index: a merge join reading them in key order
    # took about half the time of the hash join PostgreSQL picks (which cannot run in
    # parallel for a full join before PostgreSQL 16), and compiling it (JIT) saved less
    # than it cost; see docs/performance.md.
    conn.execute("set local enable_hashjoin = off; set local jit = off")
    conn.execute(keys_sql(relation, snapshot, name, [c for c in columns if c in kept], key))
    conn.execute("reset enable_hashjoin; reset jit")
    conn.execute(sql.SQL("alter table {} add primary key ({})").format(
        table, sql.SQL(", ").join(map(sql.Identifier, key))))
    # A feed's plan needs the table's size: without statistics PostgreSQL guesses.
    conn.execute(sql.SQL("analyze {}").format(table))
    return name


def keys_sql(relation: str, snapshot: str, name: str, common: list[str],
             key: tuple[str, ...]) -> sql.Composed:
    """CREATE TABLE history.<name> of the keys whose row differs between the kept version
    and the newest (present in one only, or different in a column both have)."""
    on = sql.SQL(" and ").join(sql.SQL("n.{0} = o.{0}").format(sql.Identifier(k)) for k in key)
    keys = sql.SQL(", ").join(sql.SQL("coalesce(n.{0}, o.{0}) as {0}").format(sql.Identifier(k))
                              for k in key)
    return sql.SQL(
        "create table {table} as select {keys} from {new} n full join {old} o on {on}"
        " where {differs}").format(
        table=sql.Identifier(HISTORY, name), keys=keys, on=on,
        new=sql.Identifier("shared", relation), old=sql.Identifier(HISTORY, snapshot),
        differs=_differs(common))


def _differs(common: list[str], test: str = "is distinct from") -> sql.Composed:
    # As rows: a key present on one side only differs too (its other side is all null).
    return sql.SQL("({}) " + test + " ({})").format(
        sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(c)) for c in common),
        sql.SQL(", ").join(sql.SQL("o.{}").format(sql.Identifier(c)) for c in common))


def drop_stale(conn: psycopg.Connection, dataset: str) -> None:
    """Drop the key tables no feed can need: a feed starts at a kept version N and reads
    the tables of N+1 onwards, so those of the oldest kept version and before go (all of
    them when no version is kept)."""
    stale = conn.execute(
        "select version, changed_keys from hub.dataset_versions where dataset = %s"
        " and changed_keys is not null and version <= coalesce((select min(version)"
        " from hub.dataset_versions where dataset = %s and snapshot is not null),"
        " 2147483647)", [dataset, dataset]).fetchall()
    for version, name in stale:
        conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(HISTORY, name)))
        conn.execute("update hub.dataset_versions set changed_keys = null"
                     " where dataset = %s and version = %s", [dataset, version])


def feed_sql(relation: str, snapshot: str, tables: list[str], columns: list[str],
             kept_columns: list[str], key: tuple[str, ...]) -> bytes:
    """What hub.changes.diff_sql selects (`_change` then `columns`), read through the key
    tables `tables` (those of the versions after the kept one) instead of whole versions."""
    first = sql.Identifier(key[0])
    values = sql.SQL(", ").join(_value(c, key, kept_columns) for c in columns)
    # `_change` is null for a row back to its old value (or a key neither version has),
    # and those are left out. Said as `is not null` rather than as the comparison, so that
    # PostgreSQL expects most candidates to be changes: expecting almost none, it costed
    # a 100-row page as the whole scan and compiled it (JIT), 120-170 ms a page.
    return sql.SQL(
        "select * from (select case when {same} then null when n.{first} is null"
        " then 'delete' when o.{first} is null then 'insert' else 'update' end as _change,"
        " {values} from ({keys}) c left join lateral ({new}) n on true"
        " left join lateral ({old}) o on true) d where _change is not null").format(
        first=first, values=values, keys=candidates(tables, key),
        new=_probe(sql.Identifier("shared", relation), key),
        old=_probe(sql.Identifier(HISTORY, snapshot), key),
        same=_differs([c for c in columns if c in kept_columns], "is not distinct from")
    ).as_bytes(None)


def _probe(table: sql.Identifier, key: tuple[str, ...]) -> sql.Composed:
    # One index probe per candidate key. The `limit` (a key has one row at most) keeps
    # PostgreSQL from flattening this into a join: as a join it merged whole versions from
    # their first key, and a cursor page in the middle of 1,000,000 rows took 0.5 s.
    on = sql.SQL(" and ").join(sql.SQL("t.{0} = c.{0}").format(sql.Identifier(k)) for k in key)
    return sql.SQL("select * from {} t where {} limit 1").format(table, on)


def _value(column: str, key: tuple[str, ...], kept_columns: list[str]) -> sql.Composed:
    """A column of the feed: the key as read from the key tables; any other the newest
    value, or the kept one for a delete (null if the kept version lacks the column)."""
    name = sql.Identifier(column)
    if column in key:
        return sql.SQL("c.{0} as {0}").format(name)
    if column not in kept_columns:
        return sql.SQL("n.{0} as {0}").format(name)
    return sql.SQL("case when n.{first} is null then o.{0} else n.{0} end as {0}").format(
        name, first=sql.Identifier(key[0]))


def candidates(tables: list[str], key: tuple[str, ...]) -> sql.Composed:
    """The distinct keys of `tables`. Each is read in key order through its primary key,
    so PostgreSQL can merge them and stop once a page is full."""
    cols = sql.SQL(", ").join(map(sql.Identifier, key))
    each = [sql.SQL("select {} from {}").format(cols, sql.Identifier(HISTORY, t))
            for t in tables]
    if len(each) == 1:
        return each[0]
    return sql.SQL("select distinct {} from ({}) u").format(
        cols, sql.SQL(" union all ").join(each))
