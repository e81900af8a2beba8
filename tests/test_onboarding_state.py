"""The API side of onboarding: `POST /contracts` says what happens next (lint warnings, the
breaking-change verdict, when the dataset publishes) and `GET /contracts/{id}` where the
dataset stands, derived from the warehouse: registered, awaiting its first load, published,
failing with the step and reason of the last pass, retired.

A warehouse, policies, deployments file and API of the module's own; one real pipeline pass.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from flows.pipeline import run_all
from hub import clients
from hub.settings import Settings
from tests.conftest import bearer, count, own_warehouse, refused
from tests.test_onboarding import CONTRACT, CSV

POLICY = {"roles": {
    "public_works_engineer": {"department": "public_works", "description": "owns them",
                              "scopes": ["datasets:read", "contracts:write"]},
    "transport_analyst": {"department": "transport", "description": "another department",
                          "scopes": ["datasets:read"]}}, "grants": []}
DEPLOYMENTS = {"deployments": [{
    "name": "state-published", "entrypoint": "flows/pipeline.py:scheduled_pipeline",
    "parameters": {"dataset_id": "public_works.state_published"},
    "schedules": [{"cron": "0 6 * * *", "timezone": "America/Los_Angeles"}]}]}


def env_of(table: str) -> str:
    return f"HUB_SOURCE_PUBLIC_WORKS_{table.upper()}_DROP"


def contract(table: str, version: str = "1.0.0", **changes) -> str:
    """The road-weather contract of tests/test_onboarding.py as dataset public_works.<table>."""
    document = copy.deepcopy(CONTRACT) | {"id": f"{table}-test", "version": version} | changes
    document["schema"][0]["name"] = table
    if document["customProperties"]:
        document["customProperties"][0]["value"]["connectionEnv"] = env_of(table)
    return yaml.safe_dump(document)


@pytest.fixture(scope="module")
def hub_settings(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("onboarding-state")
    (root / "contracts").mkdir()
    (root / "policies").mkdir()
    (root / "policies" / "city.yaml").write_text(yaml.safe_dump(POLICY))
    (root / "prefect.yaml").write_text(yaml.safe_dump(DEPLOYMENTS))
    with own_warehouse(server_url, "hub_test_onbstate") as url:
        yield Settings(home=root / "home", database_url=url, contracts_dir=root / "contracts",
                       policies_dir=root / "policies", deployments_file=root / "prefect.yaml",
                       demo_sources=False, source_allowed_hosts="127.0.0.1", _env_file=None)


@pytest.fixture(scope="module")
def api(hub_settings: Settings) -> Iterator[tuple[TestClient, dict, dict]]:
    """The API, with an engineer of the owning department and an analyst of another."""
    url = hub_settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        made = {role: clients.add_client(conn, name=f"state-{role}", role=role)
                for role in POLICY["roles"]}
    with TestClient(create_app(hub_settings, url)) as client:
        headers = {}
        for role, (made_client, secret) in made.items():
            token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(made_client.client_id, secret)).json()["access_token"]
            headers[role] = bearer(token)
        yield client, headers["public_works_engineer"], headers["transport_analyst"]


def post(api, text: str):
    client, engineer, _ = api
    return client.post("/contracts", content=text,
                       headers={**engineer, "Content-Type": "application/yaml"})


@pytest.fixture(scope="module")
def onboarded(api, hub_settings: Settings, prefect_harness: None,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Three datasets through one pass (good rows; a drop that is not set; an empty drop),
    one retired, one registered after the pass. Returns the registrations' bodies."""
    full, empty = tmp_path_factory.mktemp("full-drop"), tmp_path_factory.mktemp("empty-drop")
    (full / "2024-01.csv").write_text(CSV)
    drops = {env_of("state_published"): full.as_uri(), env_of("state_empty"): empty.as_uri()}
    answers = {t: post(api, contract(t)) for t in ("state_published", "state_failing",
                                                     "state_empty", "state_retired")}
    os.environ.update(drops)
    try:
        run_all(None, hub_settings)
    finally:
        for name in drops:
            os.environ.pop(name)
    answers["retiring"] = post(api, contract("state_retired", "1.1.0", status="retired"))
    answers["state_registered"] = post(api, contract("state_registered"))
    assert all(a.status_code == 201 for a in answers.values()), [a.text for a in answers.values()]
    return {name: answer.json() for name, answer in answers.items()}


def state_of(api, table: str, as_outsider: bool = False) -> dict:
    client, engineer, analyst = api
    response = client.get(f"/contracts/public_works.{table}",
                          headers=analyst if as_outsider else engineer)
    assert response.status_code == 200, response.text
    return response.json()["onboarding"]


# ---------- POST /contracts: what happens next


def test_a_first_version_says_when_its_scheduled_deployment_publishes_it(onboarded):
    body = onboarded["state_published"]
    assert (body["compared_with"], body["lint_warnings"]) == (None, [])
    assert body["verdict"] == "first version of public_works.state_published: nothing to " \
                              "compare it with"
    publishes = body["publishes"]
    assert (publishes["deployment"], publishes["schedule"]) == ("state-published", "0 6 * * *")
    assert "the next run of the deployment state-published (cron '0 6 * * *', " \
           "America/Los_Angeles)" in publishes["when"]
    assert publishes["needs"] == [env_of("state_published")]


def test_without_a_deployment_it_publishes_on_the_next_hub_run(onboarded):
    publishes = onboarded["state_failing"]["publishes"]
    assert publishes["when"] == ("on the next pipeline pass: the next `hub run` (no deployment "
                                 "in prefect.yaml runs this dataset on a schedule; the next "
                                 "`hub deploy` registers one on its hubSource.schedule)")
    assert (publishes["deployment"], publishes["schedule"]) == (None, None)


