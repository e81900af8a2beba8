"""What went wrong in a pipeline step, said so that a department engineer can act on it.

A problem in a contract, a source, a model or the data is the department's to fix: it
becomes one `Failure` per problem whose message says what to change, and no traceback. Any
other exception is a bug in the hub: its traceback goes to the `flows.problems` logger
(`hub run` writes it to the run's log file) and the failure says it is an internal error.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from typing import Any

import httpx
import psycopg
import sqlalchemy.exc
from psycopg import sql

from access_policies.model import PolicyError
from contracts import Contract, ContractError
from flows.checks import Failure
from flows.sources.base import SchemaDrift, SourceError
from flows.sources.guard import UnsafeSource
from hub.migrations import MigrationError
from hub.warehouse import WarehouseUnavailable

log = logging.getLogger(__name__)

INTERNAL = "hub"  # the engine of a failure caused by a bug in the hub itself
BAD_FILES = ("contract", "policy")  # engines of failures in a file to fix (`hub run` exits 2)


class MissingSetting(RuntimeError):
    """A variable the contract or the hub needs is not set; the message says what to put in it."""


# Problems in a source's set-up or content: retrying cannot help, the department must act.
SOURCE_TO_FIX = (MissingSetting, SchemaDrift, UnsafeSource, UnicodeDecodeError, csv.Error,
                 json.JSONDecodeError)
# A database that did not answer (the source's or the warehouse); and, while ingesting, any
# other system or file the source names: worth a retry, then reported as such.
DATABASE_DOWN = (psycopg.OperationalError, sqlalchemy.exc.OperationalError)
UNREACHABLE = (*DATABASE_DOWN, OSError, httpx.HTTPError)


def problems_of(exc: BaseException, step: str, dataset: str) -> list[Failure]:
    """The failures `exc` stands for, raised by `step` of `dataset`'s pass."""
    kind = kind_of(exc, step)
    if kind is None:
        # Not the department's to fix: the traceback is for the hub's maintainers.
        log.error("%s: %s: internal error", dataset, step, exc_info=exc)
        return [Failure(step, INTERNAL, "internal error in the hub, not a problem of the "
                        f"contract, source or data ({type(exc).__name__}: {_first_line(exc)})")]
    failures = [Failure(step, kind, line) for line in _advice(exc, kind)]
    for failure in failures:
        log.warning("%s: %s [%s]: %s", dataset, step, kind, failure.message)
    return failures


