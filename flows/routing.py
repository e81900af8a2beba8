"""Rows routed by responsibility: when a publish brings new or changed rows, each department
whose row-filtered grant admits some of them gets one notification, with the count and the
link to the change feed since the version it last saw.

Which department is responsible comes from the access policy itself: a grant with a row
filter, held by a role whose own attributes fill the filter in (e.g. a dispatcher role with
`department: sanitation` reading service requests through public_works.request_routing).
The rows are counted with the filter's own SQL (hub/row_filters.py), the one the API serves
them through, so a notification never counts a row its department could not read.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from access_policies import Policy, PolicyError, load_policies
from access_policies.row_filter import Bound, MissingAttribute, bind
from contracts import Contract, load_all
from hub import clock
from hub.catalog import in_force
from hub.notifications import notify
from hub.row_filters import clause, relations
from hub.settings import Settings

CHANGES = "hub_publish_changes"  # a temporary table of the publishing transaction


@dataclass(frozen=True)
class Route:
    department: str
    grant_id: str
    rows: Bound


def routes_of(warehouse_url: str, contract: Contract, settings: Settings) -> list[Route]:
    """The routes of the dataset under the policy files in force (none if they do not load:
    the pass that registered the contracts has already said why)."""
    with psycopg.connect(warehouse_url) as conn:
        known = {**in_force(conn, retired=True), **load_all(settings.contracts_dir)}
    try:
        return routes_for(load_policies(settings.policies_dir, known), contract)
    except PolicyError:
        return []


def routes_for(policy: Policy, contract: Contract) -> list[Route]:
    """One route per department whose role's attributes bind a filtered grant of the
    dataset (the first such grant decides); roles needing a client's attribute are skipped."""
    found: dict[str, Route] = {}
    today = clock.today()
    for grant in policy.grants:
        if grant.dataset != contract.dataset_id or grant.row_filter is None:
            continue
        if (grant.valid_from and today < grant.valid_from) or \
                (grant.valid_until and today > grant.valid_until):
            continue
        for name in sorted(grant.roles):
            role = policy.roles[name]
            try:
                bound = bind(grant.row_filter, role.attributes)
            except MissingAttribute:
                continue
            found.setdefault(role.department, Route(role.department, grant.id, bound))
    return list(found.values())


def stage_changes(conn: psycopg.Connection, contract: Contract, candidate: sql.Identifier) -> None:
    """Before the swap: the candidate's rows that are new, or differ from the served ones.
    Only when no versions are kept for change feeds: otherwise the change-key table that
    the publish writes anyway says which rows changed (changed_rows)."""
    shared = sql.Identifier("shared", contract.relation_name)
    served = conn.execute("select to_regclass(%s) is not null",
                          [f"shared.{contract.relation_name}"]).fetchone()[0]
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(CHANGES)))
    if not served:  # the first publish: every row is new
        conn.execute(sql.SQL("create temp table {} on commit drop as table {}").format(
            sql.Identifier(CHANGES), candidate))
        return
    conn.execute(sql.SQL(
        "create temp table {changes} on commit drop as select c.* from {candidate} c"
        " where not exists (select from {shared} s where ({skey}) = ({ckey})"
        " and row(s.*) is not distinct from row(c.*))").format(
        changes=sql.Identifier(CHANGES), candidate=candidate, shared=shared,
        skey=sql.SQL(", ").join(sql.Identifier("s", k) for k in contract.primary_key),
        ckey=sql.SQL(", ").join(sql.Identifier("c", k) for k in contract.primary_key)))


def changed_rows(contract: Contract, keys: str | None, staged: bool) -> sql.Composable:
    """The published version's new or changed rows, as a relation to count from: the rows
    of its change-key table (hub/change_keys.py, written by the same publish, so the two
    versions are diffed once), the staged ones when no versions are kept for feeds, or
    every row when there was no earlier version of this major to differ from."""
    shared = sql.Identifier("shared", contract.relation_name)
    if staged:
        return sql.Identifier(CHANGES)
    if keys is None:
        return shared
    return sql.SQL("(select s.* from {} s join {} using ({})) as changed").format(
        shared, sql.Identifier("history", keys),
        sql.SQL(", ").join(map(sql.Identifier, contract.primary_key)))


def notify_routes(conn: psycopg.Connection, contract: Contract, version: int,
                  routes: list[Route], changed: sql.Composable) -> dict[str, int]:
    """One notification per department with new or changed rows in its filter (`changed`,
    from changed_rows()); the counts."""
    counts = {}
    for route in routes:
        if not all(_published(conn, relation) for relation in relations(route.rows)):
            continue  # its reference dataset is not published yet: nothing is routed by it
        condition, params = clause(route.rows)
        (count,) = conn.execute(sql.SQL("select count(*) from {} where {}").format(
            changed, condition), params).fetchone()
        if count:
            counts[route.department] = count
            _notify(conn, contract, version, route, count)
    return counts


def _notify(conn: psycopg.Connection, contract: Contract, version: int, route: Route,
            count: int) -> None:
    since = version - 1
    link = change_link(contract.dataset_id, version)
    notify(conn, route.department, contract.dataset_id, "rows.routed",
           f"{count} new or changed row(s) of {contract.dataset_id} for your department in "
           f"version {version}: {link}",
           {"count": count, "version": version, "since_version": since, "link": link,
            "grant": route.grant_id})


def _published(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null",
                        [f"shared.{relation}"]).fetchone()[0]


def change_link(dataset: str, version: int) -> str:
    """Where the department reads what changed: the change feed since the version before,
    or the rows themselves on a first publish (there is no version 0 to diff from)."""
    if version <= 1:
        return f"/datasets/{dataset}/rows"
    return f"/datasets/{dataset}/changes?since_version={version - 1}"
