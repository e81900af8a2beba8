"""The cipher's stream format, the listing and retention of backups: no server needed."""

from __future__ import annotations

import io
import os
import struct

import pytest

from hub.backup import BackupError
from hub.backup.crypto import MAGIC, RECORD, TAG, EncryptingWriter, decrypt
from hub.backup.store import MANIFEST, Store, parse_keep, prune, to_keep
from tests.test_cli import hub

KEY = b"k" * 16


def _sealed(plain: bytes, chunk: int = 1000) -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, KEY, chunk_size=chunk)
    for start in range(0, len(plain), 333):  # writes of any size, across chunk bounds
        writer.write(plain[start:start + 333])
    writer.close()
    return sink.getvalue()


def _records(data: bytes) -> tuple[bytes, list[bytes]]:
    """The file's header and its records, as stored."""
    at = len(MAGIC) + 36
    header, records = data[:at], []
    while at < len(data):
        _, length, _ = RECORD.unpack(data[at:at + RECORD.size])
        records.append(data[at:at + RECORD.size + length])
        at += RECORD.size + length
    return header, records


def _open(data: bytes, key: bytes = KEY) -> bytes:
    return b"".join(decrypt(io.BytesIO(data), key, "x"))


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 4321])
def test_round_trip_in_chunks(size):
    plain = os.urandom(size)
    data = _sealed(plain)
    assert _open(data) == plain
    assert len(_records(data)[1]) == max(1, -(-size // 1000))
    assert data != _sealed(plain)  # a fresh salt and fresh nonces every time


def test_reordered_dropped_or_spliced_chunks_are_refused():
    header, records = _records(_sealed(os.urandom(3500)))
    with pytest.raises(BackupError, match="chunk 1 fails authentication"):
        _open(header + records[0] + records[2] + records[1] + records[3])
    with pytest.raises(BackupError, match="truncated: the file ends before its final chunk"):
        _open(header + b"".join(records[:3]))  # the final chunk cut off at a chunk boundary
    other_header, other = _records(_sealed(os.urandom(3500)))
    with pytest.raises(BackupError, match="chunk 0 fails authentication"):
        _open(header + other[0] + b"".join(records[1:]))  # a chunk of another file
    with pytest.raises(BackupError, match="data after the final chunk"):
        _open(header + b"".join(records) + records[3])


def test_final_flag_and_length_are_authenticated():
    header, records = _records(_sealed(os.urandom(1500)))
    last = records[1]
    not_final = bytes([0]) + last[1:]  # claim more chunks follow
    with pytest.raises(BackupError, match="chunk 1 fails authentication"):
        _open(header + records[0] + not_final)
    huge = last[:1] + struct.pack(">I", 10**6 + TAG) + last[5:]
    with pytest.raises(BackupError, match="a chunk header was altered"):
        _open(header + records[0] + huge)


def test_wrong_key_and_foreign_file_are_named():
    data = _sealed(b"secret rows")
    with pytest.raises(BackupError, match="x: wrong backup key"):
        _open(data, b"another key")
    with pytest.raises(BackupError, match="not an encrypted hub backup file"):
        _open(b"PGDMP" + data)


# ---------- retention

NAMES = ["hub-20260101T020000Z-0001",  # Thu: January's only
         "hub-20260210T020000Z-0002", "hub-20260215T020000Z-0003",  # Tue, Sun of week 7
         "hub-20260216T010000Z-0004", "hub-20260216T230000Z-0005",  # Mon twice
         "hub-20260217T020000Z-0006"]  # Tue: the newest


def test_retention_keeps_the_newest_of_each_day_week_and_month():
    assert to_keep(NAMES, (2, 0, 0)) == {NAMES[5], NAMES[4]}
    assert to_keep(NAMES, (0, 2, 0)) == {NAMES[5], NAMES[2]}
    assert to_keep(NAMES, (0, 0, 2)) == {NAMES[5], NAMES[0]}
    assert to_keep(NAMES, (0, 0, 0)) == {NAMES[5]}  # never none
    assert to_keep(NAMES, (7, 4, 12)) == {NAMES[0], NAMES[1], NAMES[2], NAMES[4], NAMES[5]}
    assert parse_keep("7/4/12") == (7, 4, 12)
    with pytest.raises(BackupError, match="HUB_BACKUP_KEEP='7,4': write daily/weekly"):
        parse_keep("7,4")


def _fake_backups(root, complete: list[str], incomplete: list[str]) -> None:
    for name in complete + incomplete:
        (root / name).mkdir(parents=True)
        (root / name / "warehouse.dump.cdhb").write_bytes(b"x" * 10)
        if name in complete:
            (root / name / MANIFEST).write_bytes(b"m")


def test_prune_and_list_at_a_folder(tmp_path):
    _fake_backups(tmp_path, NAMES[1:], ["hub-20260101T000000Z-dead", "hub-20260301T000000Z-beef"])
    (tmp_path / "notes.txt").write_text("not a backup")
    store = Store(str(tmp_path))
    assert [(b.name, b.complete, b.size) for b in store.backups()][:2] == [
        ("hub-20260101T000000Z-dead", False, 10), (NAMES[1], True, 11)]
    gone = prune(store, (1, 1, 0))
    # Kept: the newest (also the newest of its day and week); the incomplete one newer
    # than it may still be being written.
    assert gone == ["hub-20260101T000000Z-dead", *NAMES[1:5]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        NAMES[5], "hub-20260301T000000Z-beef", "notes.txt"]


def test_list_shows_what_retention_keeps(tmp_path):
    _fake_backups(tmp_path / "b", NAMES, ["hub-20260101T000000Z-dead"])
    listed = hub("backup", "list", "--from", str(tmp_path / "b"),
                 env={"HUB_HOME": str(tmp_path / "home"), "HUB_BACKUP_KEEP": "2/0/0"})
    assert listed.returncode == 0, listed.stderr
    states = {line.split()[0]: line.split()[-1] for line in listed.stdout.splitlines()[:-1]}
    assert states == {NAMES[0]: "prune", NAMES[1]: "prune", NAMES[2]: "prune",
                      NAMES[3]: "prune", NAMES[4]: "kept", NAMES[5]: "kept",
                      "hub-20260101T000000Z-dead": "incomplete"}
    assert listed.stdout.splitlines()[-1] == f"7 backup(s) at {tmp_path / 'b'}"
