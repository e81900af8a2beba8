"""Stand up a department's own system from bundled sample data, for the demo and tests.

In production each department's system already exists and its location is given in the
variable the contract names. In demo mode the hub stands in for it, by source kind:
- sql: a database `hub_demo_<department>` on the warehouse server, filled once;
- rest: a loopback HTTP API serving the sample JSON as is (demo/api.py);
- files: the sample files copied into the drop folder;
- mqtt: the sample's rows replayed as JSON messages into the broker (HUB_MQTT_URL).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from contracts import Contract
from demo.api import DemoApi
from flows.sources.mqtt import subscribe_once
from hub.settings import Settings
from hub.warehouse import ensure_database

_RUNNING_APIS: dict[str, str] = {}  # sample -> base URL, one loopback API per process


def stand_in(warehouse_url: str, contract: Contract, settings: Settings) -> str:
    """The location of a demo stand-in for the dataset's source system."""
    kind = contract.source.kind
    if kind == "sql":
        return provision(warehouse_url, contract, settings.sample_data_dir)
    if kind == "rest":
        return _demo_api(contract, settings)
    if kind == "files":
        return _drop_files(contract, settings)
    return _replay_feed(contract, settings)


def _sample_files(contract: Contract, settings: Settings) -> list[Path]:
    folder = settings.sample_data_dir / str(contract.source.sample)
    found = sorted(p for p in folder.glob("*") if p.suffix in (".csv", ".json", ".jsonl"))
    if not found:
        raise ValueError(f"{contract.dataset_id}: no sample data in {folder}")
    return found


def _demo_api(contract: Contract, settings: Settings) -> str:
    sample = str(contract.source.sample)
    if sample not in _RUNNING_APIS:
        [path] = _sample_files(contract, settings)
        order_by = contract.field_map[contract.source.cursor_column]
        _RUNNING_APIS[sample], _ = DemoApi.from_file(path, order_by).start()
    route = urlsplit(contract.source.url).path or f"/resource/{sample}.json"
    return _RUNNING_APIS[sample] + route


def _drop_files(contract: Contract, settings: Settings) -> str:
    folder = settings.drop_root() / contract.relation_name
    folder.mkdir(parents=True, exist_ok=True)
    for path in _sample_files(contract, settings):
        if not (folder / path.name).exists():  # a delivered file is never rewritten
            shutil.copyfile(path, folder / path.name)
    return folder.as_uri()


def _replay_feed(contract: Contract, settings: Settings) -> str:
    """Publish the sample once per hub home, paced, into a session opened beforehand."""
    from flows.ingest import mqtt_source

    marker = settings.home / "demo" / f"{contract.relation_name}.replayed"
    if not marker.exists():
        source = mqtt_source(contract, settings.mqtt_url, settings)
        subscribe_once(source)  # the broker queues for the hub from now on
        [path] = _sample_files(contract, settings)
        threading.Thread(target=_publish_csv, args=(settings.mqtt_url, source.topic, path),
                         daemon=True).start()
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(path.name)
    return settings.mqtt_url


def _publish_csv(url: str, topic: str, path: Path, per_second: int = 2000) -> None:
    import paho.mqtt.client as mqtt

    parts = urlsplit(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(parts.hostname or "", parts.port or 1883)
    client.loop_start()
    time.sleep(1.0)  # let the hub's subscriber connect: offline, the broker queues only 1,000
    with path.open(newline="", encoding="utf-8") as handle:
        for number, record in enumerate(csv.DictReader(handle)):
            info = client.publish(topic, json.dumps(record), qos=1)
            if number % per_second == per_second - 1:
                info.wait_for_publish()
                time.sleep(0.5)  # paced: the broker queues at most 1,000 per session
    info.wait_for_publish()
    client.loop_stop()
    client.disconnect()


def provision(server_url: str, contract: Contract, sample_dir: Path,
              database: str | None = None) -> str:
    """Create and fill the department's sample database if needed; return its URL."""
    if contract.source is None or contract.source.sample not in SAMPLES:
        raise ValueError(f"{contract.dataset_id}: no bundled sample to stand in for its source; "
                         f"set {contract.source.connection_env if contract.source else 'a source'}")
    url = ensure_database(server_url, database or f"hub_demo_{contract.department}")
    with psycopg.connect(url) as conn:
        exists = conn.execute("select to_regclass(%s)", [contract.source.table]).fetchone()[0]
        if exists is None:
            SAMPLES[contract.source.sample](conn, contract.source.table, sample_dir)
    return url


# ---------- LA 311 (public works): the department's system keeps typed timestamps and Y/N flags

LA_311_TYPES = {
    "created_date": "timestamp", "updated_date": "timestamp", "service_date": "timestamp",
    "closed_date": "timestamp", "latitude": "double precision", "longitude": "double precision",
    "cd": "integer", "nc": "integer",
}


def seed_la_311(conn: psycopg.Connection, table: str, sample_dir: Path) -> None:
    path = sample_dir / "la_311_requests" / "MyLA311_Service_Request_Data_2017_Subset.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        columns = [snake_case(h) for h in next(reader)]
        ddl = ", ".join(f'"{c}" {LA_311_TYPES.get(c, "text")}' for c in columns)
        conn.execute(f'create table "{table}" ({ddl})')
        converters = [_converter(LA_311_TYPES.get(c, "text")) for c in columns]
        with conn.cursor().copy(f'copy "{table}" from stdin') as copy:
            for row in _converted(reader, converters):
                copy.write_row(row)


def snake_case(header: str) -> str:
    """SRNumber -> sr_number, CDMember -> cd_member, MobileOS -> mobile_os."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", header.strip())
    return spaced.lower()


def _converted(reader: Iterator[list[str]], converters: list[Callable]) -> Iterator[list]:
    for row in reader:
        yield [convert(value) for convert, value in zip(converters, row, strict=True)]


def _converter(pg_type: str) -> Callable[[str], object]:
    def convert(value: str) -> object:
        if value == "" and pg_type != "text":
            return None
        if pg_type == "timestamp":
            return datetime.strptime(value, "%m/%d/%Y %I:%M:%S %p")
        return value

    return convert


# ---------- Chicago employees (human resources): the HR system numbers its records

HR_COLUMNS = ("name", "job_title", "department_name", "full_or_part_time", "salary_or_hourly",
              "typical_hours", "annual_salary", "hourly_rate")


def seed_chicago_salaries(conn: psycopg.Connection, table: str, sample_dir: Path) -> None:
    """The portal's CSV as the HR system would hold it: an id per record (in file order)
    and the snapshot's date as the time each record was last changed."""
    path = (sample_dir / "chicago_employee_salaries"
            / "Current_Employee_Names__Salaries__and_Position_Titles.csv")
    conn.execute(f'create table "{table}" (employee_id bigint primary key, name text,'
                 " job_title text, department_name text, full_or_part_time text,"
                 " salary_or_hourly text, typical_hours numeric, annual_salary numeric,"
                 " hourly_rate numeric, updated_at timestamp not null)")
    with path.open(newline="", encoding="utf-8") as handle, conn.cursor().copy(
            f'copy "{table}" from stdin') as copy:
        reader = csv.reader(handle)
        next(reader)
        for number, row in enumerate(reader, start=1):
            values = [v if v != "" or i < 5 else None for i, v in enumerate(row)]
            copy.write_row([number, *values, "2023-03-09 00:00:00"])


SAMPLES: dict[str, Callable[[psycopg.Connection, str, Path], None]] = {
    "la_311_requests": seed_la_311,
    "chicago_employee_salaries": seed_chicago_salaries,
}
