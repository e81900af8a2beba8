"""`hub contracts init`: a draft contract from a sample file or a database table.

The six bundled samples are drafted by the command as a user runs it; each draft lints
clean (`hub contracts lint`), says what it guessed, and its hubSource reads the sample.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from contracts import load_contract
from contracts.dates import parses, swapped
from contracts.draft import DraftError, SourceSpec, draft_contract
from contracts.infer import column_names, guess_type, profile
from contracts.keys import candidate_key
from flows.ingest import ingest
from hub.settings import Settings
from hub.warehouse import drop_database, ensure_database
from tests.conftest import REPO, count, own_warehouse
from tests.test_cli import hub

DATA = REPO / "data"
SAMPLES = {  # dataset -> its bundled sample (the contracts' hubSource.sample)
    "environment.beach_sensor_readings":
        "chicago_beach_water_sensors/Beach_Water_Quality_-_Automated_Sensors.csv",
    "human_resources.employee_salaries":
        "chicago_employee_salaries/Current_Employee_Names__Salaries__and_Position_Titles.csv",
    "public_works.service_requests": "la_311_requests/MyLA311_Service_Request_Data_2017_Subset.csv",
    "social_services.shelter_census": "nyc_dhs_shelter_census/DHS_Daily_Report.csv",
    "health.restaurant_inspections": "sf_restaurant_inspections/restaurant_scores.csv",
    "transport.bike_counts": "seattle_bike_counter/spokane-st.json",
}
ROWS = {"environment.beach_sensor_readings": 34923, "human_resources.employee_salaries": 31133,
        "public_works.service_requests": 9999, "social_services.shelter_census": 3728,
        "health.restaurant_inspections": 5796, "transport.bike_counts": 38688}


@pytest.fixture(scope="module")
def drafts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Each sample's draft, made by the command: (the file, what it printed to stderr)."""
    folder, home = tmp_path_factory.mktemp("drafts"), tmp_path_factory.mktemp("home")
    made = {}
    for dataset, sample in SAMPLES.items():
        out = folder / f"{dataset}.odcs.yaml"
        result = hub("contracts", "init", dataset, "--from", str(DATA / sample), "-o", str(out),
                     env={"HUB_HOME": str(home)})
        assert result.returncode == 0, result.stderr
        made[dataset] = (out, result.stderr)
    return made


def columns_of(path: Path) -> dict[str, dict]:
    document = yaml.safe_load(path.read_text())
    return {p["name"]: p for p in document["schema"][0]["properties"]}


def source_of(path: Path) -> dict:
    [custom] = yaml.safe_load(path.read_text())["customProperties"]
    return custom["value"]


def test_every_draft_lints_clean(drafts):
    result = hub("contracts", "lint", *(str(path) for path, _ in drafts.values()))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == 6


def test_311_draft_reads_its_timestamps_flags_and_closed_lists(drafts):
    path, said = drafts["public_works.service_requests"]
    columns = columns_of(path)
    assert columns["created_date"]["logicalTypeOptions"] == {"format": "MM/dd/yyyy hh:mm:ss a"}
    assert (columns["sr_number"]["primaryKey"], columns["sr_number"]["unique"]) == (True, True)
    assert columns["anonymous"]["logicalType"] == "boolean"
    assert (columns["cd"]["logicalType"], columns["zip_code"]["logicalType"]) == (
        "integer", "string")
    [rule] = columns["status"]["quality"]
    assert rule["arguments"]["validValues"] == ["Cancelled", "Closed", "Open", "Referred Out"]
    assert columns["mobile_os"]["required"] is False and columns["owner"]["required"] is True
    assert columns["address"]["classification"] == "personal"
    assert "zip_code: digits kept as text" in said


