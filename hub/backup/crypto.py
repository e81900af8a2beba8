"""Chunked AES-256-GCM for streams: memory stays flat whatever the size.

File: MAGIC | salt (16) | chunk size (4) | key check (16), then records:
flag (1: 0 more, 1 final) | length (4) | nonce (12) | ciphertext with its tag.
Each chunk has its own random nonce and is authenticated with the file's header, its index
and its flag as associated data: a flipped byte, a reordered or dropped chunk, a chunk from
another file and a cut-off end are all detected. The key is derived from the passphrase
with scrypt and the file's salt; the key check tells a wrong key from an altered file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.backup import BackupError

MAGIC = b"CDHBAK1\n"
CHUNK = 1024 * 1024
TAG = 16
HEADER = struct.Struct(">16sI16s")
RECORD = struct.Struct(">BI12s")


def derive(passphrase: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(AES key, key check) from the passphrase and the file's salt."""
    out = hashlib.scrypt(passphrase, salt=salt, n=2**14, r=8, p=1, dklen=48,
                         maxmem=64 * 1024 * 1024)
    return out[:32], out[32:]


class EncryptingWriter:
    """A write-only binary file that encrypts into `sink` chunk by chunk; close() ends it."""

    def __init__(self, sink: BinaryIO, passphrase: bytes, chunk_size: int = CHUNK) -> None:
        salt = os.urandom(16)
        key, check = derive(passphrase, salt)
        self._aes, self._sink, self._size = AESGCM(key), sink, chunk_size
        self._header = MAGIC + HEADER.pack(salt, chunk_size, check)
        self._buffer, self._index, self.plain_sha256 = bytearray(), 0, hashlib.sha256()
        sink.write(self._header)

    def write(self, data: bytes) -> int:
        self.plain_sha256.update(data)
        self._buffer += data
        while len(self._buffer) > self._size:  # keep one chunk back: it may be the last
            self._emit(bytes(self._buffer[:self._size]), final=False)
            del self._buffer[:self._size]
        return len(data)

    def close(self) -> None:
        self._emit(bytes(self._buffer), final=True)
        self._buffer.clear()

    def _emit(self, plain: bytes, final: bool) -> None:
        nonce = os.urandom(12)
        sealed = self._aes.encrypt(nonce, plain, _aad(self._header, self._index, final))
        self._sink.write(RECORD.pack(int(final), len(sealed), nonce) + sealed)
        self._index += 1


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, int(final))


def decrypt(source: BinaryIO, passphrase: bytes, name: str) -> Iterator[bytes]:
    """The plaintext of an encrypted object, chunk by chunk; BackupError naming `name` and
    what is wrong (wrong key, truncated, altered) as soon as it is seen."""
    header, aes, size = _open(source, passphrase, name)
    index = 0
    while True:
        final, sealed, nonce = _record(source, size, name)
        try:
            yield aes.decrypt(nonce, sealed, _aad(header, index, final))
        except InvalidTag:
            raise BackupError(f"{name}: chunk {index} fails authentication: the file was "
                              "altered (a changed byte, or chunks reordered)") from None
        if final:
            break
        index += 1
    if source.read(1):
        raise BackupError(f"{name}: data after the final chunk: the file was altered")


def _open(source: BinaryIO, passphrase: bytes, name: str) -> tuple[bytes, AESGCM, int]:
    header = source.read(len(MAGIC) + HEADER.size)
    if len(header) < len(MAGIC) + HEADER.size or not header.startswith(MAGIC):
        raise BackupError(f"{name}: not an encrypted hub backup file (bad header)")
    salt, size, check = HEADER.unpack(header[len(MAGIC):])
    key, expected = derive(passphrase, salt)
    if not hmac.compare_digest(check, expected):
        raise BackupError(f"{name}: wrong backup key: this backup was encrypted with another "
                          "HUB_BACKUP_KEY")
    return header, AESGCM(key), size


def _record(source: BinaryIO, size: int, name: str) -> tuple[bool, bytes, bytes]:
    head = source.read(RECORD.size)
    if len(head) < RECORD.size:
        raise BackupError(f"{name}: truncated: the file ends before its final chunk")
    flag, length, nonce = RECORD.unpack(head)
    if flag > 1 or length > size + TAG:
        raise BackupError(f"{name}: a chunk header was altered (flag {flag}, length {length})")
    sealed = source.read(length)
    if len(sealed) < length:
        raise BackupError(f"{name}: truncated: the file ends before its final chunk")
    return bool(flag), sealed, nonce
