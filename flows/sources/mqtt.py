"""Sensor-feed source: an MQTT subscription, buffered into micro-batches.

A plain generator with no Prefect code. It subscribes over MQTT 5 with a persistent
session (fixed client id, clean start off, a week's session expiry, QoS 1), so the broker
keeps messages while the hub is away, and it acknowledges a batch's messages only after the
loader has committed it: a crash before the commit means the broker delivers them again,
and the contract's key merges the repeat. MQTT 5's Receive Maximum lets the broker have a
whole batch unacknowledged in flight; over MQTT 3.1.1 Mosquitto stops at 20 and queues (and
past 1,000, drops) the rest. A payload that is not a JSON object is not dropped: it travels
with its batch as a reject, which the loader keeps beside the rows.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from flows.sources.base import Batch, SourceError, check_drift
from flows.sources.guard import check_url

SESSION_SECONDS = 7 * 24 * 3600  # how long the broker keeps the hub's session while away


@dataclass(frozen=True)
class MqttSource:
    url: str  # mqtt://host:1883
    topic: str
    fields: dict[str, str]  # contract column -> key in the JSON payload
    client_id: str
    qos: int = 1
    batch_size: int = 500
    idle_seconds: float = 2.0  # a quiet feed for this long ends the pass
    allowed_hosts: tuple[str, ...] = ()


def read_messages(source: MqttSource) -> Iterator[Batch]:
    """Yield micro-batches until the feed has been quiet for `idle_seconds`."""
    check_url(source.url, source.allowed_hosts)
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = _connect(source, inbox)
    try:
        checked = False
        while messages := _collect(inbox, source.batch_size, source.idle_seconds):
            rows, rejects = _parse(messages, source.fields)
            if rows and not checked:
                check_drift(f"topic {source.topic}", rows[0][1], list(source.fields.values()))
                checked = True
            yield Batch([r for r, _ in rows], rejects=rejects,
                        acknowledge=lambda m=messages: _ack(client, m))
    finally:
        client.loop_stop()
        client.disconnect()


def _connect(source: MqttSource, inbox: queue.Queue) -> mqtt.Client:
    parts = urlsplit(source.url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=source.client_id,
                         protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    client.on_message = lambda _c, _u, message: inbox.put(message)
    properties = Properties(PacketTypes.CONNECT)
    properties.ReceiveMaximum = 65535
    properties.SessionExpiryInterval = SESSION_SECONDS
    try:
        client.connect(parts.hostname or "", parts.port or 1883, keepalive=30,
                       clean_start=False, properties=properties)
    except OSError as exc:
        raise SourceError(f"MQTT broker {parts.hostname}:{parts.port or 1883} unreachable: "
                          f"{exc}") from None
    client.subscribe(source.topic, qos=source.qos)
    client.loop_start()
    return client


def subscribe_once(source: MqttSource) -> None:
    """Open the persistent session before anything is published (first deployment)."""
    client = _connect(source, queue.Queue())
    time.sleep(0.2)
    client.loop_stop()
    client.disconnect()


def _collect(inbox: queue.Queue, size: int, idle: float) -> list[mqtt.MQTTMessage]:
    found: list[mqtt.MQTTMessage] = []
    while len(found) < size:
        try:
            found.append(inbox.get(timeout=idle if not found else min(idle, 0.5)))
        except queue.Empty:
            break
    return found


def _parse(messages: list[mqtt.MQTTMessage], fields: dict[str, str]
           ) -> tuple[list[tuple[tuple, list[str]]], list[tuple[str, str]]]:
    rows, rejects = [], []
    for message in messages:
        record, problem = _record(message.payload)
        if problem is not None:
            rejects.append((_kept(message.payload), problem))
            continue
        rows.append((tuple(_text(record.get(name)) for name in fields.values()), list(record)))
    return rows, rejects


def _record(payload: bytes) -> tuple[dict[str, Any], str | None]:
    """The message's JSON object, or why it is not one the warehouse can take."""
    try:
        record: Any = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return {}, f"not JSON: {exc.msg}"
    if not isinstance(record, dict):
        return {}, "not a JSON object"
    # A NUL (\u0000 in JSON) would fail the whole batch's COPY, and the broker would
    # deliver that batch again on every pass: one message would stop the feed.
    if any(isinstance(v, str) and "\x00" in v for v in record.values()):
        return {}, "a value holds a NUL character (\\u0000), which the warehouse cannot store"
    return record, None


def _kept(payload: bytes) -> str:
    """A rejected payload as text PostgreSQL can store: as received, with bytes that are
    not UTF-8 and NUL characters written as \\xNN escapes."""
    return payload.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _ack(client: mqtt.Client, messages: list[mqtt.MQTTMessage]) -> None:
    for message in messages:
        client.ack(message.mid, message.qos)


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else json.dumps(value)


def forget_session(source: MqttSource) -> None:
    """End the persistent session on the broker (a dataset retired, a test finished)."""
    parts = urlsplit(source.url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=source.client_id,
                         protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    client.connect(parts.hostname or "", parts.port or 1883, clean_start=True,
                   properties=properties)
    client.disconnect()
