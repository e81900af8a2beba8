"""Change feeds on real versions of the LA 311 sample: three pipeline passes in a warehouse
of this module's own (so its versions are its own), the feed between two of them compared
with the diff computed directly in SQL, and the version retention forgot answering 410."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from contracts import load_all
from demo.sources import provision
from flows.pipeline import run_all
from hub import clients
from hub.settings import Settings
from hub.warehouse import drop_database
from tests.conftest import bearer, count, own_warehouse, refused

DATASET = "public_works.service_requests"
TABLE = "shared.public_works__service_requests"
ROLES = ("public_works_engineer", "transport_analyst", "health_inspector")
ADDED, CHANGED, REMOVED = "1-777000001", "1-870694601", "1-870704831"
# The diff between the kept copy of version 2 (feedtest.v2) and the newest, in plain SQL:
# one JSON object per key that was added, changed or removed, with what the feed must say.
EXPECTED = f"""
select coalesce(n.sr_number, o.sr_number),
       case when o.sr_number is null then 'insert' when n.sr_number is null then 'delete'
            else 'update' end,
       coalesce(to_jsonb(n), to_jsonb(o))
from {TABLE} n full join feedtest.v2 o using (sr_number)
where to_jsonb(n) is distinct from to_jsonb(o)
"""


def _pass(source_url: str, settings: Settings, *statements: str) -> int:
    with psycopg.connect(source_url) as conn:
        for statement in statements:
            conn.execute(statement)
    [report] = run_all(DATASET, settings)
    assert report.status == "published", report.failures
    return report.version


# A copy of a real row under a new key; a real row changed; a real row given a status the
# contract does not accept, so it leaves the published table (quarantined): a delete.
THIRD_PASS = (
    f"insert into service_requests select * from service_requests where sr_number = '{REMOVED}'",
    f"update service_requests set sr_number = '{ADDED}', updated_date = '2021-01-01'"
    f" where ctid = (select max(ctid) from service_requests where sr_number = '{REMOVED}')",
    f"update service_requests set status = 'Referred Out', updated_date = '2021-01-02'"
    f" where sr_number = '{CHANGED}'",
    f"update service_requests set status = 'Lost In Transit', updated_date = '2021-01-03'"
    f" where ctid = (select min(ctid) from service_requests where sr_number = '{REMOVED}')",
)


@pytest.fixture(scope="module")
def feed_warehouse(server_url: str, tmp_path_factory: pytest.TempPathFactory,
                   prefect_harness: None) -> Iterator[tuple[str, Settings]]:
    """Versions 1, 2 and 3 of the 311 dataset, keeping one older version (2) to diff."""
    home = tmp_path_factory.mktemp("feeds-home")
    with own_warehouse(server_url, "hub_test_feeds") as url, pytest.MonkeyPatch.context() as mp:
        settings = Settings(home=home, database_url=url, demo_sources=False,
                            source_allowed_hosts="127.0.0.1", change_feed_versions=1,
                            _env_file=None)
        contract = load_all(settings.contracts_dir)[DATASET]
        name = f"hub_test_feeds_src_{uuid.uuid4().hex[:8]}"
        source_url = provision(server_url, contract, settings.sample_data_dir, database=name)
        mp.setenv(contract.source.connection_env, source_url)
        try:
            assert _pass(source_url, settings) == 1
            assert _pass(source_url, settings, "update service_requests set status = 'Open',"
                         f" updated_date = '2020-06-01' where sr_number = '{CHANGED}'") == 2
            with psycopg.connect(url) as conn:  # the test's own copy of version 2
                conn.execute(f"create schema feedtest; create table feedtest.v2 as table {TABLE}")
            assert _pass(source_url, settings, *THIRD_PASS) == 3
            yield url, settings
        finally:
            drop_database(server_url, name)


@pytest.fixture(scope="module")
def feed_api(feed_warehouse: tuple[str, Settings]) -> Iterator[tuple[TestClient, dict]]:
    url, settings = feed_warehouse
    with psycopg.connect(url) as conn:
        made = {role: clients.add_client(conn, name=f"feeds-{role}", role=role)
                for role in ROLES}
    with TestClient(create_app(settings, url)) as client:
        tokens = {}
        for role, (record, secret) in made.items():
            answer = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(record.client_id, secret))
            tokens[role] = answer.json()["access_token"]
        yield client, tokens


def _changes(feed_api, role: str, **params) -> dict:
    client, tokens = feed_api
    answer = client.get(f"/datasets/{DATASET}/changes", params=params,
                        headers=bearer(tokens[role]))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_feed_equals_the_diff_computed_in_sql(feed_warehouse, feed_api):
    _assert_feed_is_the_sql_diff(feed_warehouse, feed_api)


def _assert_feed_is_the_sql_diff(feed_warehouse, feed_api) -> None:
    url, _ = feed_warehouse
    with psycopg.connect(url) as conn:
        expected = {key: (change, row) for key, change, row in conn.execute(EXPECTED)}
    assert {c for c, _ in expected.values()} == {"insert", "update", "delete"}
    assert {k: c for k, (c, _) in expected.items()} == {
        ADDED: "insert", CHANGED: "update", REMOVED: "delete"}
    page = _changes(feed_api, "public_works_engineer", since_version=2)
    assert (page["since_version"], page["version"]) == (2, 3)
    found = {r["sr_number"]: r for r in page["rows"]}
    assert set(found) == set(expected)
    for key, (change, row) in expected.items():
        record = found[key]
        assert record.pop("_change") == change
        # Values as the rows route renders them: compare through the same JSON encoder.
        assert record == row, key


KEYS_V3 = "public_works__service_requests__keys_v3"


def test_publish_records_the_changed_keys_the_feed_reads(feed_warehouse):
    url, _ = feed_warehouse
    with psycopg.connect(url) as conn:
        named = conn.execute("select version, changed_keys from hub.dataset_versions"
                             " where dataset = %s order by version", [DATASET]).fetchall()
        keys = conn.execute(f"select sr_number from history.{KEYS_V3} order by 1").fetchall()
    assert named == [(1, None), (2, None), (3, KEYS_V3)]  # 2's went with version 1
    assert [k for (k,) in keys] == sorted([ADDED, CHANGED, REMOVED])


def test_a_version_published_before_change_keys_is_diffed_whole(feed_warehouse, feed_api):
    """Version 3 as a publish from before change-key tables left it: no table named, so
    the feed must diff the whole versions (the key table is hidden, not read)."""
    url, _ = feed_warehouse
    hide = (f"alter table history.{KEYS_V3} rename to hidden_keys;"
            " update hub.dataset_versions set changed_keys = null where version = 3")
    show = (f"alter table history.hidden_keys rename to {KEYS_V3};"
            f" update hub.dataset_versions set changed_keys = '{KEYS_V3}' where version = 3")
    with psycopg.connect(url) as conn:
        conn.execute(hide)
    try:
        _assert_feed_is_the_sql_diff(feed_warehouse, feed_api)
    finally:
        with psycopg.connect(url) as conn:
            conn.execute(show)


def test_version_older_than_the_kept_ones_answers_410_with_the_oldest(feed_warehouse,
                                                                      feed_api):
    url, _ = feed_warehouse
    client, tokens = feed_api
    rid = uuid.uuid4().hex
    answer = client.get(f"/datasets/{DATASET}/changes", params={"since_version": 1},
                        headers={**bearer(tokens["public_works_engineer"]), "X-Request-Id": rid})
    assert answer.status_code == 410
    assert answer.headers["X-Hub-Oldest-Version"] == "2"
    assert "the oldest available is 2" in answer.json()["error_description"]
    assert refused(url, rid, "status_code, dataset") == [(410, DATASET)]


def test_newest_version_has_no_changes_and_a_newer_one_is_refused(feed_api):
    assert _changes(feed_api, "public_works_engineer", since_version=3)["rows"] == []
    client, tokens = feed_api
    answer = client.get(f"/datasets/{DATASET}/changes", params={"since_version": 4},
                        headers=bearer(tokens["public_works_engineer"]))
    assert answer.status_code == 400
    assert answer.json()["error_description"].startswith(
        "since_version: public_works.service_requests has published versions up to 3")


def test_masked_columns_stay_masked_in_the_feed(feed_warehouse, feed_api):
    url, _ = feed_warehouse
    feed = {r["sr_number"]: r for r in _changes(feed_api, "transport_analyst",
                                                 since_version=2)["rows"]}
    client, tokens = feed_api
    served = client.get(f"/datasets/{DATASET}/rows", params={"sr_number": f"eq.{ADDED}"},
                        headers=bearer(tokens["transport_analyst"])).json()["rows"][0]
    with psycopg.connect(url) as conn:
        raw = dict(conn.execute("select sr_number, address from feedtest.v2").fetchall())
    assert feed[ADDED]["address"] == served["address"] != raw[REMOVED]
    assert feed[REMOVED]["address"] not in (None, raw[REMOVED])  # a delete's old row too
    assert {feed[k]["latitude"] for k in feed} == {served["latitude"]}


def test_each_format_carries_the_same_changes(feed_api):
    client, tokens = feed_api
    as_json = _changes(feed_api, "public_works_engineer", since_version=2)
    wanted = {(r["_change"], r["sr_number"]) for r in as_json["rows"]}
    path, headers = f"/datasets/{DATASET}/changes", bearer(tokens["public_works_engineer"])
    ndjson = client.get(path, params={"since_version": 2, "format": "ndjson"}, headers=headers)
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in ndjson.content.splitlines()]
    assert {(r["_change"], r["sr_number"]) for r in lines} == wanted
    text = client.get(path, params={"since_version": 2, "format": "csv"}, headers=headers)
    assert text.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(text.text)))
    assert list(table[0])[:1] == ["_change"]
    assert {(r["_change"], r["sr_number"]) for r in table} == wanted


def test_feed_pages_by_the_key_cursor(feed_api):
    whole = _changes(feed_api, "public_works_engineer", since_version=2)["rows"]
    seen, cursor = [], None
    for _ in range(len(whole) + 1):
        params = {"since_version": 2, "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = _changes(feed_api, "public_works_engineer", **params)
        seen += page["rows"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole and len(whole) == 3


def test_feed_read_is_audited_with_its_versions(feed_warehouse, feed_api):
    url, _ = feed_warehouse
    client, tokens = feed_api
    rid = uuid.uuid4().hex
    client.get(f"/datasets/{DATASET}/changes", params={"since_version": 2},
               headers={**bearer(tokens["public_works_engineer"]), "X-Request-Id": rid})
    assert count(url, "select count(*) from audit.events where request_id = %s"
                 " and kind = 'data.read' and dataset = %s and dataset_version = 3"
                 " and filters->'changes' = '{\"since_version\": 2, \"to_version\": 3}'"
                 " and rows_returned = 3", [rid, DATASET]) == 1


def test_since_version_is_required(feed_api):
    client, tokens = feed_api
    answer = client.get(f"/datasets/{DATASET}/changes",
                        headers=bearer(tokens["public_works_engineer"]))
    assert answer.status_code == 400
    assert answer.json()["error_description"].startswith("since_version: required")


def test_a_caller_without_a_grant_is_refused_and_audited(feed_warehouse, feed_api):
    url, _ = feed_warehouse
    client, tokens = feed_api
    rid = uuid.uuid4().hex
    answer = client.get(f"/datasets/{DATASET}/changes", params={"since_version": 2},
                        headers={**bearer(tokens["health_inspector"]), "X-Request-Id": rid})
    assert answer.status_code == 403
    assert refused(url, rid, "status_code, dataset") == [(403, DATASET)]


def test_history_keeps_only_the_configured_versions(feed_warehouse):
    url, _ = feed_warehouse
    with psycopg.connect(url) as conn:
        kept = conn.execute("select version, snapshot from hub.dataset_versions"
                            " where dataset = %s order by version", [DATASET]).fetchall()
        tables = [r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'history'")]
    assert kept == [(1, None), (2, "public_works__service_requests__v2"), (3, None)]
    assert sorted(tables) == ["public_works__service_requests__keys_v3",
                              "public_works__service_requests__v2"]





def test_the_rows_grammar_narrows_the_feed(feed_api):
    page = _changes(feed_api, "public_works_engineer", since_version=2,
                    status="eq.Referred Out", select="sr_number,status")
    assert page["columns"] == ["_change", "sr_number", "status"]
    assert page["rows"] == [{"_change": "update", "sr_number": CHANGED,
                             "status": "Referred Out"}]
    client, tokens = feed_api
    masked = client.get(f"/datasets/{DATASET}/changes",
                        params={"since_version": 2, "address": "like.*A*"},
                        headers=bearer(tokens["transport_analyst"]))
    assert masked.status_code == 400
    assert "masked for your role and cannot be filtered" in masked.json()["error_description"]