def kind_of(exc: BaseException, step: str) -> str | None:
    """Whose problem `exc` is: contract, policy, source, data, warehouse; None for a bug."""
    if isinstance(exc, ContractError):
        return "contract"
    if isinstance(exc, PolicyError):
        return "policy"
    if isinstance(exc, SOURCE_TO_FIX + (SourceError,)):
        return "source"
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return "data"
    if isinstance(exc, WarehouseUnavailable | MigrationError):
        return "warehouse"
    if step == "ingest" and isinstance(exc, UNREACHABLE):
        return "source"
    if isinstance(exc, DATABASE_DOWN):
        return "warehouse"
    return None


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: I/O may recover, a problem to fix will not."""
    return not isinstance(state.data, SOURCE_TO_FIX + (ContractError, PolicyError))


def _advice(exc: BaseException, kind: str) -> list[str]:
    if isinstance(exc, ContractError | PolicyError):
        return str(exc).splitlines()  # one line per problem, each naming its field and fix
    text = _first_line(exc)
    if isinstance(exc, UnicodeDecodeError | csv.Error | json.JSONDecodeError):
        return [f"a delivered file cannot be read ({type(exc).__name__}: {text}): deliver "
                "UTF-8 CSV with a header row, JSON lines or Parquet"]
    if kind == "data":
        return [f"{text}: a value does not fit the contract: correct it at the source, or "
                "the column's type in the contract"]
    if isinstance(exc, UNREACHABLE) and kind == "source":
        return [f"cannot read the source ({text}): check that the variable the contract's "
                "hubSource names points at the department's system, and that it is up"]
    if isinstance(exc, DATABASE_DOWN):
        return [f"cannot reach the warehouse ({text}): check HUB_DATABASE_URL and that the "
                "server is running"]
    return [text]  # the hub's own exceptions for these say what to do


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


# PostgreSQL's words when a value in a raw (text) column does not cast to the contract's type.
CASTS = [
    re.compile(r'invalid input syntax for type (?P<type>[a-z ]+): "(?P<value>.*)"'),
    re.compile(r'date/time field value out of range: "(?P<value>.*)"'),
    re.compile(r'value "(?P<value>.*)" is out of range for type (?P<type>[a-z ]+)'),
]

UNKNOWN_TYPE = re.compile(r'type "(?P<type>[^"]+)" does not exist')
TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*?(?=\s*(\(|\[|$))")


def explain_build(failures: tuple[Failure, ...], contract: Contract, warehouse_url: str,
                  dbt_log: str) -> list[Failure]:
    """dbt's failures, with a model that broke on a value said as that value's problem;
    the same problem met by several models (mart, quarantine) is said once."""
    explained: list[Failure] = []
    for failure in failures:
        found = _cast(failure) if failure.rule.startswith("model ") else None
        unknown = _unknown_type(failure, contract)
        if found:
            failure = Failure("build", "data", _uncastable(contract, warehouse_url, *found))
        elif unknown:
            failure = Failure("build", "contract", unknown)
        elif failure.rule.startswith("model "):
            failure = Failure(failure.rule, failure.engine, f"{failure.message} (fix the "
                              f"model's SQL; dbt's log: {dbt_log})")
        if failure not in explained:
            explained.append(failure)
    return explained


def _unknown_type(failure: Failure, contract: Contract) -> str | None:
    """What to fix when a model compiled from the contract names a type the warehouse does
    not have: lint checks a physicalType's shape only (it is offline), so `integr` passes."""
    found = UNKNOWN_TYPE.search(failure.message)
    if not failure.rule.startswith("model ") or found is None:
        return None
    named = [c for c in contract.columns if TYPE_NAME.match(c.physical_type)
             and TYPE_NAME.match(c.physical_type)[0].lower() == found["type"].lower()]
    if not named:  # a hand-written model's own SQL: the generic advice stands
        return None
    return (f"the models cannot be compiled: column {named[0].name} has physicalType "
            f"{named[0].physical_type!r}, which is no PostgreSQL type; write one such as text, "
            "integer, bigint, numeric(10,2), date or timestamp in the contract (or leave "
            "physicalType out: the logicalType's type is used)")


def _cast(failure: Failure) -> tuple[str, str] | None:
    """(value, type) when the failure is a value that does not cast."""
    for pattern in CASTS:
        found = pattern.search(failure.message)
        if found:
            return found["value"], found.groupdict().get("type") or "date or time"
    return None


def _uncastable(contract: Contract, warehouse_url: str, value: str, type_: str) -> str:
    column = _column_holding(contract, warehouse_url, value)
    where = f" in column {column}" if column else ""
    type_ = contract.column(column).logical_type if column else type_
    fix = ("the column's logicalType or logicalTypeOptions.format" if "date" in type_
           or "time" in type_ else "the column's logicalType")
    return (f'value "{value}"{where} does not parse as {type_}: correct it at the source, '
            f"or {fix} in the contract")


def _column_holding(contract: Contract, warehouse_url: str, value: str) -> str | None:
    """The first typed column whose raw (text) values hold `value`: the one to look at."""
    typed = [c.name for c in contract.columns if c.logical_type != "string"]
    query = "select exists (select 1 from {}.{} where trim({}) = %s)"
    with psycopg.connect(warehouse_url) as conn:
        for name in typed:
            statement = sql.SQL(query).format(
                sql.Identifier(contract.raw_schema),
                sql.Identifier(contract.entity), sql.Identifier(name))
            if conn.execute(statement, [value]).fetchone()[0]:
                return name
    return None
