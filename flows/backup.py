"""Scheduled backups (deploy/prefect.yaml): a nightly `hub backup create` and a weekly
`hub backup verify` of the newest backup, each failing its run on any problem."""

from __future__ import annotations

from prefect import flow

from hub.backup.service import make_backup, verify_backup
from hub.backup.store import Store
from hub.bootstrap import bootstrap
from hub.settings import Settings, get_settings
from hub.warehouse import resolve_url


def _ready(settings: Settings) -> str:
    url = resolve_url(settings)
    bootstrap(url, settings.app_role)
    return url


@flow(name="backup")
def scheduled_backup() -> str:
    """A backup to HUB_BACKUP_URL (else HUB_HOME/backups), then retention; its name."""
    settings = get_settings()
    name, _ = make_backup(settings, _ready(settings), settings.backup_destination)
    return name


@flow(name="backup-verify")
def scheduled_verify() -> str:
    """Verify the newest complete backup: restore drill into a scratch database."""
    settings = get_settings()
    complete = [b.name for b in Store(settings.backup_destination).backups() if b.complete]
    if not complete:
        raise RuntimeError(f"no complete backup at {settings.backup_destination} to verify")
    report = verify_backup(settings, _ready(settings), settings.backup_destination,
                           complete[-1])
    if not report.ok:
        raise RuntimeError(f"backup {complete[-1]} failed verification: "
                           + "; ".join(report.problems))
    return complete[-1]