def test_retiring_warns_and_never_publishes(onboarded):
    body = onboarded["retiring"]
    assert body["compared_with"] == "1.0.0"
    assert body["verdict"].startswith("no breaking change against 1.0.0")
    assert body["lint_warnings"] == ["status: retired: this version retires the dataset; it is "
                                     "no longer built and its rows route answers 410"]
    assert body["publishes"]["when"] == "never: this version retires the dataset"


def test_a_breaking_change_with_a_new_major_gets_its_verdict(api, onboarded):
    narrower = yaml.safe_load(contract("state_registered", "2.0.0"))
    narrower["schema"][0]["properties"].pop()  # observed_at removed: breaking
    del narrower["customProperties"][0]["value"]["columns"]["observed_at"]
    response = post(api, yaml.safe_dump(narrower))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["compared_with"] == "1.0.0" and body["breaking_changes"]
    assert body["verdict"].startswith("1 breaking change(s) against 1.0.0, allowed by the new "
                                      "major version 2.0.0; the previous major stays served")
    again = post(api, yaml.safe_dump(narrower))
    assert again.status_code == 200
    assert again.json()["verdict"] == "version 2.0.0 is registered already with this content:" \
                                      " no change"


def test_a_contract_without_a_source_is_warned_and_never_publishes(api, onboarded):
    response = post(api, contract("state_sourceless", customProperties=[]))
    assert response.status_code == 201, response.text
    body = response.json()
    [warning] = body["lint_warnings"]
    assert warning.startswith("customProperties.hubSource: missing: the next pipeline pass "
                              "fails this dataset's contract step")
    assert body["publishes"]["when"].startswith("never, until a version with "
                                                "customProperties.hubSource is registered")
    assert body["publishes"]["needs"] == []


# ---------- GET /contracts/{id}: where the dataset stands


def test_published_shows_the_version_and_when(api, onboarded):
    state = state_of(api, "state_published")
    assert state["state"] == "published"
    published = state["published"]
    assert (published["version"], published["contract_version"]) == (1, "1.0.0")
    assert (published["rows"], published["quarantined"]) == (4, 7)
    assert published["published_at"]
    assert state["last_pass"]["status"] == "published"
    assert state["detail"].startswith("version 1 published ")


def test_failing_shows_the_step_and_the_one_line_reason(api, onboarded):
    state = state_of(api, "state_failing")
    assert (state["state"], state["published"]) == ("failing", None)
    [failure] = state["last_pass"]["failures"]
    assert (failure["step"], failure["kind"]) == ("ingest", "source")
    assert failure["reason"].startswith(f"{env_of('state_failing')} is not set")
    assert state["detail"] == f"the last pass failed at ingest [source]: {failure['reason']}"


def test_another_department_sees_the_failing_step_but_not_the_reason(api, onboarded):
    state = state_of(api, "state_failing", as_outsider=True)
    [failure] = state["last_pass"]["failures"]
    assert (state["state"], failure["step"]) == ("failing", "ingest")
    assert failure["reason"] == "shown to the owning department only"
    assert "is not set" not in state["detail"]


def test_a_drop_that_delivered_nothing_awaits_its_first_load(api, onboarded):
    state = state_of(api, "state_empty")
    assert state["state"] == "awaiting_first_load", state
    assert state["last_pass"]["rows_loaded"] == 0


def test_registered_and_not_yet_run(api, onboarded):
    state = state_of(api, "state_registered")
    assert (state["state"], state["last_pass"], state["published"]) == (
        "registered", None, None)
    assert state["contract_version"] in ("1.0.0", "2.0.0")  # the breaking test may have run


def test_retired(api, onboarded):
    state = state_of(api, "state_retired")
    assert (state["state"], state["contract_version"]) == ("retired", "1.1.0")
    assert state["detail"].startswith("retired by version 1.1.0 on ")


def test_an_unknown_dataset_is_404(api, onboarded):
    client, engineer, _ = api
    response = client.get("/contracts/public_works.state_nope", headers=engineer)
    assert response.status_code == 404
    assert response.json()["error_description"] == ("no contract registered for "
                                                     "'public_works.state_nope'")


def test_the_deployments_file_may_be_missing(hub_settings, tmp_path):
    from contracts import load_contract_text
    from hub.onboarding import next_publish

    made = load_contract_text(contract("state_published"), "state.yaml")
    assert next_publish(made, tmp_path / "none.yaml")["deployment"] is None
    Path(tmp_path / "bad.yaml").write_text("deployments: [")
    assert next_publish(made, tmp_path / "bad.yaml")["deployment"] is None


def test_a_type_the_warehouse_lacks_is_refused_and_audited(api, hub_settings):
    document = yaml.safe_load(contract("state_typo"))
    document["schema"][0]["properties"][2]["physicalType"] = "numerc(10,2)"
    client, engineer, _ = api
    response = client.post("/contracts", content=yaml.safe_dump(document), headers={
        **engineer, "Content-Type": "application/yaml", "X-Request-Id": "state-typo-1"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_contract"
    assert response.json()["error_description"].startswith(
        "schema.0.properties.2.physicalType: 'numerc(10,2)' is no type the warehouse has, so "
        "the dataset's models cannot be compiled")
    url = hub_settings.database_url.get_secret_value()
    [(decision, status, *_)] = refused(url, "state-typo-1")
    assert (decision, status) == ("deny", 400)
    assert count(url, "select count(*) from hub.contracts where dataset = "
                      "'public_works.state_typo'") == 0