def test_file_drafts_map_the_source_headers_and_name_the_drop(drafts):
    path, said = drafts["social_services.shelter_census"]
    source = source_of(path)
    assert source["kind"] == "files" and source["pattern"] == "*.csv"
    assert source["sample"] == "nyc_dhs_shelter_census"
    assert source["columns"]["total_individuals_in_families_with_children_in_shelter"] == \
        "Total Individuals in Families with Children in Shelter "  # its trailing space kept
    assert "set HUB_SOURCE_SOCIAL_SERVICES_SHELTER_CENSUS_DROP to the folder" in said
    key = columns_of(path)["date_of_census"]
    assert (key["primaryKey"], key["logicalTypeOptions"]) == (True, {"format": "MM/dd/yyyy"})
    assert "date_of_census: chosen as the key although 14 row(s) repeat a value" in said


def test_unpadded_dates_get_one_letter_fields(drafts):
    beach = columns_of(drafts["environment.beach_sensor_readings"][0])
    assert beach["measurement_timestamp_label"]["logicalTypeOptions"]["format"] == \
        "M/d/yyyy h:mm a"
    assert beach["measurement_timestamp"]["required"] is False  # 6 readings without one
    assert beach["measurement_id"]["primaryKey"] is True
    inspections = columns_of(drafts["health.restaurant_inspections"][0])
    assert inspections["inspection_date"]["logicalTypeOptions"]["format"] == "M/d/yyyy"


def test_iso_times_need_no_format_and_json_arrays_are_a_drop(drafts):
    path, said = drafts["transport.bike_counts"]
    columns = columns_of(path)
    assert columns["date"]["logicalType"] == "timestamp"
    assert "logicalTypeOptions" not in columns["date"]
    assert columns["east"]["logicalType"] == "integer" and not columns["east"]["required"]
    assert source_of(path)["pattern"] == "*.json"
    assert "date: chosen as the key although 3 row(s) repeat a value" in said


def test_without_a_unique_column_the_best_one_is_said(drafts):
    _, said = drafts["health.restaurant_inspections"]
    assert "violation_id: no column or combination of up to three is unique" in said
    assert "319 row(s) have none" in said
    _, said = drafts["human_resources.employee_salaries"]
    assert "name: no column or combination of up to three is unique" in said


def test_each_draft_reads_its_sample_as_the_drop(drafts, server_url, tmp_path):
    settings = Settings(home=tmp_path, demo_sources=False, _env_file=None)
    with own_warehouse(server_url, "hub_test_init") as url:
        for dataset, (path, _) in drafts.items():
            contract = load_contract(path)
            folder = (DATA / SAMPLES[dataset]).parent
            assert ingest(url, contract, str(folder), settings).rows == ROWS[dataset]
            assert count(url, f"select count(*) from {contract.raw_schema}.{contract.entity}") \
                == ROWS[dataset]


# ---------- a table at a database URL


@pytest.fixture
def department_db(server_url: str) -> Iterator[str]:
    name = f"hub_test_init_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    with psycopg.connect(url) as conn:
        conn.execute("create table permits (permit_no text, issued_on date, fee numeric,"
                     " paid boolean, kind text, updated_at timestamp, inspections integer)")
        conn.execute("insert into permits select 'P-' || n, date '2024-01-01' + n, n * 1.5,"
                     " n % 2 = 0, (array['new', 'renewal'])[n % 2 + 1],"
                     " timestamp '2024-02-01' + n * interval '1 hour', n % 3"
                     " from generate_series(1, 40) n")
    yield url
    drop_database(server_url, name)


