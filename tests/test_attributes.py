"""Attributes at the command line: `hub clients add/users add --attribute`, stored and put
into tokens; `hub policies explain` in words; bad input gets one line saying what to fix."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import bearer
from tests.test_cli import hub


@pytest.fixture
def env(first_run, url, tmp_path) -> dict[str, str]:
    return {"HUB_DATABASE_URL": url, "HUB_HOME": str(tmp_path)}


def test_a_client_added_with_attributes_carries_them_in_its_tokens(env, url, app_client):
    added = hub("clients", "add", "council-7", "--role", "council_office",
                "--attribute", "district=7", "--attribute", "ward=north", env=env)
    assert added.returncode == 0, added.stderr
    said = dict(line.split("=", 1) for line in added.stdout.splitlines() if "=" in line)
    with psycopg.connect(url) as conn:
        stored, = conn.execute("select attributes from hub.clients where name = 'council-7'"
                               ).fetchone()
    assert stored == {"district": "7", "ward": "north"}
    token = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            auth=(said["client_id"], said["client_secret"])).json()
    rows = app_client.get("/datasets/public_works.service_requests/rows",
                          params={"select": "cd", "limit": 1000},
                          headers=bearer(token["access_token"])).json()["rows"]
    assert rows and {r["cd"] for r in rows} == {7}


def test_a_user_added_with_attributes_keeps_them(env, url):
    added = hub("users", "add", "councillor-1", "--role", "council_office",
                "--attribute", "district=1", env=env)
    assert added.returncode == 0, added.stderr
    with psycopg.connect(url) as conn:
        stored, = conn.execute("select attributes from hub.users where username = %s",
                               ["councillor-1"]).fetchone()
    assert stored == {"district": "1"}


@pytest.mark.parametrize("args, message", [
    (["--attribute", "district"], "--attribute 'district': write NAME=VALUE, e.g. district=7"),
    (["--attribute", "=7"], "--attribute '=7': write NAME=VALUE, e.g. district=7"),
    (["--attribute", "district="], "--attribute 'district=': write NAME=VALUE, e.g. district=7"),
    (["--attribute", "district=1", "--attribute", "district=2"],
     "--attribute district is given twice; give each attribute once"),
])
@pytest.mark.parametrize("command", [["clients", "add", "c-bad"], ["users", "add", "u-bad"]])
def test_a_bad_attribute_is_one_line_saying_what_to_write(tmp_path, command, args, message):
    result = hub(*command, "--role", "council_office", *args,
                 env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {message}"]


def test_explain_says_grant_columns_masks_and_rows_in_words(tmp_path):
    result = hub("policies", "explain", "council_office", "public_works.service_requests",
                 "--attribute", "district=7", env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "grant: council-reads-district-311",
        "purpose: Follow up residents' requests in the council member's own district.",
        "rows: rows where cd equals the caller's attribute district (7)", "columns:"]
    assert "  address: masked: redact" in lines and "  cd: as stored" in lines
    assert not any(line.startswith("  location") for line in lines)  # not granted


def test_explain_of_a_routed_role_names_its_department_and_the_reference_dataset(tmp_path):
    result = hub("policies", "explain", "street_lighting_dispatcher",
                 "public_works.service_requests", env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert ("rows: rows where request_type is one of the request_type values of "
            "public_works.request_routing where department equals the caller's attribute "
            "department (street_lighting)") in result.stdout.splitlines()


@pytest.mark.parametrize("args, out, code", [
    (["council_office", "public_works.service_requests"],
     "denied: grant council-reads-district-311 filters rows by the attribute 'district', which "
     "the caller lacks; pass --attribute district=<value> to see its rows", 0),
    (["council_office", "transport.bike_counts"],
     "denied: no grant of transport.bike_counts to role council_office", 0),
    (["auditor", "transport.bike_counts"], "denied: the role lacks the datasets:read scope", 0),
])
def test_explain_says_why_a_role_is_denied(tmp_path, args, out, code):
    result = hub("policies", "explain", *args, env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == code, result.stderr
    assert result.stdout.splitlines() == [out]


@pytest.mark.parametrize("args, message", [
    (["mayor", "transport.bike_counts"], "unknown role 'mayor'; roles: "),
    (["council_office", "transport.bikes"], "unknown dataset 'transport.bikes'; known: "),
])
def test_explain_of_an_unknown_name_is_one_line(tmp_path, args, message):
    result = hub("policies", "explain", *args, env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr
