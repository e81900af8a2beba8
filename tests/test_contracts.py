"""Contracts: resolve and lint (with the message for each mistake), and the compile targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contracts import ContractError, load_all, load_contract
from contracts.mapping import RULE_KINDS, rules
from contracts.resolve import MAX_BYTES
from contracts.targets import to_dbt_models, to_dbt_sources, to_gx_suite, to_raw_ddl
from flows.build import generated_files
from hub.settings import Settings
from tests.conftest import REPO

CONTRACT = REPO / "contracts" / "public_works" / "service_requests.odcs.yaml"


@pytest.fixture(scope="module")
def contract():
    return load_contract(CONTRACT)


@pytest.fixture
def document() -> dict:
    return yaml.safe_load(CONTRACT.read_text())


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "c.odcs.yaml"
    if not isinstance(document, str):  # a JSON round trip unshares objects: no YAML aliases
        document = yaml.safe_dump(json.loads(json.dumps(document)))
    path.write_text(document)
    return path


def test_the_311_contract_reads_from_standard_fields(contract):
    assert contract.dataset_id == "public_works.service_requests"
    assert contract.primary_key == ("sr_number",)
    assert contract.owner == "public-works-data"
    assert contract.source.cursor_column == "updated_date"
    personal = {c.name for c in contract.columns if c.personal}
    assert {"address", "latitude", "longitude", "zip_code", "mobile_os"} <= personal
    assert "status" not in personal
    assert contract.column("status").checks == (
        ("accepted_values", ("Open", "Closed", "Cancelled", "Referred Out")),)


def _rest(source: dict, **changes: object) -> None:
    """Turn the 311 contract's SQL source into a REST one, then apply `changes`."""
    for key in ("table", "connectionEnv"):
        source.pop(key)
    source.update(kind="rest", url="https://example.org/api", **changes)


def _mqtt(source: dict, **changes: object) -> None:
    for key in ("table", "connectionEnv", "cursorColumn"):
        source.pop(key)
    source.update(kind="mqtt", url="mqtt://broker.example.org", topic="city/311", **changes)


# hubSource mistakes: each edits the 311 contract's `hubSource` value in place.
SOURCE_MISTAKES = {
    "source_sql_columns": lambda s: s.update(columns={"sr_number": "SRNumber"}),
    "source_unknown_key": lambda s: s.update(tabel="service_requests"),
    "source_batch_size": lambda s: s.update(batchSize="many"),
    "source_snake_case": lambda s: s.update(batch_size=500),
    "source_no_kind": lambda s: s.pop("kind"),
    "source_kind": lambda s: s.update(kind="ftp"),
    "source_missing_table": lambda s: s.pop("table"),
    "source_no_location": lambda s: (_rest(s), s.pop("url")),
    "source_auth_type": lambda s: _rest(s, auth={"type": "basic"}),
    "source_auth_key": lambda s: _rest(s, auth={"type": "api_key", "keyEnv": "HUB_SOURCE_K",
                                                "hedaer": "X-Key"}),
    "source_pagination": lambda s: _rest(s, pagination={"type": "scroll"}),
    "source_pagination_mapping": lambda s: _rest(s, pagination="offset"),
    "source_params": lambda s: _rest(s, params={"$order": ["date"]}),
    "source_since_format": lambda s: _rest(s, sinceFormat="date > '{when}'"),
    "source_since_attribute": lambda s: _rest(s, sinceFormat="date > '{value.year}'"),
    "source_qos": lambda s: _mqtt(s, qos=3),
    "source_idle": lambda s: _mqtt(s, idleSeconds=0),
    "source_mapped_column": lambda s: _mqtt(s, columns={"sr_numbr": "SRNumber"}),
}


