"""Auditor routes, anomaly flags, the transparency report, and audit under concurrent load."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from api.main import create_app
from contracts import load_all
from hub import anomalies, ledger
from hub.ledger_verify import read_checkpoint_file, signed
from hub.retention import verify_database
from tests.conftest import (
    REPO,
    bearer,
    count,
    free_port,
    own_warehouse,
    refused,
    serving,
    token_for,
)

ROWS = "/datasets/public_works.service_requests/rows"


@pytest.fixture(scope="module")
def auditor(app_client, credentials):
    return bearer(token_for(app_client, credentials, "auditor"))


def test_auditor_searches_by_kind_and_client(app_client, auditor, url):
    from hub import clients

    # A client of this test's own: the shared analyst's reads by other tests (any number,
    # in any order) are not in its answer.
    with psycopg.connect(url) as conn:
        client, secret = clients.add_client(conn, name=f"audit-search-{uuid.uuid4().hex[:8]}",
                                            role="transport_analyst")
    analyst = bearer(token_for(app_client, {"own": (client.client_id, secret)}, "own"))
    assert app_client.get(ROWS, params={"limit": 3}, headers=analyst).status_code == 200
    found = app_client.get("/audit/events", params={"kind": "data.read",
                                                    "client_id": client.client_id},
                           headers=auditor).json()["events"]
    assert [(e["client_id"], e["kind"], e["grant_id"], e["source_address"]) for e in found] \
        == [(client.client_id, "data.read", "transport-reads-311", "testclient")]
    assert found[0]["purpose"]


def test_auditor_pages_with_after(app_client, auditor):
    first = app_client.get("/audit/events", params={"limit": 2}, headers=auditor).json()
    second = app_client.get("/audit/events", params={"limit": 2, "after": first["next_after"]},
                            headers=auditor).json()
    ids = [e["event_id"] for e in first["events"] + second["events"]]
    assert ids == sorted(set(ids)) and len(ids) == 4


def test_analyst_cannot_read_the_audit_log_and_is_recorded(app_client, credentials, url):
    analyst = {**bearer(token_for(app_client, credentials, "transport_analyst")),
               "X-Request-Id": "peek-1"}
    response = app_client.get("/audit/events", headers=analyst)
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    assert refused(url, "peek-1", "kind, status_code") == [("audit.denied", 403)]
    assert app_client.get("/audit/anomalies").status_code == 401


def test_auditor_reads_are_themselves_audited(app_client, auditor, url):
    app_client.get("/audit/events", headers={**auditor, "X-Request-Id": "audit-read-1"})
    assert count(url, "select count(*) from audit.events where request_id = 'audit-read-1'"
                      " and kind = 'audit.read'") == 1


def test_access_report_counts_each_readers_reads(app_client, credentials, auditor, url):
    client_id = credentials["transport_analyst"][0]
    app_client.get(ROWS, headers={**bearer(token_for(app_client, credentials, "health_inspector")),
                                  "X-Request-Id": "report-denied-1"})
    app_client.get(ROWS, headers=bearer(token_for(app_client, credentials, "transport_analyst")))
    assert refused(url, "report-denied-1")  # on record (maybe a second later: hub/refusals.py)
    report = app_client.get("/audit/datasets/public_works.service_requests/access-report",
                            headers=auditor).json()
    mine = [r for r in report["readers"] if r["client_id"] == client_id]
    assert sum(r["reads"] for r in mine) == count(
        url, "select count(*) from audit.events where kind = 'data.read' and client_id = %s"
        " and dataset = 'public_works.service_requests'", [client_id])
    assert "address" in mine[0]["columns"] and mine[0]["department"] == "transport"
    assert report["denied_requests"] >= 1


def test_owning_department_may_read_its_access_report(app_client, credentials):
    owner = bearer(token_for(app_client, credentials, "public_works_engineer"))
    other = bearer(token_for(app_client, credentials, "transport_analyst"))
    path = "/audit/datasets/public_works.service_requests/access-report"
    assert app_client.get(path, headers=owner).status_code == 200
    assert app_client.get(path, headers=other).status_code == 403


def test_window_must_be_ordered(app_client, auditor):
    response = app_client.get("/audit/events", headers=auditor,
                              params={"since": "2026-02-01", "until": "2026-01-01"})
    assert response.status_code == 400 and "since" in response.json()["error_description"]


def test_anomaly_endpoint_flags_unmasked_personal_reads(app_client, credentials, auditor):
    owner = bearer(token_for(app_client, credentials, "public_works_engineer"))
    app_client.get(ROWS, params={"limit": 2}, headers=owner)
    flags = app_client.get("/audit/anomalies", headers=auditor).json()["flags"]
    owner_id = credentials["public_works_engineer"][0]
    assert any(f["rule"] == "unmasked_personal" and f["client_id"] == owner_id for f in flags)


# ---------- the public transparency report


def test_transparency_report_is_public_and_holds_no_personal_data(app_client, credentials):
    # A read of its own to report on: whether another test read before this one depends on
    # the order (two xdist workers found this one running first).
    analyst = bearer(token_for(app_client, credentials, "transport_analyst"))
    read = app_client.get("/datasets/public_works.service_requests/rows?limit=1",
                          headers=analyst)
    assert read.status_code == 200, read.text
    response = app_client.get("/transparency/report")
    assert response.status_code == 200
    body = response.json()
    reads = [r for r in body["reads_by_month"] if r["consuming_department"] == "transport"]
    assert reads and reads[0]["dataset"] == "public_works.service_requests"
    assert {g["purpose"] for g in body["active_grants"]} >= {
        "Plan street cleaning and bus-stop works around reported dumping and graffiti."}
    text = response.text
    personal = [c.name for c in load_all(REPO / "contracts")["public_works.service_requests"]
                .columns if c.personal]
    assert not [name for name in personal if f'"{name}"' in text]
    assert not [cid for cid, _ in credentials.values() if cid in text]


def test_transparency_report_publishes_the_latest_signed_checkpoint(app_client, settings, url,
                                                                    tmp_path):
    key = ledger.load_signing_key(settings.keys_dir)
    with psycopg.connect(url) as conn:
        ledger.seal(conn, key)  # what the first run recorded, sealed now
        sealed_up_to = conn.execute("select max(last_seq) from audit.checkpoints").fetchone()[0]
    response = app_client.get("/transparency/report")
    published = response.json()["ledger_checkpoint"]
    assert published["last_seq"] >= sealed_up_to
    assert published["public_key_sha256"] == ledger.fingerprint(key.public_key())
    saved = tmp_path / "report.json"  # saved by a citizen, read back by a verifier
    saved.write_text(response.text)
    known = read_checkpoint_file(saved)
    assert signed(known, key.public_key()) and known.last_seq == published["last_seq"]
    with psycopg.connect(url) as conn:
        assert conn.execute("select head_hash, signed_at, signature from audit.checkpoints"
                            " where last_seq = %s", [known.last_seq]).fetchone() \
            == (known.head_hash, known.signed_at, known.signature)
        assert verify_database(conn, key.public_key(), known=known).ok


def test_transparency_report_before_anything_is_sealed(server_url, settings):
    from api.routes.transparency import latest_checkpoint

    with own_warehouse(server_url, "hub_unsealed") as fresh, psycopg.connect(fresh) as conn:
        assert latest_checkpoint(conn, settings.keys_dir) is None


# ---------- anomaly rules on crafted traffic (their own database)


@pytest.fixture
def crafted(server_url):
    with own_warehouse(server_url, "hub_anomaly") as url, psycopg.connect(url) as conn:
        yield conn


NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
WINDOW = (NOW - timedelta(days=1), NOW + timedelta(hours=1))


def read(conn, client: str, at: datetime, rows: int = 100, **extra) -> None:
    conn.execute("insert into audit.events (occurred_at, kind, decision, client_id, dataset,"
                 " rows_returned, detail, unmasked_personal) values (%s, 'data.read', 'allow',"
                 " %s, 'public_works.service_requests', %s, %s, %s)",
                 [at, client, rows, psycopg.types.json.Jsonb(extra.get("detail", {})),
                  extra.get("unmasked", [])])


def normal_traffic(conn) -> None:
    for day in range(30):  # three clients, ~the same volume every day for a month
        for client in ("a", "b", "c"):
            read(conn, client, NOW - timedelta(days=day, hours=1), rows=200,
                 detail={"valid_from": "2026-01-01", "valid_until": "2027-12-31"})


def test_normal_traffic_raises_no_flag(crafted):
    normal_traffic(crafted)
    assert anomalies.flags(crafted, *WINDOW) == []


def test_volume_far_above_usual_is_flagged(crafted):
    normal_traffic(crafted)
    read(crafted, "a", NOW - timedelta(minutes=5), rows=50_000)
    assert [(f.rule, f.client_id) for f in anomalies.flags(crafted, *WINDOW)] == [("volume", "a")]


def test_read_outside_grant_window_is_flagged(crafted):
    normal_traffic(crafted)
    read(crafted, "b", NOW, detail={"valid_from": "2026-01-01", "valid_until": "2026-06-30"})
    found = anomalies.flags(crafted, *WINDOW)
    assert [(f.rule, f.client_id) for f in found] == [("outside_grant_window", "b")]


def test_burst_of_denials_is_flagged(crafted):
    normal_traffic(crafted)
    for i in range(12):  # twelve denials within 24 seconds
        crafted.execute("insert into audit.events (occurred_at, kind, decision, client_id)"
                        " values (%s, 'data.denied', 'deny', 'x')",
                        [NOW + timedelta(seconds=2 * i)])
    found = anomalies.flags(crafted, *WINDOW)
    assert [(f.rule, f.client_id) for f in found] == [("denied_burst", "x")]


def test_spread_out_denials_are_not_a_burst(crafted):
    for i in range(12):  # one a minute
        crafted.execute("insert into audit.events (occurred_at, kind, decision, client_id)"
                        " values (%s, 'data.denied', 'deny', 'x')", [NOW - timedelta(minutes=i)])
    assert anomalies.denied_burst(crafted, *WINDOW) == []


def test_unmasked_personal_read_is_flagged(crafted):
    normal_traffic(crafted)
    read(crafted, "c", NOW, unmasked=["address"])
    found = anomalies.flags(crafted, *WINDOW)
    assert [(f.rule, f.client_id, f.detail["columns"]) for f in found] == [
        ("unmasked_personal", "c", ["address"])]


# ---------- concurrent load: one audit record per data response


def test_audit_records_equal_responses_under_32_concurrent_clients(settings, url, credentials):
    with serving(create_app(settings, url), free_port()) as base:
        token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=credentials["transport_analyst"]).json()["access_token"]
        before = _reads(url)
        # A fixed number of requests, not a time window: a loaded machine serves them all,
        # only later. Every one answered is one audit record, none lost in the group commit.
        served = _hammer(f"{base}{ROWS}?limit=10", bearer(token), clients=32, each=4)
        assert served == 32 * 4
        assert _reads(url) - before == served
    with psycopg.connect(url) as conn:  # shutdown sealed everything; the chain holds
        key = ledger.load_signing_key(settings.keys_dir).public_key()
        result = verify_database(conn, key)
    assert result.ok and result.unsealed == 0, result.problems


def _reads(url: str) -> int:
    return count(url, "select count(*) from audit.events where kind = 'data.read'")


def _hammer(target: str, headers: dict, clients: int, each: int) -> int:
    served, lock = [0], threading.Lock()

    def client() -> None:
        with httpx.Client(headers=headers, timeout=60) as http:
            for _ in range(each):
                if http.get(target).status_code == 200:
                    with lock:
                        served[0] += 1

    workers = [threading.Thread(target=client) for _ in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return served[0]


# ---------- contract and policy changes are on record


def test_policy_and_contract_files_in_force_are_recorded_once(app_client, url, settings):
    from hub.audit import record_file_changes

    files = sorted(settings.policies_dir.glob("*.yaml"))
    # These files' records only: other tests run APIs and passes on other copies.
    of_files = ("select count(*) from audit.events where kind = %s"
                " and detail->>'file' = any(%s)")
    names = [str(f.relative_to(settings.policies_dir.parent)) for f in files]
    assert count(url, of_files, ["policy.changed", names]) == len(files)
    contracts = [str(f.relative_to(settings.contracts_dir.parent))
                 for f in settings.contracts_dir.rglob("*.odcs.yaml")]
    assert count(url, of_files, ["contract.changed", contracts]) == len(contracts)
    with psycopg.connect(url) as conn:  # unchanged files are not recorded again
        assert record_file_changes(conn, "policy.changed", files, settings.policies_dir.parent) == 0


def test_changed_policy_file_is_recorded_with_both_hashes(crafted, tmp_path):
    from hub.audit import record_file_changes

    policy = tmp_path / "p.yaml"
    policy.write_text("roles: {}\n")
    assert record_file_changes(crafted, "policy.changed", [policy], tmp_path) == 1
    policy.write_text("roles: {r: {department: x}}\n")
    assert record_file_changes(crafted, "policy.changed", [policy], tmp_path) == 1
    detail = crafted.execute("select detail from audit.events where kind = 'policy.changed'"
                             " order by event_id desc limit 1").fetchone()[0]
    assert detail["file"] == "p.yaml" and detail["previous_sha256"] != detail["sha256"]


def test_audit_off_is_itself_on_record(settings, url, credentials):
    from fastapi.testclient import TestClient

    off = settings.model_copy(update={"audit_reads": False})
    with TestClient(create_app(off, url)) as client:
        headers = bearer(token_for(client, credentials, "transport_analyst"))
        before = _reads(url)
        assert client.get(ROWS, headers=headers).status_code == 200
    assert _reads(url) == before
    assert count(url, "select count(*) from audit.events where kind = 'audit.disabled'") == 1