def test_a_database_table_drafts_a_sql_source(department_db, tmp_path):
    result = hub("contracts", "init", "licensing.permits", "--from", department_db,
                 env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    [custom] = document["customProperties"]
    assert custom["value"] == {"kind": "sql", "connectionEnv": "HUB_SOURCE_LICENSING_URL",
                               "table": "permits", "cursorColumn": "updated_at",
                               "batchSize": 5000}
    columns = {p["name"]: p for p in document["schema"][0]["properties"]}
    assert {n: c["logicalType"] for n, c in columns.items()} == {
        "permit_no": "string", "issued_on": "date", "fee": "number", "paid": "boolean",
        "kind": "string", "updated_at": "timestamp", "inspections": "integer"}
    assert columns["permit_no"]["primaryKey"] is True
    assert columns["kind"]["quality"][0]["arguments"]["validValues"] == ["new", "renewal"]
    assert "set HUB_SOURCE_LICENSING_URL to the department database's" in result.stderr
    path = tmp_path / "permits.odcs.yaml"
    path.write_text(result.stdout)
    assert load_contract(path).dataset_id == "licensing.permits"


# ---------- what the command refuses


def _bad_inputs(tmp_path: Path, department_db: str) -> list[tuple[list[str], str]]:
    (tmp_path / "empty.csv").write_text("a,b\n")
    (tmp_path / "numbers.json").write_text(json.dumps([1, 2, 3]))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "taken.yaml").write_text("")
    census = str(DATA / SAMPLES["social_services.shelter_census"])
    return [
        (["Shelter.Census", "--from", census], "write the dataset as <department>.<table>"),
        (["a.b", "--from", str(tmp_path / "none.csv")], "none.csv: no such file"),
        (["a.b", "--from", str(tmp_path / "notes.txt")], "give a .csv, .jsonl, .ndjson"),
        (["a.b", "--from", str(tmp_path / "empty.csv")], "no rows to learn from"),
        (["a.b", "--from", str(tmp_path / "numbers.json")], "write one JSON object per record"),
        (["a.b", "--from", census, "-o", str(tmp_path / "taken.yaml")], "taken.yaml exists"),
        (["a.b", "--from", department_db], "has no table 'b'; give --table, one of: permits"),
        (["a.b", "--from", "postgresql://postgres@127.0.0.1:1/x"], "cannot connect"),
        (["a.b", "--from", "nosuchdb://host/x"], "not a SQLAlchemy URL"),
    ]


