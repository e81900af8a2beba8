"""The `hub` command as a user runs it: real subprocesses, real exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from flows.checks import Failure
from flows.pipeline import RunReport
from hub import clients
from hub_cli.pipeline import format_reports
from tests.conftest import REPO, RUN_TAG, clock_env, own_warehouse
from tests.conftest import free_port as _free_port
from tests.stand_ins import DATA, forget_feed

CONTRACT = REPO / "contracts" / "public_works" / "service_requests.odcs.yaml"


def hub(*args: str, env: dict[str, str] | None = None, timeout: int = 300):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("HUB_", "PREFECT_"))}  # as on a fresh shell
    return subprocess.run([sys.executable, "-m", "hub_cli", *args], cwd=REPO,
                          env=clean | clock_env() | (env or {}), capture_output=True, text=True,
                          timeout=timeout)


def test_run_on_a_fresh_home_starts_its_own_warehouse_and_publishes(tmp_path):
    # No HUB_DATABASE_URL, no source URL: the embedded server and the demo source.
    # This run's own MQTT session: tmp_path's name is the same in every test session, and
    # two sessions on one broker at once (CI beside a developer's run) would share its feed.
    feed = f"mqtt://127.0.0.1:1883/hub-test-cli-{RUN_TAG}"
    result = hub("run", env={"HUB_HOME": str(tmp_path / "home"), "HUB_MQTT_URL": feed})
    forget_feed(feed)
    assert result.returncode == 0, result.stdout + result.stderr
    # `make demo`'s main job: every department's sample, through each kind of source.
    lines = {ln.split()[0]: ln.split()[1:] for ln in result.stdout.splitlines()
             if ln.split() and "." in ln.split()[0] and "_" in ln.split()[0]}
    assert lines["public_works.service_requests"] == ["published", "9999", "1", "9999"]
    assert lines["transport.bike_counts"] == ["published", "38688", "1", "38652"]
    assert lines["social_services.shelter_census"] == ["published", "3728", "1", "3700"]
    assert lines["environment.beach_sensor_readings"] == ["published", "34923", "1", "34391"]
    assert lines["human_resources.employee_salaries"] == ["published", "31133", "1", "31133"]
    assert lines["health.restaurant_inspections"] == ["published", "5796", "1", "5790"]
    assert lines["public_works.request_routing"] == ["published", "12", "1", "12"]
    assert (tmp_path / "home" / "pg" / "PG_VERSION").exists()


def test_run_unknown_dataset_exits_2_naming_the_known_ones(tmp_path):
    result = hub("run", "--dataset", "transport.nope", env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert ("unknown dataset 'transport.nope'; known: environment.beach_sensor_readings, "
            "health.restaurant_inspections, human_resources.employee_salaries, "
            "public_works.request_routing, public_works.service_requests, "
            "social_services.shelter_census, "
            "transport.bike_counts") in result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["nope"], "No such command 'nope'"),
    (["clients", "add"], "Missing argument 'NAME'"),
    (["audit", "export", "--since", "2026-01-01"], "Missing option '--until'"),
])
def test_usage_mistakes_exit_2_with_one_message_and_no_traceback(tmp_path, args, says):
    result = hub(*args, env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert says.lower() in result.stderr.lower() and "Traceback" not in result.stderr


def test_clients_add_unknown_role_exits_2(tmp_path):
    result = hub("clients", "add", "x", "--role", "mayor", env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 2 and "unknown role 'mayor'" in result.stderr


def test_contracts_lint_reports_problems_and_passes_good_files(tmp_path):
    bad = tmp_path / "bad.odcs.yaml"
    bad.write_text(CONTRACT.read_text().replace("kind: DataContract", "kind: Contract"))
    result = hub("contracts", "lint", str(CONTRACT), str(bad))
    assert result.returncode == 1
    assert "service_requests.odcs.yaml: ok (public_works.service_requests 1.0.0" in result.stdout
    assert f"{bad}: kind: got 'Contract'; write kind: DataContract" in result.stderr


def test_contracts_compile_check_passes_on_a_clean_checkout():
    result = hub("contracts", "compile", "--check")
    assert result.returncode == 0, result.stderr


def _gate_the_sample_fails(root) -> dict[str, str]:
    """Contracts and dbt project copied under `root`, the shelter census asking for more
    rows than its sample has; the sample in a drop folder. Returns their variables."""
    shutil.copytree(REPO / "contracts", root / "contracts")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project",
                    ignore=shutil.ignore_patterns("target"))
    path = root / "contracts" / "social_services" / "shelter_census.odcs.yaml"
    text = path.read_text()
    assert text.count("mustBeGreaterThan: 0") == 1
    path.write_text(text.replace("mustBeGreaterThan: 0", "mustBeGreaterThan: 1000000"))
    (root / "drop").mkdir()
    shutil.copy(DATA / "nyc_dhs_shelter_census" / "DHS_Daily_Report.csv", root / "drop")
    return {"HUB_CONTRACTS_DIR": str(root / "contracts"),
            "HUB_DBT_PROJECT_DIR": str(root / "dbt_project"), "HUB_DEMO_SOURCES": "false",
            "HUB_SOURCE_SOCIAL_SERVICES_DROP": (root / "drop").as_uri()}


def test_run_exits_1_when_a_dataset_fails_its_gate_and_the_failure_is_audited(
        server_url, tmp_path):
    with own_warehouse(server_url, "hub_test_run_fails") as url:
        result = hub("run", "--dataset", "social_services.shelter_census", env={
            "HUB_HOME": str(tmp_path / "home"), "HUB_DATABASE_URL": url,
            **_gate_the_sample_fails(tmp_path)})
        with psycopg.connect(url) as conn:
            events = conn.execute("select kind, dataset, reason, detail from audit.events"
                                  " where kind like 'pipeline.%'").fetchall()
            runs = conn.execute("select run_id::text, status, rows_loaded from hub.runs"
                                ).fetchall()
            versions = conn.execute("select count(*) from hub.dataset_versions").fetchone()[0]
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "1 of 1 dataset(s) not published" in result.stdout
    [(kind, dataset, reason, detail)] = events
    assert (kind, dataset) == ("pipeline.failed", "social_services.shelter_census")
    # The sample's 3,728 rows, 3,700 of them keeping the row rules: far from 1,000,001.
    assert detail["failed_rules"] == ["row_count_at_least(1000001)"]
    assert "row_count_at_least(1000001): observed 3700" in reason
    assert runs == [(detail["run_id"], "failed", 3728)] and versions == 0


def test_failed_report_names_each_rule():
    report = RunReport("public_works.service_requests", rows_loaded=2, failures=[
        Failure("accepted_values(status)", "great_expectations", "1 row(s) break it")])
    text = format_reports([report])
    assert "public_works.service_requests      failed" in text
    assert "accepted_values(status) [great_expectations]: 1 row(s) break it" in text
    assert "1 of 1 dataset(s) not published" in text


def test_client_names_are_unique_and_rotation_needs_a_client(first_run, settings):
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        clients.add_client(conn, name="twice", role="transport_analyst")
        with pytest.raises(clients.ClientError, match="a client named 'twice' exists"):
            clients.add_client(conn, name="twice", role="transport_analyst")
        with pytest.raises(clients.ClientError, match="no client named 'ghost'"):
            clients.rotate_secret(conn, "ghost")
        client, secret = clients.rotate_secret(conn, "twice")
        assert clients.authenticate(conn, client.client_id, secret) == client
        assert clients.authenticate(conn, client.client_id, "old") is None


def test_clients_list_and_remove_with_audit(first_run, url, tmp_path):
    env = {"HUB_DATABASE_URL": url, "HUB_HOME": str(tmp_path)}
    added = hub("clients", "add", "cli-temp", "--role", "auditor", env=env)
    assert added.returncode == 0, added.stderr
    assert "cli-temp" in hub("clients", "list", env=env).stdout
    assert hub("clients", "remove", "cli-temp", env=env).returncode == 0
    assert "cli-temp" not in hub("clients", "list", env=env).stdout
    gone = hub("clients", "remove", "cli-temp", env=env)
    assert gone.returncode == 2 and "no client named 'cli-temp'" in gone.stderr
    with psycopg.connect(url) as conn:
        kinds = [k for (k,) in conn.execute(
            "select kind from audit.events where kind like 'client.%' and role = 'auditor'"
            " order by event_id")]
    assert kinds[-2:] == ["client.added", "client.removed"]


def test_keys_rotate_retires_the_old_key(first_run, url, tmp_path):
    env = {"HUB_DATABASE_URL": url, "HUB_HOME": str(tmp_path)}
    assert hub("keys", "rotate", env=env).returncode == 0  # first: creates a key
    result = hub("keys", "rotate", env=env)
    assert result.returncode == 0 and "new signing key" in result.stdout
    assert len(list((tmp_path / "keys").glob("retired-*.jwk.json"))) == 1


def test_users_add_list_remove_with_audit(first_run, url, tmp_path):
    env = {"HUB_DATABASE_URL": url, "HUB_HOME": str(tmp_path)}
    added = hub("users", "add", "robin", "--role", "health_inspector", env=env)
    assert added.returncode == 0, added.stderr
    assert "password=" in added.stdout and "shown once" in added.stderr
    again = hub("users", "add", "robin", "--role", "health_inspector", env=env)
    assert again.returncode == 2 and "a user named 'robin' already exists" in again.stderr
    wrong = hub("users", "add", "kim", "--role", "mayor", env=env)
    assert wrong.returncode == 2 and "unknown role 'mayor'" in wrong.stderr
    assert "robin" in hub("users", "list", env=env).stdout
    assert hub("users", "remove", "robin", env=env).returncode == 0
    gone = hub("users", "remove", "robin", env=env)
    assert gone.returncode == 2 and "no user named 'robin'" in gone.stderr
    with psycopg.connect(url) as conn:
        kinds = [k for (k,) in conn.execute("select kind from audit.events where client_id ="
                                            " 'user:robin' order by event_id")]
    assert kinds == ["user.added", "user.removed"]


def test_serve_seals_the_audit_log_while_it_runs(server_url, tmp_path):
    # `hub serve` as a user runs it: the audit log is chained while it serves, by the
    # sealer's own process, not only at shutdown.
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    with own_warehouse(server_url, "hub_test_serve") as url:
        env = clean | clock_env() | {"HUB_HOME": str(tmp_path), "HUB_DATABASE_URL": url,
                       "HUB_AUDIT_SEAL_SECONDS": "0.2"}
        server = subprocess.Popen([sys.executable, "-m", "hub_cli", "serve", "--port", str(port)],
                                  cwd=REPO, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until(lambda: _answers(base), f"`hub serve` answering at {base}")
            assert httpx.get(f"{base}/datasets").status_code == 401  # a denial, on record
            # Sealed in the background, not at stop.
            _wait_until(lambda: _chained(url) > 0, "an audit entry chained")
        finally:
            server.terminate()  # `hub serve` stops gracefully on SIGTERM (tests/test_stop.py)
            server.wait(timeout=30)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/.well-known/jwks.json", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _chained(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from audit.chain").fetchone()[0]


def _wait_until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}"
        time.sleep(0.1)
