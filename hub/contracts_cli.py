"""`hub contracts ...`: lint, compile, diff (offline) and register (in the warehouse)."""

from __future__ import annotations

import argparse
import sys

from contracts import ContractError, load_all, load_contract
from contracts.diff import diff, version_problem
from hub.settings import Settings


def cmd_lint(args: argparse.Namespace, settings: Settings) -> int:
    failed = 0
    for path in args.files:
        try:
            contract = load_contract(path)
        except (ContractError, OSError) as exc:
            print(str(exc), file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: ok ({contract.dataset_id} {contract.version}, "
                  f"{len(contract.columns)} columns)")
    return 1 if failed else 0


def cmd_compile(args: argparse.Namespace, settings: Settings) -> int:
    from flows.build import generated_files, write_generated

    contracts = list(load_all(settings.contracts_dir).values())
    if args.check:
        stale = [p for p, text in generated_files(contracts, settings.dbt_project_dir).items()
                 if not p.exists() or p.read_text() != text]
        for path in stale:
            print(f"out of date: {path} (run `hub contracts compile`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_generated(contracts, settings.dbt_project_dir):
        print(f"wrote {path}")
    return 0


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when NEW may follow OLD, 1 when its version number does not fit its changes."""
    old, new = load_contract(args.old), load_contract(args.new)
    if old.dataset_id != new.dataset_id:
        print(f"{args.new}: describes {new.dataset_id}, not {old.dataset_id}", file=sys.stderr)
        return 1
    changes = diff(old, new)
    for line in changes.breaking:
        print(f"BREAKING  {line}")
    for line in changes.other:
        print(f"ok        {line}")
    problem = version_problem(old, new, changes)
    print(f"{old.version} -> {new.version}: " + (problem or "the version fits the changes"))
    return 1 if problem else 0


def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    from access_policies import load_policies
    from hub.cli import warehouse
    from hub.registry import RegistrationRefused, register

    contract = load_contract(args.file)
    policy = load_policies(settings.policies_dir, load_all(settings.contracts_dir))
    try:
        with warehouse(settings) as conn:
            done = register(conn, contract, args.file.read_text(), args.by, policy)
    except RegistrationRefused as exc:
        print(f"{args.file}: refused: {exc}", file=sys.stderr)
        return 1
    print(f"{done.dataset} {done.version}: {done.status}")
    for line in done.breaking_changes:
        print(f"  breaking: {line}")
    if done.notified:
        print(f"  notified: {', '.join(done.notified)}; older majors served until "
              f"{done.deprecated_after}")
    return 0
