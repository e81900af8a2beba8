"""The datasets in force, read from the registry (hub.contracts): the newest registered
version of each dataset's contract, however it arrived.

A dataset whose newest version has `status: retired` is neither built (`hub run`) nor served
(its rows route answers 410 with the date it was retired). `retire` registers that version:
the newest one again, retired, with the next minor version number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg
import yaml

from access_policies.model import Policy
from contracts import Contract, load_contract_text
from contracts.diff import semver
from hub.registry import Registration, RegistrationRefused, latest_version, register

# The newest version of every dataset (versions compare as numbers, not text).
NEWEST = ("select distinct on (dataset) dataset, version, status, registered_at"
          " from hub.contracts order by dataset, string_to_array(version, '.')::int[] desc")
TEXT = "select source_text from hub.contracts where dataset = %s and version = %s"
# When the dataset was retired: its first retired version after the last one in force.
RETIRED_ON = (
    "select min(registered_at)::date from hub.contracts where dataset = %(d)s"
    " and status = 'retired' and string_to_array(version, '.')::int[] > coalesce("
    "  (select max(string_to_array(version, '.')::int[]) from hub.contracts"
    "   where dataset = %(d)s and status <> 'retired'), '{}')")


@dataclass(frozen=True)
class Newest:
    """The newest registered version of one dataset's contract."""

    dataset: str
    version: str
    status: str
    registered_at: datetime

    @property
    def retired(self) -> bool:
        return self.status == "retired"


def newest(conn: psycopg.Connection) -> dict[str, Newest]:
    return {row[0]: Newest(*row) for row in conn.execute(NEWEST)}


def parse(dataset: str, version: str, text: str) -> Contract:
    """A registered version's contract, named for where it came from."""
    return load_contract_text(text, f"registry {dataset} {version}")


def contract_of(conn: psycopg.Connection, entry: Newest) -> Contract:
    [text] = conn.execute(TEXT, [entry.dataset, entry.version]).fetchone()
    return parse(entry.dataset, entry.version, text)


def in_force(conn: psycopg.Connection, retired: bool = False) -> dict[str, Contract]:
    """The contract of every dataset not retired (`retired`: of every dataset), by id."""
    return {d: contract_of(conn, e) for d, e in sorted(newest(conn).items())
            if retired or not e.retired}


def retired_on(conn: psycopg.Connection, dataset: str) -> date | None:
    """The date the dataset was retired, or None if it is in force (or unknown)."""
    return conn.execute(RETIRED_ON, {"d": dataset}).fetchone()[0]


class NotRegistered(LookupError):
    """No contract is registered for the dataset; the message names the ones that are."""


def retire(conn: psycopg.Connection, dataset: str, by: str, policy: Policy,
           today: date | None = None) -> Registration:
    """Register the newest version again with `status: retired` and the next minor version;
    audited as contract.registered and contract.retired, in `conn`'s transaction."""
    latest = latest_version(conn, dataset)
    if latest is None:
        known = ", ".join(sorted(newest(conn))) or "none yet"
        raise NotRegistered(f"no contract is registered for {dataset!r}; registered: {known}")
    if latest.status == "retired":
        raise RegistrationRefused(f"{dataset} was already retired on "
                                  f"{retired_on(conn, dataset)}; nothing to do")
    document = yaml.safe_load(latest.source_text)
    major, minor, _ = semver(latest.version)
    document.update(status="retired", version=f"{major}.{minor + 1}.0")
    text = (f"# Retired by {by} with `hub contracts retire`; otherwise version {latest.version} "
            "as registered.\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    contract = parse(dataset, document["version"], text)
    return register(conn, contract, text, by, policy, today)
