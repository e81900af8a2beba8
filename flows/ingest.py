"""Extract a dataset from its departmental source and land it, batch by batch.

The contract's `hubSource` says which connector to open and how: adding a dataset from a
kind of source the hub knows needs no code. Each batch commits with its position (cursor,
file manifest entry) in one transaction; a broker's messages are acknowledged after that.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from urllib.parse import urlsplit

import psycopg

from contracts import Contract, ContractError
from contracts.source_config import ApiKeyAuth, FilesConfig, OAuth2Auth, RestConfig, SqlConfig
from flows.load import (
    ensure_raw_table,
    hold_dataset,
    load_batch,
    read_cursor,
    read_manifest,
)
from flows.problems import MissingSetting
from flows.sources.base import Batch
from flows.sources.files import ChangedFile, read_files
from flows.sources.guard import UnsafeSource, check_url
from flows.sources.mqtt import MqttSource, read_messages
from flows.sources.pg_copy import copy_batches
from flows.sources.rest import Pagination, RestSource, client_credentials, read_records
from flows.sources.sql import read_batches
from hub.settings import Settings


@dataclass
class LoadResult:
    batches: int = 0
    rows: int = 0
    warnings: list[str] = field(default_factory=list)  # e.g. files changed in place


def ingest(warehouse_url: str, contract: Contract, source_url: str, settings: Settings,
           progress: Callable[[int], None] | None = None) -> LoadResult:
    """Load everything new since the last committed position; return what was loaded."""
    check_source(contract)
    result, delivery_id = LoadResult(), uuid.uuid4()
    src = contract.source
    label = f"{src.kind}:{src.table if isinstance(src, SqlConfig) else urlsplit(source_url).path}"
    # UTF-8 like the PostgreSQL connector's COPY text, which reaches the warehouse as bytes.
    with psycopg.connect(warehouse_url, autocommit=True, client_encoding="utf8") as conn:
        hold_dataset(conn, contract.dataset_id)  # before its position is read
        ensure_raw_table(conn, contract)
        batches = open_source(conn, contract, source_url, settings, result.warnings)
        # A PostgreSQL source's batches stream (their rows flow through while they load),
        # so nothing may read ahead of them; other sources' batches are read ahead.
        for batch in batches if _copies(contract, source_url) else read_ahead(batches):
            with conn.transaction():  # rows, load record and position commit together
                loaded = load_batch(conn, contract, batch, label, delivery_id)
            if batch.acknowledge is not None:
                batch.acknowledge()
            result.rows, result.batches = result.rows + loaded, result.batches + 1
            if progress is not None:
                progress(loaded)
    return result


def check_source(contract: Contract) -> None:
    """A contract without hubSource names nothing to ingest: its file must say where from."""
    if contract.source is None:
        raise ContractError(str(contract.path or contract.dataset_id), [(
            "customProperties.hubSource", "missing: add it to say where the hub pulls the "
            "dataset from (kind: sql, rest, files or mqtt)")])


def read_ahead(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Read the next batches from the source while the current one is written: the
    source's read and the warehouse's COPY overlap. Positions still commit in order, one
    batch at a time, so a crash costs only the batches read but not yet committed."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if not _put(queue, batch, stop):
                    break
            _put(queue, _DONE, stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(queue, exc, stop)
        finally:
            batches.close()

    threading.Thread(target=produce, name="read-ahead", daemon=True).start()
    try:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


_DONE = object()


def _put(queue: Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            queue.put(item, timeout=0.2)
            return True
        except Full:
            continue
    return False


def open_source(conn: psycopg.Connection, contract: Contract, url: str, settings: Settings,
                warnings: list[str]) -> Iterator[Batch]:
    """The connector for the contract's source kind, positioned after the last commit."""
    src = contract.source
    columns = [c.name for c in contract.columns]
    if isinstance(src, SqlConfig):
        # PostgreSQL sources stream COPY text straight through; others go via SQLAlchemy.
        read = copy_batches if _copies(contract, url) else read_batches
        return read(url, table=src.table, columns=columns,
                    cursor_column=src.cursor_column, key_column=contract.primary_key,
                    after=read_cursor(conn, contract.dataset_id), batch_size=src.batch_size,
                    types={c.name: c.logical_type for c in contract.columns})
    if isinstance(src, RestConfig):
        return read_records(_rest(contract, src, url, settings), cursor_column=src.cursor_column,
                            key_column=contract.primary_key,
                            after=read_cursor(conn, contract.dataset_id))
    if isinstance(src, FilesConfig):
        _check_local(url, src.url, settings)
        return read_files(url, fields=contract.field_map, pattern=src.pattern,
                          manifest=read_manifest(conn, contract.dataset_id),
                          batch_size=src.batch_size,
                          on_changed=lambda f: warnings.append(_changed(f)))
    return read_messages(mqtt_source(contract, url, settings))


