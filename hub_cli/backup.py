"""`hub backup ...`: create, verify, restore and list encrypted backups."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.backup import BackupError
from hub.settings import Settings, get_settings
from hub_cli.common import UsageError

app = typer.Typer(help="encrypted, verified backups of the warehouse and HUB_HOME",
                  no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="a backup's name, as `create` printed it")]
From = Annotated[str | None, typer.Option(
    "--from", help="where the backup is: folder or fsspec URL (default HUB_BACKUP_URL, "
                   "else HUB_HOME/backups)")]


def _ready_url(settings: Settings) -> str:
    """The warehouse, its schema brought up to date (an empty one gets the hub's tables)."""
    from hub.bootstrap import bootstrap
    from hub.warehouse import resolve_url

    url = resolve_url(settings)
    bootstrap(url, settings.app_role)
    return url


@app.command("create")
def create(to: Annotated[str | None, typer.Option(
        help="folder or fsspec URL (default HUB_BACKUP_URL, else HUB_HOME/backups)")] = None,
        ) -> int:
    """Back up the warehouse and HUB_HOME's keys and audit archives, encrypted; apply
    HUB_BACKUP_KEEP. The last line printed is the backup's name."""
    from hub.backup.service import make_backup

    settings = get_settings()
    destination = to or settings.backup_destination
    try:
        name, gone = make_backup(settings, _ready_url(settings), destination)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    if gone:
        print(f"retention (HUB_BACKUP_KEEP={settings.backup_keep}) removed: {', '.join(gone)}")
    print(f"backup written to {destination}")
    print(name)
    return 0


@app.command("verify")
def verify(name: Name, source: From = None) -> int:
    """Decrypt, check every checksum, restore into a scratch database, verify the ledger
    there and compare with the manifest; exit 1 on any mismatch."""
    from hub.backup.service import verify_backup

    settings = get_settings()
    report = verify_backup(settings, _ready_url(settings),
                           source or settings.backup_destination, name)
    print("\n".join(report.lines))
    if report.ok:
        print(f"VERIFIED: {name} restores and matches its manifest")
        return 0
    print(f"FAILED: {name}")
    print("\n".join(f"  - {p}" for p in report.problems))
    return 1


@app.command("restore")
def restore(name: Name, source: From = None,
            force: Annotated[bool, typer.Option(
                "--force", help="replace a non-empty warehouse and HUB_HOME keys")] = False,
            ) -> int:
    """Restore a backup into an empty warehouse and HUB_HOME."""
    from hub.backup.service import restore_backup
    from hub.warehouse import resolve_url

    settings = get_settings()
    try:
        manifest = restore_backup(settings, resolve_url(settings),
                                  source or settings.backup_destination, name, force)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    rows = sum(manifest["tables"].values())
    print(f"restored {name}: {len(manifest['tables'])} tables, {rows} rows, "
          f"{len(manifest['home_files'])} key and archive files; run `hub audit verify`")
    return 0


@app.command("list")
def list_backups(source: From = None) -> int:
    """The backups at a destination, oldest first, and which retention keeps."""
    from hub.backup.store import Store, parse_keep, to_keep

    settings = get_settings()
    try:
        store = Store(source or settings.backup_destination)
        listed = store.backups()
        kept = to_keep([b.name for b in listed if b.complete], parse_keep(settings.backup_keep))
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    for b in listed:
        state = ("kept" if b.name in kept else "to prune") if b.complete else "incomplete"
        print(f"{b.name}  {b.size / 1e6:10.1f} MB  {state}")
    print(f"{len(listed)} backup(s) at {store.url}")
    return 0
