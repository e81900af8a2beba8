"""Change feeds: what changed in a dataset between a kept published version and the newest.

Publishing moves the served table into `history` instead of dropping it (flows/publish.py
calls `keep`): a rename, not a copy. The last HUB_CHANGE_FEED_VERSIONS versions are kept;
older ones are dropped in the same transaction. Each publish also writes the keys it
changed (hub/change_keys.py), and a feed reads its rows by those keys. `diff_sql` is the
diff of two whole versions, keyed by the primary key (every column of a composite one), as
two branches: the newest rows that are new or differ, and the kept rows whose key is gone.
It is what a feed reads when a version in its range has no change-key table (published
before them), and it joins both versions for each page (bench/changes.py: about 2 s a page
at 1,000,000 rows).

A new major version replaces the table under another shape: versions of an older major
are dropped from history, so a feed never crosses a major version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

HISTORY = "history"
# The dataset's published versions, the kept table of each (null: not kept) and its
# change-key table (hub/change_keys.py; null: none).
VERSIONS = ("select version, snapshot, changed_keys from hub.dataset_versions"
            " where dataset = %s order by version")
COLUMNS = ("select a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid"
           " join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s"
           " and c.relname = %s and a.attnum > 0 and not a.attisdropped order by a.attnum")


def snapshot_name(relation: str, version: int) -> str:
    return f"{relation}__v{version}"


def keep(conn: psycopg.Connection, dataset: str, relation: str, kept: int,
         new_major: bool) -> None:
    """Before a publish replaces shared.<relation>: move it to history as the version it
    is, then drop the kept versions beyond `kept` (all of them on a new major)."""
    [served] = conn.execute("select max(version) from hub.dataset_versions where dataset = %s",
                            [dataset]).fetchone()
    if served is not None and kept > 0 and not new_major and _exists(conn, "shared", relation):
        _move(conn, relation, snapshot_name(relation, served))
        conn.execute("update hub.dataset_versions set snapshot = %s"
                     " where dataset = %s and version = %s",
                     [snapshot_name(relation, served), dataset, served])
    expired = conn.execute(
        "select version, snapshot from hub.dataset_versions where dataset = %s"
        " and snapshot is not null order by version desc offset %s",
        [dataset, 0 if new_major else kept]).fetchall()
    for version, snapshot in expired:
        conn.execute(sql.SQL("drop table if exists {}").format(
            sql.Identifier(HISTORY, snapshot)))
        conn.execute("update hub.dataset_versions set snapshot = null"
                     " where dataset = %s and version = %s", [dataset, version])


def _exists(conn: psycopg.Connection, schema: str, relation: str) -> bool:
    return conn.execute(COLUMNS, [schema, relation]).fetchone() is not None


def _move(conn: psycopg.Connection, relation: str, snapshot: str) -> None:
    # Index names share the schema's namespace with tables: the primary key's index gets a
    # name of its own (hashed: a long relation name would otherwise be cut at 63 bytes).
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(HISTORY, snapshot)))
    for [index] in conn.execute(
            "select i.relname from pg_index x join pg_class i on i.oid = x.indexrelid"
            " join pg_class t on t.oid = x.indrelid join pg_namespace n"
            " on n.oid = t.relnamespace where n.nspname = 'shared' and t.relname = %s",
            [relation]).fetchall():
        digest = hashlib.md5(f"{snapshot}/{index}".encode()).hexdigest()
        conn.execute(sql.SQL("alter index {} rename to {}").format(
            sql.Identifier("shared", index), sql.Identifier(f"history_{digest}")))
    conn.execute(sql.SQL("alter table {} set schema {}").format(
        sql.Identifier("shared", relation), sql.Identifier(HISTORY)))
    conn.execute(sql.SQL("alter table {} rename to {}").format(
        sql.Identifier(HISTORY, relation), sql.Identifier(snapshot)))


@dataclass(frozen=True)
class Window:
    """What a feed can diff: the newest version and the kept ones before it."""

    newest: int | None
    kept: dict[int, str]  # version -> its table in history
    keys: dict[int, str] = field(default_factory=dict)  # version -> its change-key table

    @property
    def oldest(self) -> int | None:
        """The oldest version a feed can start from (the newest, when none is kept)."""
        return min(self.kept, default=self.newest)

    def keys_since(self, since: int) -> list[str] | None:
        """The change-key tables of the versions after `since`, up to the newest; None when
        one lacks its table (published before change keys): diff the whole versions."""
        tables = [self.keys.get(v) for v in range(since + 1, (self.newest or 0) + 1)]
        return None if None in tables or not tables else tables


def window(rows: list[tuple]) -> Window:
    """From VERSIONS' rows: (version, snapshot, changed_keys)."""
    newest = max((r[0] for r in rows), default=None)
    return Window(newest, {r[0]: r[1] for r in rows if r[1] is not None and r[0] != newest},
                  {r[0]: r[2] for r in rows if len(r) > 2 and r[2] is not None})


def diff_sql(relation: str, snapshot: str, columns: list[str], kept_columns: list[str],
             key: tuple[str, ...]) -> bytes:
    """A SELECT of `_change` then `columns`, one row per key that differs between the kept
    table and the newest: insert and update carry the newest values, delete the kept ones.
    Columns the kept version lacks (added since, in place) are compared as absent."""
    new, old = sql.Identifier("shared", relation), sql.Identifier(HISTORY, snapshot)
    on = sql.SQL(" and ").join(sql.SQL("n.{0} = o.{0}").format(sql.Identifier(k)) for k in key)
    common = [c for c in columns if c in kept_columns]
    differs = sql.SQL("({}) is distinct from ({})").format(
        sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(c)) for c in common),
        sql.SQL(", ").join(sql.SQL("o.{}").format(sql.Identifier(c)) for c in common))
    first = sql.Identifier(key[0])
    changed = sql.SQL(
        "select case when o.{first} is null then 'insert' else 'update' end as _change, {cols}"
        " from {new} n left join {old} o on {on} where o.{first} is null or {differs}").format(
        first=first, new=new, old=old, on=on, differs=differs,
        cols=sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(c)) for c in columns))
    gone = sql.SQL(
        "select 'delete', {cols} from {old} o where not exists (select from {new} n"
        " where {on})").format(
        old=old, new=new, on=on, cols=sql.SQL(", ").join(
            sql.SQL("o.{}").format(sql.Identifier(c)) if c in kept_columns
            else sql.SQL("null") for c in columns))
    return sql.SQL("{} union all {}").format(changed, gone).as_bytes(None)


async def read_window(conn: psycopg.AsyncConnection, dataset: str) -> Window:
    return window(await (await conn.execute(VERSIONS, [dataset])).fetchall())


async def kept_columns(conn: psycopg.AsyncConnection, snapshot: str) -> list[str]:
    return [r[0] for r in await (await conn.execute(COLUMNS, [HISTORY, snapshot])).fetchall()]