def mqtt_source(contract: Contract, url: str, settings: Settings) -> MqttSource:
    """The subscription for a contract's feed. A path in the broker URL is a namespace
    (mqtt://broker:1883/staging): topic and session id are prefixed with it, so two
    deployments can share a broker without taking each other's messages."""
    src, namespace = contract.source, urlsplit(url).path.strip("/")
    topic, client_id = src.topic, src.client_id or f"civic-data-hub-{contract.relation_name}"
    if namespace:
        topic, client_id = f"{namespace}/{topic}", f"{client_id}-{namespace}"
    return MqttSource(url=url, topic=topic, fields=contract.field_map, client_id=client_id,
                      qos=src.qos, batch_size=src.batch_size, idle_seconds=src.idle_seconds,
                      allowed_hosts=settings.allowed_hosts())


def _rest(contract: Contract, src: RestConfig, url: str, settings: Settings) -> RestSource:
    auth, headers, token = src.auth, {}, None
    if isinstance(auth, ApiKeyAuth):
        headers[auth.header] = _secret(auth.key_env)
    elif isinstance(auth, OAuth2Auth):
        token = client_credentials(auth.token_url, _secret(auth.client_id_env),
                                   _secret(auth.client_secret_env), settings.allowed_hosts())
    return RestSource(
        url=url, fields=contract.field_map, records_path=src.records_path,
        pagination=Pagination(**src.pagination.model_dump()), params=dict(src.params),
        since_param=src.since_param, since_format=src.since_format, headers=headers,
        token=token, allowed_hosts=settings.allowed_hosts())


def _copies(contract: Contract, url: str) -> bool:
    """Whether the source is read by COPY (a PostgreSQL database)."""
    return contract.source.kind == "sql" and url.split(":", 1)[0] in ("postgresql", "postgres")


def _secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSetting(f"{name} is not set: set it to the credential the contract's "
                             "hubSource.auth names it for")
    return value


def _check_local(url: str, contract_url: str, settings: Settings) -> None:
    """A drop folder named in the contract itself must lie under the hub's drop root, or be
    remote (and pass the address guard): a contract may not read the hub's own files."""
    if not contract_url:
        return  # the operator set the location in a HUB_SOURCE_ variable
    scheme = urlsplit(contract_url).scheme
    if scheme in ("", "file", "local"):
        path = Path(urlsplit(contract_url).path).resolve()
        if not path.is_relative_to(settings.drop_root()):
            raise UnsafeSource(f"{contract_url}: local drops must be under the hub's drop "
                               f"folder {settings.drop_root()} (HUB_DROP_DIR)")
    else:
        check_url(contract_url, settings.allowed_hosts())


def _changed(changed: ChangedFile) -> str:
    return (f"file {changed.path} changed in place since it was loaded (sha256 "
            f"{changed.loaded_sha256[:12]}... -> {changed.now_sha256[:12]}...); it was not "
            "loaded again: deliver corrections as a new file")

