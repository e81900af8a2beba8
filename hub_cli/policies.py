"""`hub policies ...`: check the access policies against who-sees-what written by hand, and
explain one role's view of one dataset."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from access_policies import Decision, Policy, PolicyError, decide, load_policies
from access_policies.expectations import (
    EXPECTED_FILE,
    READ_SCOPE,
    ExpectationError,
    Expectations,
    RowCount,
    compare,
    load_expectations,
    tally,
)
from access_policies.row_filter import describe
from contracts import Contract, load_all
from hub import clock
from hub.settings import Settings, get_settings
from hub_cli import common
from hub_cli.common import AttributeOption, UsageError, parse_attributes

app = typer.Typer(help="access policies", no_args_is_help=True)


@app.command("test")
def test(
    file: Annotated[Path | None, typer.Argument(
        help=f"expectations file (default: access_policies/{EXPECTED_FILE})")] = None,
    on: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="decide as on this day (grants have validity windows); "
        "default today")] = None,
    warehouse: Annotated[bool, typer.Option(
        "--warehouse", help="also count each caller's rows under counts: in the warehouse "
        "(HUB_DATABASE_URL), where the bundled samples are published")] = False,
) -> int:
    """Check the expected view of every role on every dataset against the policy engine;
    print each difference and exit 1 on any."""
    settings = get_settings()
    path = file or settings.policies_dir / EXPECTED_FILE
    # The API decides on the hub's day (HUB_CLOCK, else the UTC date): so does this check.
    today = on.date() if on else clock.today()
    contracts = load_all(settings.contracts_dir)
    try:
        policy = load_policies(settings.policies_dir, contracts)
        expected = load_expectations(path)
    except (PolicyError, ExpectationError) as exc:
        raise UsageError(str(exc)) from None
    mismatches: list = compare(expected, policy, contracts, today)
    if warehouse:
        mismatches += counted(expected, policy, contracts, today, settings)
    for mismatch in mismatches:
        print(mismatch)
    if mismatches:
        print(f"{path}: {len(mismatches)} difference(s) from the policy on {today}")
        return 1
    readable, denied = tally(expected)
    counts = sum(map(len, expected.counts.values()))
    said = (f"{counts} row counts agree in the warehouse" if warehouse
            else f"{counts} row counts not checked (--warehouse counts them)")
    print(f"{path}: the policy agrees on {today}: {readable + denied} cells "
          f"({readable} readable, {denied} denied); {said}")
    return 0


def counted(expected: Expectations, policy: Policy, contracts: dict[str, Contract],
            today: date, settings: Settings) -> list[str]:
    """Each `counts:` entry whose caller reads another number of rows in the warehouse."""
    found = []
    with common.warehouse(settings) as conn:
        for dataset, entries in sorted(expected.counts.items()):
            if dataset not in contracts:
                found.append(f"counts: {dataset}: not a dataset of the contracts")
                continue
            for entry in entries:
                problem = _count_problem(conn, policy, contracts[dataset], entry, today)
                if problem:
                    found.append(f"counts: {dataset}: {entry.caller()}: {problem}")
    return found


def _count_problem(conn: psycopg.Connection, policy: Policy, contract: Contract, entry: RowCount,
                   today: date) -> str | None:
    from hub import row_filters

    if entry.role not in policy.roles:
        return "not a role of the policy"
    decision = decide(policy, role=entry.role, contract=contract, today=today,
                      attributes=entry.attributes)
    if not decision.allowed:
        return f"denied ({decision.reason}); count only callers who read the dataset"
    try:
        with conn.transaction():  # a savepoint: a missing table spoils no other count
            rows = row_filters.count(conn, contract.relation_name, decision.rows)
    except psycopg.errors.UndefinedTable:
        return "nothing published in this warehouse; run `hub run` first"
    return None if rows == entry.rows else f"expected {entry.rows} rows, the warehouse gives {rows}"


@app.command("explain")
def explain(
    role: Annotated[str, typer.Argument(help="a role from access_policies/*.yaml")],
    dataset: Annotated[str, typer.Argument(help="a dataset id, e.g. transport.bike_counts")],
    attribute: AttributeOption = None,
    on: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="decide as on this day; default today")] = None,
) -> int:
    """Say how ROLE reads DATASET: the deciding grant, each column and its mask, and the row
    filter in words (with --attribute, the caller's values filled in)."""
    attributes = parse_attributes(attribute)
    settings = get_settings()
    contracts = load_all(settings.contracts_dir)
    try:
        policy = load_policies(settings.policies_dir, contracts)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    if role not in policy.roles:
        raise UsageError(f"unknown role {role!r}; roles: {', '.join(sorted(policy.roles))}")
    if dataset not in contracts:
        raise UsageError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(contracts))}")
    today = on.date() if on else clock.today()
    decision = decide(policy, role=role, contract=contracts[dataset], today=today,
                      attributes=attributes)
    for line in explained(decision, policy.roles[role].scopes):
        print(line)
    return 0


def explained(decision: Decision, scopes: frozenset[str]) -> list[str]:
    """The decision in lines of words, as `hub policies explain` prints them."""
    if READ_SCOPE not in scopes:
        return [f"denied: the role lacks the {READ_SCOPE} scope"]
    if decision.missing_attribute is not None:
        return [f"denied: {decision.reason}; pass --attribute {decision.missing_attribute}="
                "<value> to see its rows"]
    if not decision.allowed or decision.grant is None:
        return [f"denied: {decision.reason}"]
    grant = decision.grant
    lines = [f"grant: {grant.id}", f"purpose: {grant.purpose}",
             f"rows: {describe(grant.row_filter, decision.attributes)}", "columns:"]
    lines += [f"  {c.name}: {'as stored' if c.mask is None else 'masked: ' + c.mask}"
              for c in decision.columns]
    return lines
