"""Encrypted objects at a store: written from a stream or a file tree, read back checked."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hub.backup import BackupError
from hub.backup.crypto import CHUNK, EncryptingWriter, decrypt
from hub.backup.store import HOME, MANIFEST, Store

HOME_PARTS = ("keys", "audit-archive")  # what of HUB_HOME a restore needs


@dataclass(frozen=True)
class Written:
    plain_sha256: str
    stored_sha256: str
    stored_bytes: int


class _Hashing:
    """A sink that counts and hashes what goes through it."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.sink.write(data)


@contextmanager
def encrypted(store: Store, name: str, obj: str, key: bytes) -> Iterator[EncryptingWriter]:
    """A writer whose plaintext lands encrypted at the store; `.written` set on close."""
    with store.writer(name, obj) as sink:
        hashing = _Hashing(sink)
        writer = EncryptingWriter(hashing, key)
        yield writer
        writer.close()
    writer.written = Written(writer.plain_sha256.hexdigest(), hashing.sha.hexdigest(),
                             hashing.size)


def pump(process: subprocess.Popen, writer: EncryptingWriter) -> None:
    """Copy a process's stdout into the writer, a chunk at a time."""
    while block := process.stdout.read(CHUNK):
        writer.write(block)


def write_home(store: Store, name: str, home: Path, key: bytes) -> tuple[Written, dict]:
    """The keys and audit archives under HUB_HOME as an encrypted tar; with each file's
    sha256 by its path under HUB_HOME."""
    files = sorted(p for part in HOME_PARTS if (home / part).is_dir()
                   for p in (home / part).rglob("*") if p.is_file())
    sums = {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    with encrypted(store, name, HOME, key) as writer, \
            tarfile.open(fileobj=writer, mode="w|") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(home)), recursive=False)
    return writer.written, sums


def write_manifest(store: Store, name: str, manifest: dict[str, Any], key: bytes) -> None:
    with encrypted(store, name, MANIFEST, key) as writer:
        writer.write(json.dumps(manifest, indent=1, sort_keys=True).encode())


def read_manifest(store: Store, name: str, key: bytes) -> dict[str, Any]:
    with store.reader(name, MANIFEST) as source:
        text = b"".join(decrypt(source, key, MANIFEST))
    return json.loads(text)


def check_stored(store: Store, name: str, obj: str, manifest: dict[str, Any],
                 key: bytes) -> None:
    """The stored object's sha256 is the manifest's: it is the object this backup wrote.
    If not, a decrypting pass names what is wrong when it can (truncated, altered chunk)."""
    sha = hashlib.sha256()
    with store.reader(name, obj) as source:
        while block := source.read(CHUNK):
            sha.update(block)
    if sha.hexdigest() != manifest["files"][obj]["stored_sha256"]:
        with store.reader(name, obj) as source:
            for _ in decrypt(source, key, obj):  # raises, naming the problem, if it sees one
                pass
        raise BackupError(f"{obj}: checksum does not match the manifest's: the file was "
                          "replaced or altered since the backup was made")


def plain_chunks(store: Store, name: str, obj: str, key: bytes,
                 manifest: dict[str, Any]) -> Iterator[bytes]:
    """The decrypted object; at its end, its plaintext sha256 checked against the manifest."""
    sha = hashlib.sha256()
    with store.reader(name, obj) as source:
        for block in decrypt(source, key, obj):
            sha.update(block)
            yield block
    if sha.hexdigest() != manifest["files"][obj]["plain_sha256"]:
        raise BackupError(f"{obj}: decrypted content does not match the manifest's checksum")


def extract_home(store: Store, name: str, key: bytes, manifest: dict[str, Any],
                 home: Path) -> list[str]:
    """Unpack the keys and audit archives into `home` (keys 0600), each file checked."""
    with tempfile.SpooledTemporaryFile(max_size=CHUNK * 8) as spool:
        for block in plain_chunks(store, name, HOME, key, manifest):
            spool.write(block)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r:") as tar:
            tar.extractall(home, filter="data")
    for rel, expected in manifest["home_files"].items():
        path = home / rel
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise BackupError(f"{rel}: restored file does not match the manifest's checksum")
        path.chmod(0o600)
    (home / "keys").mkdir(parents=True, exist_ok=True)
    (home / "keys").chmod(0o700)
    return sorted(manifest["home_files"])


