"""Health for load balancers and Prometheus metrics: what they report, and that they turn
when the warehouse or the key material goes away."""

from __future__ import annotations

import time
import uuid

import psycopg
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.main import create_app
from hub.settings import Settings
from tests.conftest import own_warehouse


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_health_and_metrics_report_the_warehouse_the_keys_and_the_requests(server_url,
                                                                             tmp_path):
    with own_warehouse(server_url, "hub_test_health") as url:
        # No seal during the test: every record written is an unsealed entry.
        settings = Settings(home=tmp_path, database_url=SecretStr(url),
                            audit_seal_seconds=3600, _env_file=None)
        with TestClient(create_app(settings, url)) as client:
            assert client.get("/health/live").json() == {"status": "live"}
            assert client.get("/health/ready").json() == {
                "status": "ready", "checks": {"warehouse": "ok", "keys": "ok"}}
            check_metrics(client, url)
            key_gone(client, tmp_path)
            warehouse_refusing(client, server_url, url)
            back_once_it_answers(client)


def check_metrics(client: TestClient, url: str) -> None:
    assert client.get("/datasets").status_code == 401
    with psycopg.connect(url) as conn:
        conn.execute("insert into hub.runs (run_id, dataset, started_at, status, report)"
                     " values (%s, 'parks.visits', now(), 'published', '{}')", [uuid.uuid4()])
        written = conn.execute("select count(*) from audit.events").fetchone()[0]
    answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    assert found[("hub_http_requests_total", (("method", "GET"), ("route", "/datasets"),
                                              ("status", "401")))] == 1
    assert found[("hub_http_request_duration_seconds_count",
                  (("method", "GET"), ("route", "/health/ready")))] == 1
    assert found[("hub_pipeline_runs", (("dataset", "parks.visits"),
                                        ("status", "published")))] == 1
    assert found[("hub_audit_unsealed_entries", ())] == written > 0
    assert found[("hub_audit_queue_depth", ())] == 0
    client.get("/no/such/page")  # an unknown path is one series, not one per path
    assert ("hub_http_requests_total", (("method", "GET"), ("route", "unmatched"),
                                        ("status", "404"))) in samples(client.get("/metrics").text)


def key_gone(client: TestClient, home) -> None:
    key = home / "keys" / "audit-ed25519.pem"
    key.rename(key.with_suffix(".moved"))
    try:
        refused = client.get("/health/ready")
        assert refused.status_code == 503
        body = refused.json()
        assert body["error"] == "not_ready" and body["request_id"]
        assert body["error_description"].startswith(f"keys: {key} cannot be read")
    finally:
        key.with_suffix(".moved").rename(key)


def warehouse_refusing(client: TestClient, server_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'alter database "{name}" allow_connections false')
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                     " where datname = %s", [name])
    try:
        refused = client.get("/health/ready")
        assert refused.status_code == 503
        assert refused.json()["error_description"].startswith("warehouse: ")
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'alter database "{name}" allow_connections true')


def back_once_it_answers(client: TestClient) -> None:
    # The pool reconnects with a backoff of its own: ready again within it, not at once.
    deadline = time.monotonic() + 30
    while client.get("/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "not ready 30 s after the warehouse came back"
        time.sleep(0.2)
