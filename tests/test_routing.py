"""311 routed by responsibility, end to end on the real sample, in a warehouse of the test's
own: public works publishes the routing table and the requests; each responsible department
is notified once per pass with the count of its new or changed requests and the link to the
change feed, counts checked against the reference dataset by hand-written SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from pydantic import SecretStr

from contracts import load_all
from demo.sources import provision
from flows.pipeline import run_all
from hub.warehouse import drop_database
from tests.conftest import own_warehouse
from tests.test_cli import hub
from tests.test_policy_expectations import SHIPPED

REQUESTS, ROUTING = "public_works.service_requests", "public_works.request_routing"
PER_DEPARTMENT = """
select r.department, count(*) from shared.public_works__service_requests s
join shared.public_works__request_routing r using (request_type) group by r.department"""
NOTICES = """
select department, (detail->>'count')::int, detail->>'link', message from hub.notifications
where dataset = %s and kind = 'rows.routed' and (detail->>'version')::int = %s"""
# A later pass: new requests of three departments' types, and one changed streetlight report.
ADDED = {"Graffiti Removal": 3, "Bulky Items": 2, "Report Water Waste": 1}


@pytest.fixture
def own(server_url, settings, department_sources, prefect_harness, monkeypatch
        ) -> Iterator[tuple]:
    """Its own warehouse and its own copy of public works' database with the LA 311 sample."""
    contract = load_all(settings.contracts_dir)[REQUESTS]
    source = f"hub_test_routing_{uuid.uuid4().hex[:8]}"
    source_url = provision(server_url, contract, settings.sample_data_dir, database=source)
    monkeypatch.setenv(contract.source.connection_env, source_url)
    with own_warehouse(server_url, "hub_test_routing") as url:
        yield (settings.model_copy(update={"database_url": SecretStr(url)}), url, source_url)
    drop_database(server_url, source)


def hand_counted_rows_agree(url: str, tmp_path: Path) -> None:
    """`hub policies test --warehouse`: the rows each caller reads, counted by hand from the
    CSV files in access_policies/expected/city.yaml, are what this warehouse gives; a count
    one off is named."""
    env = {"HUB_DATABASE_URL": url, "HUB_HOME": str(tmp_path / "home")}
    checked = hub("policies", "test", "--warehouse", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "; 10 row counts agree in the warehouse" in checked.stdout
    expected = yaml.safe_load(SHIPPED.read_text())
    expected["counts"][REQUESTS][1]["rows"] -= 1  # sanitation_dispatcher
    (doctored := tmp_path / "off.yaml").write_text(yaml.safe_dump(expected))
    off = hub("policies", "test", str(doctored), "--warehouse", env=env)
    assert off.returncode == 1
    assert off.stdout.splitlines()[0] == (f"counts: {REQUESTS}: sanitation_dispatcher: "
                                          "expected 6860 rows, the warehouse gives 6861")


def notices(url: str, version: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(NOTICES + " order by department", [REQUESTS, version]).fetchall()


def add_requests(source_url: str) -> None:
    """New requests of ADDED's types, and one changed streetlight report, in the source."""
    with psycopg.connect(source_url) as conn:
        kinds = [kind for kind, n in ADDED.items() for _ in range(n)]
        for i, kind in enumerate(kinds):
            conn.execute("insert into service_requests select * from service_requests"
                         " where sr_number = '1-870704831'")
            conn.execute("update service_requests set sr_number = %s, request_type = %s,"
                         " updated_date = '2020-01-01' where ctid = (select max(ctid) from"
                         " service_requests where sr_number = '1-870704831')",
                         [f"1-99990{i:03d}", kind])
        changed = conn.execute("update service_requests set status = 'Open', updated_date ="
                               " '2020-01-02' where sr_number = (select min(sr_number) from"
                               " service_requests where request_type = 'Single Streetlight"
                               " Issue')").rowcount
    assert changed == 1


def test_each_responsible_department_is_told_once_per_pass_with_its_count(own, tmp_path):
    settings, url, source_url = own
    # The requests first: no routing table is published yet, so nobody is told anything.
    assert [(r.status, r.version) for r in run_all(REQUESTS, settings)] == [("published", 1)]
    assert [r.status for r in run_all(ROUTING, settings)] == ["published"]
    assert notices(url, 1) == []
    with psycopg.connect(url) as conn:
        routed = dict(conn.execute(PER_DEPARTMENT).fetchall())
    assert sum(routed.values()) == 9999 and len(routed) == 5  # every request is routed
    hand_counted_rows_agree(url, tmp_path)

    add_requests(source_url)
    [second] = run_all(REQUESTS, settings)
    assert (second.status, second.version) == ("published", 2)
    told = notices(url, 2)
    assert [(d, n) for d, n, _, _ in told] == [
        ("community_beautification", 3), ("sanitation", 2), ("street_lighting", 1),
        ("water_and_power", 1)]  # one each; the service desk had nothing new: no notice
    assert all(link == f"/datasets/{REQUESTS}/changes?since_version=1" for _, _, link, _ in told)
    assert told[0][3].startswith(f"3 new or changed row(s) of {REQUESTS} for your department")
    with psycopg.connect(url) as conn:  # the counts, by the reference dataset, by hand
        now = dict(conn.execute(PER_DEPARTMENT).fetchall())
    assert {d: now[d] - routed[d] for d in now} == {
        "community_beautification": 3, "sanitation": 2, "street_lighting": 0,
        "water_and_power": 1, "service_desk": 0}

    [third] = run_all(REQUESTS, settings)  # nothing new: the served version stays
    assert third.version == 2
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from hub.notifications where kind = 'rows.routed'"
                            ).fetchone()[0] == 4