def test_bad_input_exits_2_saying_what_to_give(tmp_path, department_db):
    for args, says in _bad_inputs(tmp_path, department_db):
        result = hub("contracts", "init", *args, env={"HUB_HOME": str(tmp_path)})
        assert (result.returncode, result.stdout) == (2, ""), (args, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr, result.stderr


# ---------- the inference itself


@pytest.mark.parametrize(("values", "logical", "fmt"), [
    (["08/30/2013 08:00:00 AM", "05/26/2016 01:00:00 PM"], "timestamp", "MM/dd/yyyy hh:mm:ss a"),
    (["8/30/2013 8:00 AM", "12/26/2016 11:00 PM"], "timestamp", "M/dd/yyyy h:mm a"),
    (["25/12/2020", "01/02/2021"], "date", "dd/MM/yyyy"),
    (["2020.12.25"], "string", None),
    (["2024/02/29", "2023/01/31"], "date", "yyyy/MM/dd"),
    (["2014-01-01T00:00:00.000", "2014-01-01 01:00:00"], "timestamp", None),
    (["13:45", "09:05:30"], "time", None),
    (["1:45 PM", "12:00 AM"], "time", "h:mm a"),
    (["02/30/2020"], "string", None),  # no 30 February: not a date
])
def test_dates_and_times_get_jdk_patterns(values, logical, fmt):
    guess = guess_type("when", values)
    assert (guess.logical_type, guess.format) == (logical, fmt)


def test_a_zone_offset_makes_a_zoned_timestamp():
    assert guess_type("at", ["2020-01-01T00:00:00Z"]).physical_type == \
        "timestamp with time zone"


def test_day_and_month_that_both_read_are_said():
    guess = guess_type("day", ["12/01/2020", "01/12/2020"])
    assert guess.format == "MM/dd/yyyy"
    assert "reads as MM/dd/yyyy and as dd/MM/yyyy" in guess.notes[0]
    assert swapped("M/d/yyyy h:mm a") == "d/M/yyyy h:mm a" and swapped("yyyy/MM/dd") is None
    assert parses("date", "dd-MM-yyyy", "31-12-2020") == {"d": "31", "M": "12", "y": "2020"}


def test_a_few_values_that_do_not_parse_are_said_not_fatal():
    guess = guess_type("temp_max", [str(n) for n in range(300)] + ["n/a"])
    assert guess.logical_type == "integer"
    assert "1 value(s) do not parse as such ('n/a'): those rows will be quarantined" in \
        guess.notes[0]
    assert guess_type("temp_max", ["1", "x", "y"]).logical_type == "string"  # too many


def test_typed_values_and_text_flags():
    assert guess_type("n", [1, 2**40]).physical_type == "bigint"
    assert guess_type("n", [1, 2.5]).logical_type == "number"
    assert guess_type("f", ["Y", "n", "yes"]).logical_type == "boolean"
    assert guess_type("f", ["F", "P"]).logical_type == "string"
    assert guess_type("id", ["007", "123"]).logical_type == "string"  # leading zeros
    assert guess_type("x", [{"a": 1}]).notes  # nested values: said, kept as text


def test_column_names_are_identifiers_and_never_reserved():
    assert column_names(["SRNumber", "CDMember", "Order", "order ", "2nd Try", " "]) == [
        "sr_number", "cd_member", "order_value", "order_value_2", "column_2nd_try", "unnamed"]


def test_keys_unique_near_unique_and_composite():
    rows = [["a", "1", "x"], ["b", "1", "y"], ["c", "2", "x"]]
    assert candidate_key(profile(["id", "n", "k"], rows), rows) == ([0], [])
    pairs = [["a", "1"], ["a", "2"], ["b", "1"]]
    key, [note] = candidate_key(profile(["site", "day"], pairs), pairs)
    assert key == [0, 1] and "(site, day) is" in note
    many = [[str(n), "v"] for n in range(300)] + [["0", "v"]]
    key, [note] = candidate_key(profile(["n", "v"], many), many)
    assert key == [0] and "1 row(s) repeat a value" in note


def test_a_dataset_id_must_be_department_dot_table():
    with pytest.raises(DraftError, match="<department>.<table>"):
        draft_contract("permits", ["a"], [["1"]], SourceSpec("files", "x.csv", "csv"))


def test_a_capped_read_says_how_much_it_saw(tmp_path):
    census = str(DATA / SAMPLES["social_services.shelter_census"])
    result = hub("contracts", "init", "social_services.shelter_census", "--from", census,
                 "--rows", "100", env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "unsure: inferred from the first 100 of 3728 rows (--rows reads more)" in \
        result.stderr
    assert "14 row(s) repeat" not in result.stderr  # the repeats are further down the file


def _records() -> list[dict]:
    return [{"reading_id": f"R{n}", "taken_on": date(2024, 1, 1) + timedelta(days=n),
             "taken_at": datetime(2024, 1, 1, 6) + timedelta(hours=n), "level": n * 0.25,
             "alarm": n % 7 == 0, "station": ["north", "south"][n % 2], "limit": n}
            for n in range(60)]


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_parquet_and_json_lines_samples_keep_their_types(tmp_path, suffix):
    path = tmp_path / f"readings.{suffix}"
    if suffix == "parquet":
        pq.write_table(pa.Table.from_pylist(_records()), path)
    else:  # JSON has no dates: they arrive as ISO text
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in _records()))
    result = hub("contracts", "init", "environment.readings", "--from", str(path),
                 env={"HUB_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    types = {p["name"]: p["logicalType"] for p in document["schema"][0]["properties"]}
    assert types == {"reading_id": "string", "taken_on": "date", "taken_at": "timestamp",
                     "level": "number", "alarm": "boolean", "station": "string",
                     "limit_value": "integer"}  # `limit` is reserved in SQL
    source = document["customProperties"][0]["value"]
    assert source["pattern"] == f"*.{suffix}" and source["columns"] == {"limit_value": "limit"}
    assert "sample" not in source  # not one of the bundled samples
