"""The truth table's row dimension on the change feed: between two real published versions
of the 311 sample (rows added, changed, moved between filters and removed, inside and
outside every caller's filter), each filtered caller's feed holds exactly the changed keys
its filter allows, checked against a diff of the two versions written here in plain SQL.

A warehouse and 311 source of this module's own, so its versions are its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from flows.pipeline import run_all
from hub import clients
from hub.settings import Settings
from tests.conftest import bearer, own_public_works
from tests.test_row_filters import CALLERS

REQUESTS, ROUTING = "public_works.service_requests", "public_works.request_routing"
TABLE = "shared.public_works__service_requests"
# Every key whose row differs between the kept copy of version 1 (rowfeed.v1) and the
# newest, with the kind of change and the row the feed judges it by: the new row, or for a
# delete the row as it was (so a row moved out of a filter is its new owner's update).
DIFF = f"""
select coalesce(n.sr_number, o.sr_number) as key,
       case when o.sr_number is null then 'insert' when n.sr_number is null then 'delete'
            else 'update' end as change,
       coalesce(to_jsonb(n), to_jsonb(o)) as row
from {TABLE} n full join rowfeed.v1 o using (sr_number)
where to_jsonb(n) is distinct from to_jsonb(o)"""
ROUTED = (f"select key, change from ({DIFF}) d where d.row->>'request_type' in (select"
          " request_type from shared.public_works__request_routing where department = %s)")
BY_DISTRICT = f"select key, change from ({DIFF}) d where (d.row->>'cd')::int = %s"
FILTERED = {"ROUTED": ROUTED, "BY_DISTRICT": BY_DISTRICT}

# Version 2's source: a new request of every type (districts spread over 1-15), one changed
# request of every type and of every district, one moved from district 1 to 9 and one from
# bulky items to graffiti, and one of every type and district given a status the contract
# refuses (it leaves the published table: a delete).
SECOND_PASS = (
    "create temp table born as select * from service_requests where sr_number in"
    " (select min(sr_number) from service_requests group by request_type)",
    "alter table born add column n serial",
    "update born set sr_number = '1-777' || lpad(n::text, 6, '0'), cd = n % 15 + 1,"
    " updated_date = '2021-01-01'",
    "alter table born drop column n",
    "insert into service_requests select * from born",
    "update service_requests set status = 'Referred Out', updated_date = '2021-01-02'"
    " where sr_number in (select min(sr_number) from service_requests group by request_type"
    " union select min(sr_number) from service_requests group by cd)"
    " and sr_number not like '1-777%'",
    "update service_requests set cd = 9, updated_date = '2021-01-03' where sr_number ="
    " (select max(sr_number) from service_requests where cd = 1)",
    "update service_requests set request_type = 'Graffiti Removal', updated_date ="
    " '2021-01-03' where sr_number = (select max(sr_number) from service_requests"
    " where request_type = 'Bulky Items')",
    "update service_requests set status = 'Lost In Transit', updated_date = '2021-01-04'"
    " where sr_number in (select max(sr_number) from service_requests where sr_number not like"
    " '1-777%' and updated_date < '2021-01-01' group by request_type union select"
    " max(sr_number) from service_requests where sr_number not like '1-777%' and"
    " updated_date < '2021-01-01' group by cd)",
)


def _published(settings: Settings, dataset: str) -> int:
    [report] = run_all(dataset, settings)
    assert report.status == "published", report.failures
    return report.version


@pytest.fixture(scope="module")
def two_versions(server_url, settings, department_sources, prefect_harness,
                 tmp_path_factory) -> Iterator[tuple[Settings, str]]:
    """Versions 1 and 2 of the 311 requests (routing published once), version 1 kept."""
    home = tmp_path_factory.mktemp("rowfeed-home")
    with pytest.MonkeyPatch.context() as mp, \
            own_public_works(server_url, settings, home, mp) as (own, source):
        url = own.database_url.get_secret_value()
        assert _published(own, ROUTING) == 1
        assert _published(own, REQUESTS) == 1
        with psycopg.connect(url) as conn:  # the test's own copy of version 1
            conn.execute(f"create schema rowfeed; create table rowfeed.v1 as table {TABLE}")
        with psycopg.connect(source) as conn:
            for statement in SECOND_PASS:
                conn.execute(statement)
        assert _published(own, REQUESTS) == 2
        yield own, url


@pytest.fixture(scope="module")
def feed_of(two_versions) -> Iterator:
    """The change feed since version 1 as a fresh client of `role` with `attributes` sees
    it: key -> _change, every page followed."""
    own, url = two_versions
    with TestClient(create_app(own, url)) as client:
        def feed(role: str, attributes: dict[str, str]) -> dict[str, str]:
            with psycopg.connect(url) as conn:
                made, secret = clients.add_client(
                    conn, name=f"rowfeed-{uuid.uuid4().hex[:8]}", role=role,
                    attributes=attributes)
            token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(made.client_id, secret)).json()["access_token"]
            return _all_changes(client, token)
        yield feed


def _all_changes(client: TestClient, token: str) -> dict[str, str]:
    found, cursor = [], None
    while True:
        params = {"since_version": 1, "limit": 7, "select": "sr_number",
                  **({"cursor": cursor} if cursor else {})}
        answer = client.get(f"/datasets/{REQUESTS}/changes", params=params,
                            headers=bearer(token))
        assert answer.status_code == 200, answer.text[:300]
        page = answer.json()
        assert (page["since_version"], page["version"]) == (1, 2)
        found += [(r["sr_number"], r["_change"]) for r in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            assert len(found) == len(dict(found))  # no key twice across pages
            return dict(found)


def _expected(url: str, query: str, param) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(query, [param]).fetchall())


def test_the_second_version_changes_rows_inside_and_outside_every_filter(two_versions):
    _, url = two_versions
    with psycopg.connect(url) as conn:
        kinds = dict(conn.execute(f"select change, count(*) from ({DIFF}) d group by 1"))
    assert set(kinds) == {"insert", "update", "delete"}
    for _, _, query, param in CALLERS:
        mine = _expected(url, FILTERED[_name(query)], param)
        assert len(mine) < sum(kinds.values())  # some changes lie outside this filter
        if param != 99:  # district 99 does not exist: nothing is its
            assert mine, f"no change falls inside the filter of {param}"


@pytest.mark.parametrize("role, attributes, query, param", CALLERS,
                         ids=[f"{c[0]}-{c[3]}" for c in CALLERS])
def test_the_feed_holds_exactly_the_changed_keys_the_filter_allows(
        two_versions, feed_of, role, attributes, query, param):
    _, url = two_versions
    assert feed_of(role, attributes) == _expected(url, FILTERED[_name(query)], param)


def _name(query: str) -> str:
    """Which of test_row_filters' filters this is (its SQL names the table it reads)."""
    return "ROUTED" if "request_routing" in query else "BY_DISTRICT"
