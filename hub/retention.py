"""Retention: move audit entries older than the retention period into archive files.

An archive is an export (hub/ledger_verify.py format) ending at a signed checkpoint; its
record in `audit.archives` keeps the file's sha256 and the hashes at both ends, so the
chain still verifies from the first archived entry to the newest one in the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.ledger import GENESIS, Checkpoint, public_pem_of
from hub.ledger_verify import (
    Problem,
    Verification,
    check_known,
    db_checkpoints,
    db_entries,
    verify_entries,
    verify_export,
    write_jsonl,
)


@dataclass(frozen=True)
class Archive:
    first_seq: int
    last_seq: int
    first_prev: str
    head_hash: str
    file_name: str
    file_sha256: str


def archive(conn: psycopg.Connection, directory: Path, before: datetime) -> Archive | None:
    """Archive the oldest entries up to the last checkpoint wholly before `before`."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('civic-data-hub audit sealer'))")
        first = conn.execute("select min(seq) from audit.chain").fetchone()[0]
        last = _last_archivable(conn, before)
        if first is None or last is None or last < first:
            return None
        entries = list(db_entries(conn, first, last))
        checkpoints = [cp for cp in db_checkpoints(conn) if first <= cp.last_seq <= last]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"audit-{first:012d}-{last:012d}.jsonl"
        write_jsonl(path, entries, checkpoints)
        record = Archive(first, last, entries[0].prev_hash, entries[-1].hash, path.name,
                         hashlib.sha256(path.read_bytes()).hexdigest())
        _store(conn, record)
        conn.execute("set local hub.audit_archiving = 'on'")
        conn.execute("delete from audit.events where event_id in (select event_id from"
                     " audit.chain where seq between %s and %s)", [first, last])
        conn.execute("delete from audit.chain where seq between %s and %s", [first, last])
    return record


def _last_archivable(conn: psycopg.Connection, before: datetime) -> int | None:
    # The newest checkpoint whose entries all happened before the cut-off.
    return conn.execute(
        "select max(cp.last_seq) from audit.checkpoints cp where not exists ("
        " select 1 from audit.chain c join audit.events e using (event_id)"
        " where c.seq <= cp.last_seq and e.occurred_at >= %s)", [before]).fetchone()[0]


def _store(conn: psycopg.Connection, a: Archive) -> None:
    conn.execute("insert into audit.archives (first_seq, last_seq, first_prev, head_hash,"
                 " file_name, file_sha256) values (%s, %s, %s, %s, %s, %s)",
                 [a.first_seq, a.last_seq, a.first_prev, a.head_hash, a.file_name, a.file_sha256])


def archives(conn: psycopg.Connection) -> list[Archive]:
    rows = conn.execute("select first_seq, last_seq, first_prev, head_hash, file_name,"
                        " file_sha256 from audit.archives order by first_seq").fetchall()
    return [Archive(*row) for row in rows]


def chain_start(conn: psycopg.Connection) -> tuple[int, str]:
    """Where the database part of the chain starts: after the newest archive, if any."""
    found = archives(conn)
    return (found[-1].last_seq + 1, found[-1].head_hash) if found else (1, GENESIS)


def verify_archives(conn: psycopg.Connection, directory: Path,
                    public_key: Ed25519PublicKey) -> list[Problem]:
    """Each archive file intact, verified on its own, and linked to its neighbours."""
    problems: list[Problem] = []
    expected_seq, expected_prev = 1, GENESIS
    for a in archives(conn):
        if (a.first_seq, a.first_prev) != (expected_seq, expected_prev):
            problems.append(Problem("broken", a.first_seq, f"archive {a.file_name} does not "
                                    "continue the chain where the previous one ended"))
        problems += _verify_file(directory / a.file_name, a, public_key)
        expected_seq, expected_prev = a.last_seq + 1, a.head_hash
    return problems


def _verify_file(path: Path, a: Archive, public_key: Ed25519PublicKey) -> list[Problem]:
    if not path.exists():
        return [Problem("deleted", a.first_seq, f"archive file {path} is missing "
                        f"(entries {a.first_seq}..{a.last_seq})")]
    result = verify_export(path, public_pem_of(public_key))
    if hashlib.sha256(path.read_bytes()).hexdigest() != a.file_sha256:
        result.problems.append(Problem("edited", a.first_seq, f"archive file {path} differs "
                                       "from the one recorded when it was written"))
    return result.problems


def verify_database(conn: psycopg.Connection, public_key: Ed25519PublicKey,
                    archive_dir: Path | None = None,
                    known: Checkpoint | None = None) -> Verification:
    """The database chain (from where archives end) and, given their folder, the archives;
    given a checkpoint seen earlier outside the database, that the ledger still holds it."""
    first_seq, first_prev = chain_start(conn)
    recorded = db_checkpoints(conn)
    checkpoints = [cp for cp in recorded if cp.last_seq >= first_seq]
    result = verify_entries(db_entries(conn, first_seq), checkpoints, public_key,
                            first_seq=first_seq, first_prev=first_prev,
                            watch=[known.last_seq] if known else [])
    if archive_dir is not None:
        result.problems[:0] = verify_archives(conn, archive_dir, public_key)
    if known is not None:
        # Archiving keeps every checkpoint row, and each archive the hash it ends at.
        heads = {a.last_seq: a.head_hash for a in archives(conn)} | result.heads
        result.problems += check_known(known, public_key, end=result.last_seq, heads=heads,
                                       recorded=recorded, holds=range(1, result.last_seq + 1))
    result.unsealed = conn.execute(
        "select count(*) from audit.events e where not exists"
        " (select 1 from audit.chain c where c.event_id = e.event_id)").fetchone()[0]
    return result
