"""`hub contracts ...`: init, lint, compile, diff (offline), register and retire (in the
warehouse)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from contracts import Contract, ContractError, load_all, load_contract
from contracts.dbt_files import generated_files
from contracts.diff import diff as changes_between
from contracts.diff import version_problem
from hub.settings import get_settings
from hub_cli.common import UsageError, warehouse

if TYPE_CHECKING:  # the registry (psycopg...) is imported by the commands that use it
    from hub.registry import Registration

app = typer.Typer(help="data contracts", no_args_is_help=True)
Existing = Annotated[Path, typer.Argument(help="an ODCS contract file")]


@app.command("init")
def init(
    dataset_id: Annotated[str, typer.Argument(
        help="the dataset as <department>.<table>, e.g. health.restaurant_inspections")],
    source: Annotated[str, typer.Option(
        "--from", help="a sample: a .csv, .jsonl, .json or .parquet file, or a SQLAlchemy URL")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="write the draft to this new file (default: print it)")] = None,
    table: Annotated[str | None, typer.Option(
        help="the table at a database URL (default: the dataset's table name)")] = None,
    rows: Annotated[int, typer.Option(help="read at most this many rows")] = 100_000,
) -> int:
    """Draft a contract from a sample; what it is unsure of is printed to stderr."""
    from contracts.draft import DraftError, draft_contract
    from hub_cli.samples import read_sample

    if output is not None and output.exists():
        raise UsageError(f"{output} exists: give a new file (-o), or remove it first")
    sample = read_sample(source, table or dataset_id.rpartition(".")[2], rows,
                         get_settings().sample_data_dir)
    try:
        made = draft_contract(dataset_id, sample.headers, sample.rows, sample.spec)
    except DraftError as exc:
        raise UsageError(str(exc)) from None
    if output is None:
        print(made.text, end="", flush=True)
    else:
        output.write_text(made.text)
        print(f"wrote {output}; check it with `hub contracts lint {output}`", file=sys.stderr)
    for note in sample.notes + made.notes:
        print(f"unsure: {note}", file=sys.stderr)
    return 0


@app.command("lint")
def lint(files: Annotated[list[Path], typer.Argument(help="ODCS contract files")]) -> int:
    """Check contract files (offline); each problem names its field and the fix."""
    failed = 0
    for path in files:
        try:
            contract = load_contract(path)
        except (ContractError, OSError) as exc:
            print(str(exc), file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: ok ({contract.dataset_id} {contract.version}, "
                  f"{len(contract.columns)} columns)")
    return 1 if failed else 0


@app.command("compile")
def compile_(check: Annotated[bool, typer.Option(
        "--check", help="fail if a file is out of date")] = False) -> int:
    """Write the dbt files compiled from contracts."""
    settings = get_settings()
    contracts = list(load_all(settings.contracts_dir).values())
    files = generated_files(contracts, settings.dbt_project_dir)
    stale = {p: text for p, text in files.items() if not p.exists() or p.read_text() != text}
    for path, text in stale.items():
        if check:
            print(f"out of date: {path} (run `hub contracts compile`)", file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    return 1 if check and stale else 0


@app.command("diff")
def diff(old: Existing, new: Existing) -> int:
    """List the changes from OLD to NEW, breaking ones first (offline); exit 1 when NEW's
    version number does not fit its changes."""
    before, after = load_contract(old), load_contract(new)
    if before.dataset_id != after.dataset_id:
        print(f"{new}: describes {after.dataset_id}, not {before.dataset_id}", file=sys.stderr)
        return 1
    changes = changes_between(before, after)
    for line in changes.breaking:
        print(f"BREAKING  {line}")
    for line in changes.other:
        print(f"ok        {line}")
    problem = version_problem(before, after, changes)
    print(f"{before.version} -> {after.version}: " + (problem or "the version fits the changes"))
    return 1 if problem else 0


@app.command("register")
def register(file: Existing, by: Annotated[str, typer.Option(
        help="who registers it (recorded)")] = "hub-cli") -> int:
    """Store a contract version in the registry."""
    from access_policies import load_policies
    from hub.registry import RegistrationRefused
    from hub.registry import register as store

    settings = get_settings()
    contract = load_contract(file)
    policy = load_policies(settings.policies_dir, load_all(settings.contracts_dir))
    try:
        with warehouse(settings) as conn:
            done = store(conn, contract, file.read_text(), by, policy)
    except RegistrationRefused as exc:
        print(f"{file}: refused: {exc}", file=sys.stderr)
        return 1
    print(f"{done.dataset} {done.version}: {done.status}")
    _next_steps(done, contract, settings.deployments_file)
    return 0


def _next_steps(done: Registration, contract: Contract, deployments_file: Path) -> None:
    """What POST /contracts answers besides: the verdict, warnings, when it publishes."""
    from contracts.advice import lint_warnings
    from hub.onboarding import next_publish, verdict

    print(f"  verdict: {verdict(done)}")
    for line in done.breaking_changes:
        print(f"  breaking: {line}")
    if done.notified:
        print(f"  notified: {', '.join(done.notified)}; older majors served until "
              f"{done.deprecated_after}")
    for warning in lint_warnings(contract):
        print(f"  warning: {warning}")
    print(f"  publishes: {next_publish(contract, deployments_file)['when']}")


@app.command("retire")
def retire(dataset: Annotated[str, typer.Argument(help="the dataset, e.g. public_works.potholes")],
           by: Annotated[str, typer.Option(help="who retires it (recorded)")] = "hub-cli") -> int:
    """Retire a dataset: a new contract version with status: retired. It stops publishing
    and its rows route answers 410; audited."""
    from access_policies import load_policies
    from hub.catalog import NotRegistered, in_force
    from hub.catalog import retire as store
    from hub.registry import RegistrationRefused

    settings = get_settings()
    try:
        with warehouse(settings) as conn:
            known = {**in_force(conn, retired=True), **load_all(settings.contracts_dir)}
            done = store(conn, dataset, by, load_policies(settings.policies_dir, known))
    except NotRegistered as exc:
        raise UsageError(str(exc)) from None
    except RegistrationRefused as exc:
        print(f"{dataset}: {exc}", file=sys.stderr)
        return 1
    print(f"{done.dataset}: retired by version {done.version}; `hub run` no longer builds it "
          "and its rows route answers 410")
    return 0
