"""`hub audit ...`: seal, verify, export and archive the ledger, and show its public key."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hub import ledger
from hub.ledger_verify import Verification, read_checkpoint_file, verify_export
from hub.ledger_verify import export as write_export
from hub.retention import verify_database
from hub.settings import get_settings
from hub_cli.common import UsageError, warehouse

app = typer.Typer(help="the audit ledger", no_args_is_help=True)


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@app.command("seal")
def seal() -> int:
    """Chain and sign the audit rows written since the last seal."""
    settings = get_settings()
    with warehouse(settings) as conn:
        sealed = ledger.seal(conn, ledger.load_signing_key(settings.keys_dir))
    print(f"sealed {sealed} audit entries")
    return 0


@app.command("verify")
def verify(
    export: Annotated[Path | None, typer.Option(help="verify this export file instead")] = None,
    public_key: Annotated[Path | None, typer.Option(help="PEM file (with --export)")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="a checkpoint seen earlier: an export, or /transparency/report saved to a file; "
             "the ledger must still reach it and hold it")] = None,
) -> int:
    """Check the whole chain and every checkpoint."""
    settings = get_settings()
    try:
        known = read_checkpoint_file(checkpoint) if checkpoint else None
        if export:
            result = verify_export(export, _public_pem(public_key), known)
        else:
            key = ledger.load_signing_key(settings.keys_dir).public_key()
            with warehouse(settings) as conn:
                result = verify_database(conn, key, settings.audit_archive_dir, known)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(format_verification(result))
    return 0 if result.ok else 1


def _public_pem(path: Path | None) -> str:
    if not path:
        raise UsageError("--export needs --public-key FILE (from `hub audit public-key`)")
    return path.read_text()


def format_verification(result: Verification) -> str:
    lines = [f"{result.entries} entries, {result.checkpoints} checkpoints checked"
             + (f"; {result.unsealed} not sealed yet" if result.unsealed else "")]
    if result.ok:
        return "\n".join(lines + ["ledger intact"])
    first = min(result.problems, key=lambda p: (p.seq is None, p.seq or 0))
    lines.append(f"TAMPERED: first at seq {first.seq}: {first.message}")
    lines += [f"  - [{p.kind}] {p.message}" for p in result.problems]
    return "\n".join(lines)


@app.command("export")
def export(
    since: Annotated[str, typer.Option(help="ISO date or time, inclusive")],
    until: Annotated[str, typer.Option(help="ISO date or time, exclusive")],
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    format: Annotated[Format, typer.Option(help="file format")] = Format.jsonl,  # noqa: A002
) -> int:
    """Write entries of a time range, with their checkpoints and the ledger's latest one."""
    start, end = _when(since, "--since"), _when(until, "--until")
    with warehouse(get_settings()) as conn:
        try:
            count = write_export(conn, output, start, end, format.value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    print(f"wrote {count} entries to {output}")
    return 0


@app.command("public-key")
def public_key() -> int:
    """Print the ledger's public key (PEM)."""
    sys.stdout.write(ledger.public_pem(ledger.load_signing_key(get_settings().keys_dir)))
    return 0


@app.command("archive")
def archive(before: Annotated[str | None, typer.Option(
        help="ISO time (default: HUB_AUDIT_RETENTION_DAYS ago)")] = None) -> int:
    """Move entries past retention into archive files."""
    from hub.retention import archive as move_to_archive

    settings = get_settings()
    cutoff = (_when(before, "--before") if before
              else datetime.now(UTC) - timedelta(days=settings.audit_retention_days))
    with warehouse(settings) as conn:
        done = move_to_archive(conn, settings.audit_archive_dir, cutoff)
    if done is None:
        print(f"nothing to archive before {cutoff.isoformat()} (only sealed, checkpointed "
              "entries are archived)")
    else:
        print(f"archived entries {done.first_seq}..{done.last_seq} to "
              f"{settings.audit_archive_dir / done.file_name}")
    return 0


def _when(text: str, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not an ISO date or time, e.g. 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
