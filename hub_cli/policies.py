"""`hub policies ...`: check the access policies against who-sees-what written by hand, and
explain one role's view of one dataset."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from access_policies import Decision, PolicyError, decide, load_policies
from access_policies.expectations import (
    EXPECTED_FILE,
    READ_SCOPE,
    ExpectationError,
    compare,
    load_expectations,
    tally,
)
from access_policies.row_filter import describe
from contracts import load_all
from hub import clock
from hub.settings import get_settings
from hub_cli.common import AttributeOption, UsageError, parse_attributes

app = typer.Typer(help="access policies", no_args_is_help=True)


@app.command("test")
def test(
    file: Annotated[Path | None, typer.Argument(
        help=f"expectations file (default: access_policies/{EXPECTED_FILE})")] = None,
    on: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="decide as on this day (grants have validity windows); "
        "default today")] = None,
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
    mismatches = compare(expected, policy, contracts, today)
    for mismatch in mismatches:
        print(mismatch)
    if mismatches:
        print(f"{path}: {len(mismatches)} difference(s) from the policy on {today}")
        return 1
    readable, denied = tally(expected)
    print(f"{path}: the policy agrees on {today}: {readable + denied} cells "
          f"({readable} readable, {denied} denied)")
    return 0


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
