"""Where backups live: a local folder or any fsspec URL, one folder per backup, and the
retention that keeps daily, weekly and monthly ones (HUB_BACKUP_KEEP)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from fsspec.core import url_to_fs

from hub.backup import BackupError

DUMP, HOME, MANIFEST = "warehouse.dump.cdhb", "home.tar.cdhb", "manifest.json.cdhb"
NAME = re.compile(r"^hub-(\d{8}T\d{6}Z)-[0-9a-f]{4}$")


def new_name(now: datetime) -> str:
    """`hub-<UTC time>-<4 hex>`: sorts by time; the suffix keeps same-second ones apart."""
    return f"hub-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def taken_at(name: str) -> datetime:
    found = NAME.match(name)
    if not found:
        raise BackupError(f"{name!r} is not a backup name (like hub-20261203T080000Z-1a2b); "
                          "`hub backup list` shows them")
    return datetime.strptime(found.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Listed:
    name: str
    complete: bool
    size: int


class Store:
    """The backups at one destination."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.fs, self.root = url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise BackupError(f"backup destination {url!r}: {exc}") from None

    def _path(self, name: str, obj: str = "") -> str:
        return "/".join(p for p in (self.root.rstrip("/"), name, obj) if p)

    def writer(self, name: str, obj: str) -> BinaryIO:
        self.fs.makedirs(self._path(name), exist_ok=True)
        return self.fs.open(self._path(name, obj), "wb")

    def reader(self, name: str, obj: str) -> BinaryIO:
        taken_at(name)
        if not self.fs.exists(self._path(name, obj)):
            raise BackupError(f"no backup {name!r} (or its {obj} is missing) at {self.url}; "
                              "`hub backup list` shows the backups there")
        return self.fs.open(self._path(name, obj), "rb")

    def backups(self) -> list[Listed]:
        """Every backup here, oldest first; incomplete ones lack their manifest."""
        if not self.fs.exists(self.root):
            return []
        found = []
        for entry in self.fs.ls(self.root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if NAME.match(name):
                files = self.fs.ls(self._path(name), detail=True)
                found.append(Listed(name, any(f["name"].endswith(MANIFEST) for f in files),
                                    sum(int(f.get("size") or 0) for f in files)))
        return sorted(found, key=lambda b: b.name)

    def remove(self, name: str) -> None:
        self.fs.rm(self._path(name), recursive=True)

    def remove_if_there(self, name: str) -> None:
        if self.fs.exists(self._path(name)):
            self.remove(name)


def parse_keep(text: str) -> tuple[int, int, int]:
    """HUB_BACKUP_KEEP, `daily/weekly/monthly` such as `7/4/12`."""
    parts = text.split("/")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise BackupError(f"HUB_BACKUP_KEEP={text!r}: write daily/weekly/monthly counts, "
                          "e.g. 7/4/12")
    daily, weekly, monthly = (int(p) for p in parts)
    return daily, weekly, monthly


def to_keep(names: list[str], keep: tuple[int, int, int]) -> set[str]:
    """The newest backup of each of the last `daily` days, `weekly` ISO weeks and `monthly`
    months that have one, and always the newest of all."""
    newest_first = sorted(names, key=taken_at, reverse=True)
    kept = set(newest_first[:1])
    periods = (lambda t: t.date(), lambda t: t.isocalendar()[:2], lambda t: (t.year, t.month))
    for count, period in zip(keep, periods, strict=True):
        seen: list[object] = []
        for name in newest_first:
            key = period(taken_at(name))
            if key not in seen and len(seen) < count:
                seen.append(key)
                kept.add(name)
    return kept


def prune(store: Store, keep: tuple[int, int, int]) -> list[str]:
    """Remove complete backups retention does not keep, and incomplete ones older than the
    newest complete one (a failed run's leftovers); return the names removed."""
    listed = store.backups()
    complete = [b.name for b in listed if b.complete]
    kept = to_keep(complete, keep)
    newest = max(complete, default="")
    gone = [b.name for b in listed if (b.complete and b.name not in kept)
            or (not b.complete and b.name < newest)]
    for name in gone:
        store.remove(name)
    return gone
