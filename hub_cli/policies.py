"""`hub policies ...`: check the access policies against who-sees-what written by hand."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from access_policies import PolicyError, load_policies
from access_policies.expectations import (
    EXPECTED_FILE,
    ExpectationError,
    compare,
    load_expectations,
    tally,
)
from contracts import load_all
from hub import clock
from hub.settings import get_settings
from hub_cli.common import UsageError

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
