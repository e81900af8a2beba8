"""Departments' systems for the tests, on the real servers of the machine, with real data.

Each returns the location the contract's variable should hold.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from contracts import load_all
from demo.api import DemoApi
from demo.sources import provision
from flows.ingest import mqtt_source
from flows.sources.mqtt import MqttSource, forget_session, subscribe_once
from hub.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
BROKER = "mqtt://127.0.0.1:1883"
FEED_ROWS = 800  # the broker queues at most 1,000 messages for an offline session


def bike_api(**options: object) -> str:
    """Seattle's counter data served as the city's API serves it (strings and all)."""
    api = DemoApi.from_file(DATA / "seattle_bike_counter" / "spokane-st.json", "date",
                            **options)
    base, _ = api.start()
    return f"{base}/resource/v6y4-2gyc.json"


def hr_database(server_url: str, tag: str) -> str:
    """Human resources' system: its own database holding the Chicago employee records."""
    contract = load_all(REPO / "contracts")["human_resources.employee_salaries"]
    return provision(server_url, contract, DATA, database=f"hub_test_{tag}_human_resources")


def shelter_drop(folder: Path) -> str:
    shutil.copy(DATA / "nyc_dhs_shelter_census" / "DHS_Daily_Report.csv", folder)
    return folder.as_uri()


def routing_drop(folder: Path) -> str:
    """Public works' drop folder with the 311 request routing table."""
    shutil.copy(DATA / "la_311_request_routing" / "request_routing.csv", folder)
    return folder.as_uri()


def inspections_drop(folder: Path) -> str:
    shutil.copy(DATA / "sf_restaurant_inspections" / "restaurant_scores.csv", folder)
    return folder.as_uri()


def beach_rows() -> list[dict[str, str]]:
    """A fixed slice of the real readings that keeps their defects: every reading without
    a timestamp, the first 40 sentinel wave heights, then ordinary readings."""
    path = DATA / "chicago_beach_water_sensors" / "Beach_Water_Quality_-_Automated_Sensors.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    no_time = [r for r in rows if not r["Measurement Timestamp"]]
    sentinel = [r for r in rows if r["Wave Height"] == "-99999.992"][:40]
    ordinary = [r for r in rows if r not in no_time and r not in sentinel]
    return no_time + sentinel + ordinary[:FEED_ROWS - len(no_time) - len(sentinel)]


def feed_source(url: str) -> MqttSource:
    settings = Settings(source_allowed_hosts="127.0.0.1", demo_sources=False, _env_file=None)
    contract = load_all(REPO / "contracts")["environment.beach_sensor_readings"]
    return mqtt_source(contract, url, settings)


def forget_feed(url: str) -> None:
    forget_session(feed_source(url))


def beach_feed(namespace: str, extra: list[bytes] = ()) -> str:
    """Open the hub's session in `namespace`, then publish the readings (and `extra` raw
    payloads) to it; return the broker URL with the namespace."""
    url = f"{BROKER}/{namespace}"
    source = feed_source(url)
    subscribe_once(source)
    publish(source.topic, [json.dumps(r).encode() for r in beach_rows()] + list(extra))
    return url


def publish(topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    info = None
    for payload in payloads:
        info = client.publish(topic, payload, qos=1)
    if info is not None:
        info.wait_for_publish(timeout=30)
    time.sleep(0.2)  # the broker has queued them for the offline session
    client.loop_stop()
    client.disconnect()