def _break(document: dict, change: str) -> dict:
    """Apply one named mistake to a good contract document."""
    props = document["schema"][0]["properties"]
    if change == "api_version":
        document["apiVersion"] = "v2.2.0"
    elif change == "kind":
        document["kind"] = "Contract"
    elif change == "version":
        document["version"] = "one"
    elif change == "domain":
        document["domain"] = "Public Works"
    elif change == "two_schemas":
        document["schema"].append(dict(document["schema"][0], name="other"))
    elif change == "no_primary_key":
        props[0]["primaryKey"] = False
    elif change == "logical_type":
        props[1]["logicalType"] = "datetime"
    elif change == "classification":
        props[15]["classification"] = "secret-ish"
    elif change == "quality_rule":
        props[6]["quality"] = [{"metric": "invalidValues", "mustBeLessThan": 5}]
    elif change == "quality_custom":
        props[6]["quality"] = [{"type": "custom", "engine": "soda", "implementation": "x"}]
    elif change == "quality_metric":
        props[6]["quality"] = [{"metric": "missingValues", "mustBe": 0}]
    elif change == "quality_arguments":
        props[6]["quality"] = [{"metric": "invalidValues", "mustBe": 0, "arguments": {}}]
    elif change == "range_on_text":
        props[6]["quality"] = [{"metric": "invalidValues", "mustBe": 0,
                                "arguments": {"minimum": 1, "maximum": 2}}]
    elif change.startswith("sql_"):
        query = {"sql_write": "select count(*) from service_requests; delete from hub.runs",
                 "sql_other_table": "select count(*) from raw_health.inspections",
                 "sql_qualified": "select count(*) from shared.service_requests",
                 "sql_join": "select count(*) from service_requests s join audit.events e on true",
                 "sql_function": "select pg_read_file('/etc/passwd') from service_requests",
                 "sql_into": "select * into stolen from service_requests",
                 "sql_not_select": "with x as (delete from service_requests returning *) "
                                   "select count(*) from x",
                 "sql_threshold": "select count(*) from service_requests"}[change]
        rule = {"type": "sql", "query": query, "mustBe": 0}
        if change == "sql_threshold":
            rule = {"type": "sql", "query": query, "mustBeBetween": [1, 2]}
        document["schema"][0]["quality"].append(rule)
    elif change == "source_hub_secret":
        document["customProperties"][0]["value"]["connectionEnv"] = "HUB_DATABASE_URL"
    elif change == "source_auth_secret":
        document["customProperties"][0]["value"].update(
            kind="rest", url="https://example.org/api", auth={"type": "api_key",
                                                              "keyEnv": "HUB_PSEUDONYM_KEY"})
    elif change == "source_url_password":
        document["customProperties"][0]["value"].update(kind="files",
                                                         url="sftp://clerk:pw@files.example.org/x")
    elif change in SOURCE_MISTAKES:
        SOURCE_MISTAKES[change](document["customProperties"][0]["value"])
    elif change == "source_not_mapping":
        document["customProperties"][0]["value"] = "sql"
    elif change in ("sla_column", "sla_table"):
        element = {"sla_column": "service_requests.nope", "sla_table": "other.updated_date"}
        document["slaProperties"][1]["element"] = element[change]
    elif change == "mask":
        props[15]["customProperties"] = [{"property": "hubMask", "value": "scramble"}]
    elif change == "cursor":
        document["customProperties"][0]["value"]["cursorColumn"] = "modified_at"
    elif change == "duplicate_column":
        props.append(dict(props[0]))
    elif change == "no_owner":
        del document["team"]
    elif change == "properties_type":
        document["schema"][0]["properties"] = "sr_number"
    elif change == "key_position_twice":
        props[0]["primaryKeyPosition"] = 1
        props[1].update(primaryKey=True, primaryKeyPosition=1)
    elif change == "key_position_zero":
        props[0]["primaryKeyPosition"] = 0
    elif change == "physical_type":
        props[0]["physicalType"] = "text); drop table hub.contracts; --"
    elif change == "date_format":
        props[1]["logicalTypeOptions"] = {"format": "yyyy-ww"}
    return document


