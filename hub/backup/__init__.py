"""Encrypted, verified backups of the warehouse and HUB_HOME (issue 17).

A backup is a folder at a destination (a local path or any fsspec URL) holding three
encrypted objects: `warehouse.dump.cdhb` (pg_dump's custom format), `home.tar.cdhb` (the
keys and the audit archives under HUB_HOME) and `manifest.json.cdhb`, written last, whose
presence marks the backup complete. See docs/operations.md#backups.
"""


class BackupError(Exception):
    """A backup that cannot be made, trusted or restored; the message says why, in one line."""
