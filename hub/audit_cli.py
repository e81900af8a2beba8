"""`hub audit ...`: seal, verify, export the ledger, and show its public key."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from hub import ledger
from hub.ledger_verify import Verification, export, verify_database, verify_export
from hub.settings import Settings


def cmd_seal(args: argparse.Namespace, settings: Settings) -> int:
    from hub.cli import warehouse

    with warehouse(settings) as conn:
        sealed = ledger.seal(conn, ledger.load_signing_key(settings.keys_dir))
    print(f"sealed {sealed} audit entries")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from hub.cli import UsageError, warehouse

    if args.export:
        if not args.public_key:
            raise UsageError("--export needs --public-key FILE (from `hub audit public-key`)")
        result = verify_export(args.export, args.public_key.read_text())
    else:
        key = ledger.load_signing_key(settings.keys_dir).public_key()
        with warehouse(settings) as conn:
            result = verify_database(conn, key, settings.audit_archive_dir)
    print(format_verification(result))
    return 0 if result.ok else 1


def format_verification(result: Verification) -> str:
    lines = [f"{result.entries} entries, {result.checkpoints} checkpoints checked"
             + (f"; {result.unsealed} not sealed yet" if result.unsealed else "")]
    if result.ok:
        return "\n".join(lines + ["ledger intact"])
    first = min(result.problems, key=lambda p: (p.seq is None, p.seq or 0))
    lines.append(f"TAMPERED: first at seq {first.seq}: {first.message}")
    lines += [f"  - [{p.kind}] {p.message}" for p in result.problems]
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from hub.cli import UsageError, warehouse

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    with warehouse(settings) as conn:
        try:
            count = export(conn, args.output, since, until, args.format)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    print(f"wrote {count} entries to {args.output}")
    return 0


def cmd_archive(args: argparse.Namespace, settings: Settings) -> int:
    from hub.cli import warehouse
    from hub.retention import archive

    before = (_when(args.before, "--before") if args.before
              else datetime.now(UTC) - timedelta(days=settings.audit_retention_days))
    with warehouse(settings) as conn:
        done = archive(conn, settings.audit_archive_dir, before)
    if done is None:
        print(f"nothing to archive before {before.isoformat()} (only sealed, checkpointed "
              "entries are archived)")
    else:
        print(f"archived entries {done.first_seq}..{done.last_seq} to "
              f"{settings.audit_archive_dir / done.file_name}")
    return 0


def cmd_public_key(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(ledger.public_pem(ledger.load_signing_key(settings.keys_dir)))
    return 0


def _when(text: str, flag: str) -> datetime:
    from hub.cli import UsageError

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not an ISO date or time, e.g. 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
