"""Self-service onboarding: a dataset that exists nowhere in the repository, its contract
and its data made here, registered over the API and delivered as a file drop, publishes on
the next pipeline pass from models the hub compiles from the contract. Then retiring one.

Each stage is a module fixture that makes what its tests need (`onboarded`, `reader`,
`retired`); the retirement tests retire a second dataset (OLD), so no test finds the other
one retired or not depending on which ran first, and any order passes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from flows.pipeline import run_all
from hub.catalog import in_force
from tests.conftest import REPO, bearer, count, token_for

DATASET = "public_works.road_weather"
ROWS = f"/datasets/{DATASET}/rows"
DROP = "HUB_SOURCE_PUBLIC_WORKS_WEATHER_DROP"
CONTRACT = {
    "apiVersion": "v3.1.0", "kind": "DataContract", "id": "road-weather-test",
    "name": "Road weather stations, daily", "version": "1.0.0", "status": "active",
    "domain": "public_works", "team": {"name": "public-works-data"},
    "customProperties": [{"property": "hubSource", "value": {
        "kind": "files", "connectionEnv": DROP, "pattern": "*.csv",
        "columns": {"station_id": "Station", "reading_date": "Date", "temp_max": "Max Temp",
                    "observed_at": "Observed"}}}],
    "schema": [{
        "name": "road_weather", "physicalType": "table",
        "dataGranularityDescription": "One row per station and day (station_id, reading_date).",
        "properties": [
            # The key is (station_id, reading_date): positions, not column order, say so.
            {"name": "reading_date", "logicalType": "date", "primaryKey": True,
             "primaryKeyPosition": 2, "logicalTypeOptions": {"format": "dd/MM/yyyy"}},
            {"name": "station_id", "logicalType": "string", "primaryKey": True,
             "primaryKeyPosition": 1},
            {"name": "temp_max", "logicalType": "number", "required": True},
            {"name": "observed_at", "logicalType": "timestamp",
             "logicalTypeOptions": {"format": "MM/dd/yyyy hh:mm:ss a"}},
        ]}],
}
CSV = """\
Station,Date,Max Temp,Observed
ST-1,05/01/2024,3.5,01/05/2024 07:15:00 AM
ST-2,05/01/2024,4.0,01/05/2024 07:20:00 PM
ST-1,06/01/2024,n/a,01/06/2024 07:15:00 AM
ST-2,06/01/2024,2.5,01/06/2024 07:20:00 AM
ST-1,31/02/2024,1.0,02/29/2024 07:15:00 AM
ST-3,2024-01-07,1.0,01/07/2024 07:15:00 AM
ST-3,07/01/2024,-1.5,13/45/2024 07:00:00 AM
ST-4,08/01/2024,5.0,01/08/2024 08:00:00 AM
ST-4,08/01/2024,5.5,01/08/2024 08:05:00 AM
ST-5,08/01/2024, ,01/08/2024 09:00:00 AM
ST-1,07/01/2024,-0.5,
"""
PUBLISHED = [  # (station_id, reading_date, temp_max, observed_at), in key order
    ("ST-1", date(2024, 1, 5), 3.5, datetime(2024, 1, 5, 7, 15)),
    ("ST-1", date(2024, 1, 7), -0.5, None),
    ("ST-2", date(2024, 1, 5), 4.0, datetime(2024, 1, 5, 19, 20)),
    ("ST-2", date(2024, 1, 6), 2.5, datetime(2024, 1, 6, 7, 20)),
]
QUARANTINED = [  # (station_id, failed_rules, reasons)
    ("ST-1", ["type(temp_max)"], ["temp_max = 'n/a' is not a number (double precision)"]),
    ("ST-1", ["type(reading_date)"],
     ["reading_date = '31/02/2024' is not a date in the format dd/MM/yyyy"]),
    ("ST-3", ["type(reading_date)"],
     ["reading_date = '2024-01-07' is not a date in the format dd/MM/yyyy"]),
    ("ST-3", ["type(observed_at)"], ["observed_at = '13/45/2024 07:00:00 AM' is not a "
                                     "timestamp in the format MM/dd/yyyy hh:mm:ss a"]),
    ("ST-4", ["duplicate_key(station_id, reading_date)"],
     ["station_id = ST-4, reading_date = 2024-01-08 came 2 times in one delivery"]),
    ("ST-4", ["duplicate_key(station_id, reading_date)"],
     ["station_id = ST-4, reading_date = 2024-01-08 came 2 times in one delivery"]),
    ("ST-5", ["not_null(temp_max)"], ["temp_max is missing"]),
]


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


# Session-scoped: they register datasets in the session warehouse, which outlives a module.
# Under `--dist worksteal` a worker may run this file's tests in two stretches; a module
# scope then set them up twice, and the second registration found the first (200, not 201).
@pytest.fixture(scope="session")
def drop(tmp_path_factory):
    """The department's drop folder, named by the variable the contract gives."""
    folder = tmp_path_factory.mktemp("weather-drop")
    (folder / "2024-01.csv").write_text(CSV)
    os.environ[DROP] = folder.as_uri()
    yield folder
    os.environ.pop(DROP, None)


