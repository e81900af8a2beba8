"""Backups as the hub runs them: the key, the destination, the audit record of each act."""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psycopg

from hub.audit import AuditEvent, record
from hub.backup import BackupError
from hub.backup.create import create
from hub.backup.manifest import differences, facts
from hub.backup.objects import extract_home
from hub.backup.restore import Source, clear, ensure_role, load, refuse_non_empty
from hub.backup.store import Store, parse_keep, prune
from hub.keyfiles import check_private
from hub.settings import Settings
from hub.warehouse import drop_database, ensure_database


def backup_key(settings: Settings) -> bytes:
    """HUB_BACKUP_KEY, else the content of HUB_BACKUP_KEY_FILE (which only we may read)."""
    if settings.backup_key is not None:
        return settings.backup_key.get_secret_value().encode()
    if settings.backup_key_file is not None:
        path = settings.backup_key_file
        if not path.is_file():
            raise BackupError(f"HUB_BACKUP_KEY_FILE {path} does not exist")
        check_private(path)
        return path.read_bytes().strip()
    raise BackupError("no backup key: set HUB_BACKUP_KEY, or HUB_BACKUP_KEY_FILE to a file "
                      "only you can read (mode 0600), kept away from the backups")


def hub_version() -> str:
    try:
        return version("civic-data-hub")
    except PackageNotFoundError:
        return "unknown"


def _audit(url: str, kind: str, reason: str, detail: dict, ok: bool = True) -> None:
    with psycopg.connect(url) as conn:
        record(conn, AuditEvent(kind=kind, decision="allow" if ok else "deny",
                                reason=reason, client_id="hub CLI", detail=detail))


def make_backup(settings: Settings, url: str, destination: str) -> tuple[str, list[str]]:
    """A new backup at `destination`, then retention; (its name, the names pruned)."""
    store, key = Store(destination), backup_key(settings)
    keep = parse_keep(settings.backup_keep)
    _key_apart(settings.backup_key_file, destination)
    name = create(url, settings.home, store, key, hub_version())
    gone = prune(store, keep)
    _audit(url, "backup.created", "hub backup create",
           {"name": name, "destination": _shown(destination), "pruned": gone})
    return name, gone


def _key_apart(key_file: Path | None, destination: str) -> None:
    """A key kept with the backups protects nothing: whoever has one has the other."""
    if key_file is None or "://" in destination:
        return
    if key_file.resolve().is_relative_to(Path(destination).resolve()):
        raise BackupError(f"HUB_BACKUP_KEY_FILE {key_file} is inside the backup destination "
                          f"{destination}: keep the key away from the backups")


def _shown(destination: str) -> str:
    """The destination for the record, without credentials an URL may carry."""
    head, sep, tail = destination.partition("@")
    return f"{head.split('//')[0]}//***@{tail}" if sep and "//" in head else destination


@dataclass
class Report:
    name: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_backup(settings: Settings, url: str, destination: str, name: str) -> Report:
    """Decrypt and check every checksum, restore into a scratch database, verify the ledger
    there and compare with the manifest; the scratch database is dropped."""
    report = Report(name)
    try:
        _verify_into_scratch(settings, url, Source(Store(destination), name,
                                                   backup_key(settings)), report)
    except BackupError as exc:
        report.problems.append(str(exc))
    _audit(url, "backup.verified", "hub backup verify",
           {"name": name, "ok": report.ok, "problems": report.problems[:20]}, ok=report.ok)
    return report


def _verify_into_scratch(settings: Settings, url: str, source: Source, report: Report) -> None:
    manifest = source.manifest()
    report.lines.append(f"backup {source.name}: made {manifest['created_at']} by hub "
                        f"{manifest['hub_version']}; manifest and stored checksums match")
    scratch = f"hub_verify_{secrets.token_hex(4)}"
    scratch_url = ensure_database(url, scratch)
    try:
        ensure_role(scratch_url, settings.app_role)
        load(source, manifest, scratch_url)
        with tempfile.TemporaryDirectory() as tmp:
            files = extract_home(source.store, source.name, source.key, manifest, Path(tmp))
            found, ledger = _inspect(scratch_url, Path(tmp))
    finally:
        drop_database(url, scratch)
    report.lines += _summary(manifest, found, files, ledger)
    report.problems += differences(manifest, found) + ledger.messages()


@dataclass
class LedgerCheck:
    entries: int
    checkpoints: int
    problems: list[str]

    def messages(self) -> list[str]:
        return [f"ledger: {p}" for p in self.problems]


def _inspect(scratch_url: str, home: Path) -> tuple[dict, LedgerCheck]:
    from hub.ledger import load_signing_key
    from hub.retention import verify_database

    public = load_signing_key(home / "keys").public_key()
    with psycopg.connect(scratch_url) as conn:
        found = facts(conn)
        result = verify_database(conn, public, home / "audit-archive")
    return found, LedgerCheck(result.entries, result.checkpoints,
                              [f"seq {p.seq}: {p.message}" for p in result.problems])


def _summary(manifest: dict, found: dict, files: list[str], ledger: LedgerCheck) -> list[str]:
    rows = sum(found["tables"].values())
    versions = ", ".join(f"{d} v{v}" for d, v in found["published"].items()) or "none"
    return [f"restored into a scratch database: {len(found['tables'])} tables, {rows} rows "
            f"(manifest: {len(manifest['tables'])} tables, {sum(manifest['tables'].values())} "
            "rows)",
            f"HUB_HOME files: {len(files)} (keys and audit archives), checksums match",
            f"published versions: {versions}",
            f"ledger: {ledger.entries} entries, {ledger.checkpoints} checkpoints checked"
            + ("; intact" if not ledger.problems else f"; {len(ledger.problems)} problem(s)")]


def restore_backup(settings: Settings, url: str, destination: str, name: str,
                   force: bool) -> dict:
    """Restore into the warehouse at `url` and HUB_HOME; refuses non-empty ones unless
    `force`. Returns the manifest of what was restored."""
    from hub.bootstrap import bootstrap

    source = Source(Store(destination), name, backup_key(settings))
    manifest = source.manifest()  # every check that can fail before anything is touched
    if force:
        clear(url, settings.home)
    else:
        refuse_non_empty(url, settings.home)
    ensure_role(url, settings.app_role)
    load(source, manifest, url)
    extract_home(source.store, name, source.key, manifest, settings.home)
    bootstrap(url, settings.app_role)
    _audit(url, "backup.restored", "hub backup restore",
           {"name": name, "destination": _shown(destination), "forced": force})
    return manifest