@pytest.mark.parametrize("change, path, message", [
    ("api_version", "apiVersion", "write apiVersion: v3.1.0"),
    ("kind", "kind", "write kind: DataContract"),
    ("version", "version", "write a semantic version"),
    ("domain", "domain", "lowercase identifier"),
    ("two_schemas", "schema", "write exactly one schema object"),
    ("no_primary_key", "schema.0.properties", "mark the key column(s) with primaryKey: true"),
    ("logical_type", "schema.0.properties.1.logicalType", "got 'datetime'; write one of"),
    ("classification", "schema.0.properties.15.classification", "got 'secret-ish'"),
    ("quality_rule", "schema.0.properties.6.quality.0", "only mustBe: 0 is enforced"),
    ("quality_custom", "schema.0.properties.6.quality.0", "engine 'soda' are not run"),
    ("quality_metric", "schema.0.properties.6.quality.0", "metric 'missingValues' is not"),
    ("quality_arguments", "schema.0.properties.6.quality.0.arguments", "give validValues"),
    ("range_on_text", "schema.0.properties.6.quality", "apply to integer or number columns"),
    ("sql_write", "schema.0.quality.1.query", "only one statement is allowed"),
    ("sql_other_table", "schema.0.quality.1.query", "reads 'raw_health'; a rule may only"),
    ("sql_qualified", "schema.0.quality.1.query", "reads 'shared'"),
    ("sql_join", "schema.0.quality.1.query", "reads 'audit'"),
    ("sql_function", "schema.0.quality.1.query", "'pg_read_file' is not allowed"),
    ("sql_into", "schema.0.quality.1.query", "'into' is not allowed"),
    ("sql_not_select", "schema.0.quality.1.query", "must be a single SELECT"),
    ("sql_threshold", "schema.0.quality.1", "exactly one comparison with a number"),
    ("sla_column", "slaProperties.1.element", "'nope' is not a column of the contract"),
    ("source_hub_secret", "customProperties.hubSource.connectionEnv",
     "secrets are read only from variables named HUB_SOURCE_<NAME>"),
    ("source_auth_secret", "customProperties.hubSource.auth.keyEnv", "got 'HUB_PSEUDONYM_KEY'"),
    ("source_url_password", "customProperties.hubSource.url", "has credentials in it"),
    ("source_unknown_key", "customProperties.hubSource.tabel",
     "unknown key 'tabel' for kind sql; did you mean table? (allowed: batchSize, "
     "connectionEnv, cursorColumn, kind, sample, schedule, system, table)"),
    ("source_sql_columns", "customProperties.hubSource.columns",
     "unknown key 'columns' for kind sql (allowed: batchSize, "),
    ("source_batch_size", "customProperties.hubSource.batchSize",
     "got 'many'; expected a valid integer; write the number of rows loaded per transaction"),
    ("source_snake_case", "customProperties.hubSource.batch_size",
     "unknown key 'batch_size' for kind sql; did you mean batchSize?"),
    ("source_not_mapping", "customProperties.hubSource", "got 'sql'; write a mapping"),
    ("source_no_kind", "customProperties.hubSource.kind",
     "missing; write kind: one of sql, rest, files, mqtt"),
    ("source_kind", "customProperties.hubSource.kind",
     "got 'ftp'; write kind: one of sql, rest, files, mqtt"),
    ("source_missing_table", "customProperties.hubSource.table", "missing; name the source table"),
    ("source_no_location", "customProperties.hubSource", "give url (no secrets in it) or "
     "connectionEnv"),
    ("source_auth_type", "customProperties.hubSource.auth.type",
     "got 'basic'; write type: one of api_key, oauth2"),
    ("source_auth_key", "customProperties.hubSource.auth.hedaer",
     "unknown key 'hedaer' for type api_key; did you mean header? (allowed: header, keyEnv, "
     "type)"),
    ("source_pagination", "customProperties.hubSource.pagination.type",
     "got 'scroll'; write one of 'offset', 'page', 'cursor', 'link' or 'none'"),
    ("source_pagination_mapping", "customProperties.hubSource.pagination",
     "got 'offset'; write a mapping (key: value)"),
    ("source_params", "customProperties.hubSource.params.$order", "got ['date']; expected a "
     "valid string"),
    ("source_since_format", "customProperties.hubSource.sinceFormat",
     "write a template whose only placeholder is {value}"),
    ("source_since_attribute", "customProperties.hubSource.sinceFormat",
     "got \"date > '{value.year}'\"; write a template whose only placeholder is {value}"),
    ("source_qos", "customProperties.hubSource.qos", "got 3; write one of 0, 1 or 2"),
    ("source_idle", "customProperties.hubSource.idleSeconds",
     "got 0; expected a number over 0; write how many seconds of a quiet feed end a pass"),
    ("source_mapped_column", "customProperties.hubSource.columns.sr_numbr",
     "not a column of the contract; did you mean sr_number?"),
    ("sla_table", "slaProperties.1.element", "write service_requests.<column>"),
    ("mask", "schema.0.properties.15.customProperties.hubMask", "got 'scramble'"),
    ("cursor", "customProperties.hubSource.cursorColumn", "'modified_at' is not a column"),
    ("duplicate_column", "schema.0.properties", "column 'sr_number' is listed twice"),
    ("no_owner", "team.name", "name the team that owns this dataset"),
    ("properties_type", "schema.0.properties", "Input should be a valid list"),
    ("key_position_twice", "schema.0.properties",
     "primaryKeyPosition 1 is given to more than one key column"),
    ("key_position_zero", "schema.0.properties.0.primaryKeyPosition",
     "got 0; write the column's place in the key, counting from 1"),
    ("physical_type", "schema.0.properties.0.physicalType",
     "write a PostgreSQL type such as text"),
    ("date_format", "schema.0.properties.1.logicalTypeOptions.format",
     "'yyyy-ww': pattern letter 'w' (week of year) is not supported"),
])
def test_lint_names_field_and_fix(tmp_path, document, change, path, message):
    bad = write(tmp_path, _break(document, change))
    with pytest.raises(ContractError) as caught:
        load_contract(bad)
    assert any(p == path and message in m for p, m in caught.value.problems), caught.value
    assert str(bad) in str(caught.value)


