"""Stand up a department's own system from bundled sample data, for the demo and tests.

In production each department's database already exists and its URL is given in the
variable the contract names; in demo mode the hub creates `hub_demo_<department>` on the
warehouse server and fills it from `data/<sample>/` once.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg

from contracts import Contract
from hub.warehouse import ensure_database


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


SAMPLES: dict[str, Callable[[psycopg.Connection, str, Path], None]] = {
    "la_311_requests": seed_la_311,
}