@pytest.fixture(scope="session")
def engineer(app_client, credentials) -> dict[str, str]:
    return bearer(token_for(app_client, credentials, "public_works_engineer"))


OLD = "public_works.road_weather_old"
OLD_ROWS = f"/datasets/{OLD}/rows"
OLD_CONTRACT = dict(CONTRACT, id="road-weather-old-test", name="Road weather, retiring",
                    schema=[dict(CONTRACT["schema"][0], name="road_weather_old")])


def _register(app_client, engineer: dict[str, str], contract: dict) -> None:
    response = app_client.post("/contracts", content=yaml.safe_dump(contract),
                               headers={**engineer, "Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="session")
def onboarded(app_client, engineer, settings, drop):
    """Register over the API, then one pipeline pass; with the checkout's status before."""
    before = _git_status()
    _register(app_client, engineer, CONTRACT)
    [report] = run_all(DATASET, settings)
    return before, report


@pytest.fixture(scope="session")
def old_published(app_client, engineer, settings, drop) -> None:
    """The dataset the retirement tests retire, published from the same drop."""
    _register(app_client, engineer, OLD_CONTRACT)
    [report] = run_all(OLD, settings)
    assert report.status == "published", report


def test_the_next_pass_publishes_the_good_rows_of_a_contract_registered_over_the_api(
        onboarded, url):
    _, report = onboarded
    assert (report.status, report.rows_loaded, report.version) == ("published", 11, 1)
    assert (report.row_count, report.quarantined) == (len(PUBLISHED), len(QUARANTINED))
    with psycopg.connect(url) as conn:
        shared = conn.execute(
            "select station_id, reading_date, temp_max, observed_at"
            f" from shared.{DATASET.replace('.', '__')} order by 1, 2").fetchall()
        key = conn.execute(
            "select array_agg(a.attname order by k.i) from pg_index x"
            " cross join unnest(x.indkey) with ordinality k(attnum, i)"
            " join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum"
            " where x.indrelid = 'shared.public_works__road_weather'::regclass"
            " and x.indisprimary").fetchone()[0]
    assert shared == PUBLISHED
    assert key == ["station_id", "reading_date"]  # composite, in primaryKeyPosition order


def test_values_that_do_not_cast_are_quarantined_row_by_row_with_reasons(onboarded, url):
    with psycopg.connect(url) as conn:
        held = conn.execute(
            "select station_id, failed_rules, reasons, _raw->>'reading_date'"
            " from quarantine.public_works__road_weather order by 1, 4, 2").fetchall()
    assert sorted(row[:3] for row in held) == sorted(QUARANTINED)
    with psycopg.connect(url) as conn:
        rows_in, passed, quarantined = conn.execute(
            "select rows_in, rows_passed, rows_quarantined from hub.validation_reports"
            " where dataset = %s order by created_at desc limit 1", [DATASET]).fetchone()
    assert rows_in == passed + quarantined == 11


def test_onboarding_changes_no_tracked_file(onboarded, settings):
    before, _ = onboarded
    assert _git_status() == before
    generated = settings.home / "dbt" / "project" / "models"
    staging = generated / "staging" / "public_works" / "stg_public_works__road_weather.sql"
    assert staging.read_text().startswith("-- Generated by the hub from the contract of "
                                          f"{DATASET} 1.0.0")
    assert not list((REPO / "dbt_project").rglob("*road_weather*"))
    # Hand-written models win: the health key derivation is the repository's own file.
    health = generated / "staging" / "health" / "stg_health__restaurant_inspections.sql"
    assert health.read_text() == (REPO / "dbt_project" / "models" / "staging" / "health"
                                  / health.name).read_text()


def test_hub_run_builds_every_contract_the_registry_holds_in_force(onboarded, url):
    with psycopg.connect(url) as conn:
        active = in_force(conn)
    assert DATASET in active and "public_works.service_requests" in active
    assert active[DATASET].primary_key == ("station_id", "reading_date")


# ---------- reading it: a grant for the owner, pages keyed on the composite key


@pytest.fixture(scope="session")
def reader(onboarded, old_published, tmp_path_factory, settings, url):
    """An API whose policies grant the dataset to its department's engineers (checked at
    startup against the datasets the registry holds)."""
    policies = tmp_path_factory.mktemp("policies")
    shutil.copy(settings.policies_dir / "city.yaml", policies)  # shifted with the clock
    (policies / "weather.yaml").write_text(yaml.safe_dump({"grants": [{
        "id": f"public-works-own-{name}", "dataset": name,
        "roles": ["public_works_engineer"], "columns": "all",
        "purpose": "Operate the department's own road weather data."} for name in (DATASET, OLD)]}))
    with TestClient(create_app(settings.model_copy(update={"policies_dir": policies}),
                               url)) as client:
        yield client


def test_pages_follow_the_composite_key(reader, credentials):
    headers = bearer(token_for(reader, credentials, "public_works_engineer"))
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = reader.get(ROWS, params=params, headers=headers).json()
        seen += [(r["station_id"], r["reading_date"]) for r in body["rows"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [(s, d.isoformat()) for s, d, _, _ in PUBLISHED]
    first = json.loads(base64.urlsafe_b64decode(
        reader.get(ROWS, params={"limit": 1}, headers=headers).json()["next_cursor"]))
    assert first == ["ST-1", "2024-01-05"]  # the cursor carries every key column


def test_a_cursor_for_another_key_shape_is_refused(reader, credentials):
    headers = bearer(token_for(reader, credentials, "public_works_engineer"))
    one_part = base64.urlsafe_b64encode(b'["ST-1"]').decode()
    response = reader.get(ROWS, params={"cursor": one_part}, headers=headers)
    assert response.status_code == 400
    assert "not a cursor this API returned" in response.json()["error_description"]


# ---------- retiring it


def hub(*args: str, url: str, settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_HOME": str(settings.home)}
    return subprocess.run([sys.executable, "-m", "hub_cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)


def _gone(reader, headers) -> object:
    """The rows route's answer once the worker has re-read the registry (every 2 s)."""
    deadline = time.monotonic() + 10
    while True:
        response = reader.get(OLD_ROWS, headers=headers)
        if response.status_code == 410 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


@pytest.fixture(scope="session")
def retired(reader, credentials, settings, url) -> subprocess.CompletedProcess:
    """OLD, served a moment ago, retired with `hub contracts retire`."""
    headers = bearer(token_for(reader, credentials, "public_works_engineer"))
    assert reader.get(OLD_ROWS, headers=headers).status_code == 200
    return hub("contracts", "retire", OLD, "--by", "pw-engineer", url=url, settings=settings)


def test_retire_stops_the_dataset_answers_410_and_is_audited(reader, retired, credentials,
                                                             url):
    assert retired.returncode == 0, retired.stderr
    assert f"{OLD}: retired by version 1.1.0" in retired.stdout
    headers = bearer(token_for(reader, credentials, "public_works_engineer"))
    response = _gone(reader, headers)
    today = count(url, "select current_date::text")
    assert response.status_code == 410, response.text
    assert f"{OLD} was retired on {today}" in response.json()["error_description"]
    # The catalog still describes it, saying it is retired (the response model keeps it).
    assert reader.get(f"/datasets/{OLD}", headers=headers).json()["status"] == "retired"
    with psycopg.connect(url) as conn:
        acts = conn.execute("select kind, client_id, detail->>'version' from audit.events"
                            " where dataset = %s and kind = 'contract.retired'"
                            " and detail->>'version' = '1.1.0'", [OLD]).fetchall()
        denied = conn.execute("select count(*) from audit.events where dataset = %s and"
                              " kind = 'data.denied' and status_code = 410",
                              [OLD]).fetchone()[0]
        assert OLD not in in_force(conn)
    assert acts == [("contract.retired", "pw-engineer", "1.1.0")] and denied >= 1


def test_a_retired_dataset_is_not_built(retired, settings):
    with pytest.raises(KeyError, match=f"dataset '{OLD}' was retired on .*: it is no "
                                       "longer built"):
        run_all(OLD, settings)


def test_retire_twice_or_an_unknown_dataset_says_so(retired, settings, url):
    again = hub("contracts", "retire", OLD, url=url, settings=settings)
    assert again.returncode == 1 and "was already retired on" in again.stderr
    unknown = hub("contracts", "retire", "public_works.nope", url=url, settings=settings)
    assert unknown.returncode == 2
    assert "no contract is registered for 'public_works.nope'; registered:" in unknown.stderr
    assert "Traceback" not in again.stderr + unknown.stderr


def test_a_new_version_can_bring_it_back_and_status_retired_retires_it_again(
        reader, retired, credentials, url):
    headers = bearer(token_for(reader, credentials, "public_works_engineer"))
    post = {**headers, "Content-Type": "application/yaml"}
    back = reader.post("/contracts", content=yaml.safe_dump(dict(OLD_CONTRACT, version="1.2.0")),
                       headers=post)
    assert back.status_code == 201, back.text
    assert reader.get(OLD_ROWS, headers=headers).status_code == 200  # the same worker: at once
    again = reader.post("/contracts", headers=post, content=yaml.safe_dump(
        dict(OLD_CONTRACT, version="1.3.0", status="retired")))
    assert again.status_code == 201, again.text
    assert reader.get(OLD_ROWS, headers=headers).status_code == 410
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute(
            "select detail->>'version' from audit.events where dataset = %s"
            " and kind = 'contract.retired' order by event_id", [OLD])]
    assert versions == ["1.1.0", "1.3.0"]


def test_a_registered_contract_without_a_source_fails_its_step_saying_what_to_add(
        app_client, engineer, settings, url):
    signs = dict(CONTRACT, id="road-signs-test", name="Road signs", customProperties=[])
    signs["schema"] = [dict(CONTRACT["schema"][0], name="road_signs")]
    response = app_client.post("/contracts", content=yaml.safe_dump(signs),
                               headers={**engineer, "Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text
    try:
        [report] = run_all("public_works.road_signs", settings)
    finally:  # later passes over every dataset are not failed by this one
        hub("contracts", "retire", "public_works.road_signs", url=url, settings=settings)
    assert report.status == "failed"
    [failure] = report.failures
    assert (failure.rule, failure.engine) == ("contract", "registry")
    assert "has no customProperties.hubSource: add one" in failure.message
    assert count(url, "select count(*) from hub.runs where dataset = 'public_works.road_signs'"
                      " and status = 'failed'") == 1  # the failed pass is on record