def test_every_bundled_contract_loads_with_a_typed_source():
    contracts = load_all(REPO / "contracts")
    assert {c.source.kind for c in contracts.values()} == {"sql", "rest", "files", "mqtt"}
    bikes = contracts["transport.bike_counts"].source
    assert (bikes.pagination.type, bikes.pagination.page_size) == ("offset", 5000)
    assert bikes.pagination.limit_param == "$limit" and bikes.since_param == "$where"
    sensors = contracts["environment.beach_sensor_readings"].source
    assert (sensors.qos, sensors.idle_seconds, sensors.client_id) == (1, 3.0, "")
    census = contracts["social_services.shelter_census"]
    assert census.source.pattern == "*.csv" and census.source.batch_size == 5000
    # Every column is named in the source: renamed ones as mapped, the others as they are.
    assert census.field_map["census_date"] == "Date of Census"
    assert list(census.field_map) == [c.name for c in census.columns]
    requests = contracts["public_works.service_requests"]
    assert requests.field_map == {c.name: c.name for c in requests.columns}


def test_query_parameters_given_as_numbers_are_sent_as_written(tmp_path, document):
    _rest(document["customProperties"][0]["value"], params={"$limit": 100, "$order": "date"})
    contract = load_contract(write(tmp_path, document))
    assert contract.source.params == {"$limit": "100", "$order": "date"}


def test_a_bad_contract_gets_one_line_per_problem_from_the_cli(tmp_path, document):
    source = document["customProperties"][0]["value"]
    source.update(batchSize="many", tabel="service_requests")
    bad = write(tmp_path, document)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    result = subprocess.run([sys.executable, "-m", "hub_cli", "contracts", "lint", str(bad)],
                            cwd=REPO, env=clean | {"HUB_HOME": str(tmp_path / "home")},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"{bad}: customProperties.hubSource.batchSize: got 'many'; expected a valid integer; "
        "write the number of rows loaded per transaction, e.g. 5000",
        f"{bad}: customProperties.hubSource.tabel: unknown key 'tabel' for kind sql; did you "
        "mean table? (allowed: batchSize, connectionEnv, cursorColumn, kind, sample, schedule, "
        "system, table)"]
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("text, message", [
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("a: [unclosed\n", "not valid YAML"),
    ("a: &x [1]\nb: *x\n", "YAML aliases"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 32"),
    # Contract text is compiled into dbt files, which dbt renders as Jinja templates.
    ("description: {{ run_query('drop schema shared cascade') }}\n", "which dbt reads as a "
                                                                      "template"),
    ("name: x {% if true %}\n", "write the braces apart"),
])
def test_hostile_or_broken_yaml_is_refused_before_parsing(tmp_path, text, message):
    with pytest.raises(ContractError, match=message):
        load_contract(write(tmp_path, text))


def test_oversized_contract_is_refused(tmp_path):
    path = tmp_path / "big.odcs.yaml"
    path.write_text("description: " + "x" * (MAX_BYTES + 1))
    with pytest.raises(ContractError, match="limited to"):
        load_contract(path)


def test_same_dataset_twice_is_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.odcs.yaml").write_text(CONTRACT.read_text())
    with pytest.raises(ContractError, match="already defined"):
        load_all(tmp_path)


def test_dbt_and_gx_check_the_same_rules(contract):
    expected = {r.name for r in rules(contract) if RULE_KINDS[r.kind].gx is not None}
    gx_rules = {e["meta"]["rule"] for e in to_gx_suite(contract)["expectations"]}
    model = to_dbt_models(contract)["models"][0]
    tests = model["data_tests"] + [t for c in model["columns"] for t in c.get("data_tests", [])]
    dbt_rules = {spec["config"]["meta"]["rule"] for t in tests for spec in t.values()}
    assert expected == gx_rules == dbt_rules


def test_dbt_model_enforces_contract_types_and_keys(contract):
    model = to_dbt_models(contract)["models"][0]
    assert model["config"]["contract"] == {"enforced": True}
    columns = {c["name"]: c for c in model["columns"]}
    assert columns["sr_number"]["constraints"] == [{"type": "not_null"}, {"type": "primary_key"}]
    assert columns["latitude"]["data_type"] == "double precision"
    assert "Grain: One row per service request" in model["description"]


def test_raw_landing_keeps_every_column_as_text_with_load_metadata(contract):
    ddl = to_raw_ddl(contract)
    assert ddl.count(" text,") + ddl.count(" text\n") >= len(contract.columns)
    for column in ("_load_id bigint not null", "_loaded_at timestamptz not null"):
        assert column in ddl
    source = to_dbt_sources(contract)["sources"][0]
    assert source["schema"] == "raw_public_works"


def test_committed_dbt_files_match_the_contracts():
    settings = Settings(_env_file=None)
    contracts = list(load_all(settings.contracts_dir).values())
    stale = [str(p) for p, text in generated_files(contracts, settings.dbt_project_dir).items()
             if not p.exists() or p.read_text() != text]
    assert stale == [], "run `hub contracts compile` and commit the result"


# ---------- a contract the repository has no models for: composite key, formats, casts

KEYED = {
    "apiVersion": "v3.1.0", "kind": "DataContract", "id": "keyed", "version": "1.0.0",
    "domain": "public_works", "team": {"name": "public-works-data"},
    "schema": [{"name": "road_weather", "properties": [
        {"name": "reading_date", "logicalType": "date", "primaryKey": True,
         "primaryKeyPosition": 2, "logicalTypeOptions": {"format": "dd/MM/yyyy"}},
        {"name": "station_id", "logicalType": "string", "primaryKey": True,
         "primaryKeyPosition": 1},
        {"name": "temp_max", "logicalType": "number", "physicalType": "numeric(5,1)"},
    ]}],
}


def _keyed(tmp_path: Path):
    return load_contract(write(tmp_path, KEYED))


def test_a_composite_key_is_one_model_constraint_and_one_unique_rule(tmp_path):
    contract = _keyed(tmp_path)
    assert contract.primary_key == ("station_id", "reading_date")  # by position
    model = to_dbt_models(contract)["models"][0]
    assert model["constraints"] == [{"type": "primary_key",
                                     "columns": ["station_id", "reading_date"]}]
    assert all({"type": "primary_key"} not in c.get("constraints", []) for c in model["columns"])
    names = {r.name for r in rules(contract)}
    assert "unique(station_id, reading_date)" in names
    assert not {"unique(station_id)", "unique(reading_date)"} & names
    [duplicate] = [r for r in model["config"]["meta"]["row_rules"]
                   if r["rule"].startswith("duplicate_key")]
    assert duplicate["rule"] == "duplicate_key(station_id, reading_date)"


def test_generated_models_are_written_only_where_none_is_hand_written(tmp_path):
    contract = _keyed(tmp_path)
    project = tmp_path / "dbt_project"
    generated = generated_files([contract], project, hand_written=set(), with_models=True)
    staging = project / "models" / "staging" / "public_works" / "stg_public_works__road_weather.sql"
    text = generated[staging]
    assert text.startswith("-- Generated by the hub from the contract of "
                           "public_works.road_weather 1.0.0")
    assert ("hub.try_cast(nullif(trim(\"reading_date\"), ''), null::date, 'DD/MM/YYYY', "
            "'^\\d{2}/\\d{2}/\\d{4}$')") in text
    assert "{{ try_cast('temp_max', 'numeric') }} as \"temp_max\"" in text  # size: in the mart
    assert "latest_delivery('typed', ['\"station_id\"', '\"reading_date\"'])" in text
    rules_of = yaml.safe_load(generated[project / "models" / "marts" / "public_works"
                                        / "_public_works__road_weather.yml"].split("\n", 1)[1])
    rule_names = [r["rule"] for r in rules_of["models"][0]["config"]["meta"]["row_rules"]]
    assert "type(temp_max)" in rule_names and "type(reading_date)" in rule_names
    # A hand-written staging model wins: none is generated, and it casts on its own.
    own = generated_files([contract], project, hand_written={"stg_public_works__road_weather"},
                          with_models=True)
    assert staging not in own
    assert {p.name for p in own if p.suffix == ".sql"} == {
        "public_works__road_weather.sql", "public_works__road_weather__quarantine.sql"}
    assert "type(temp_max)" not in own[project / "models" / "marts" / "public_works"
                                       / "_public_works__road_weather.yml"]


def test_a_grain_cannot_end_its_sql_comment(tmp_path):
    document = json.loads(json.dumps(KEYED))
    document["schema"][0]["dataGranularityDescription"] = "per day\nselect 1; drop table x"
    contract = load_contract(write(tmp_path, document))
    staging = generated_files([contract], tmp_path, hand_written=set(), with_models=True)
    text = next(t for p, t in staging.items() if p.name.startswith("stg_"))
    assert "-- Grain: per day select 1; drop table x." in text
    assert "\nselect 1" not in text
