"""Verify the audit ledger, in the database or in an export, and name the first break.

Each chain entry must link to the one before it and match the hash of its event; each
checkpoint must carry a valid Ed25519 signature and match the chain at the entry it
covers. A database superuser can bypass the append-only triggers, but not the signing key:
rewriting entries and recomputing their hashes still breaks the signed checkpoints.
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg.rows import dict_row

from hub.ledger import EVENT_COLUMNS, GENESIS, Checkpoint, canonical, entry_hash


@dataclass(frozen=True)
class Entry:
    seq: int
    event_id: int
    prev_hash: str
    hash: str
    event: dict[str, Any] | None  # None: the event row is gone


@dataclass(frozen=True)
class Problem:
    kind: str  # deleted, inserted, edited, broken, truncated, rewritten, forged, uncovered
    seq: int | None
    message: str


@dataclass
class Verification:
    entries: int = 0
    checkpoints: int = 0
    unsealed: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_entries(entries: Iterable[Entry], checkpoints: list[Checkpoint],
                   public_key: Ed25519PublicKey, *, first_seq: int = 1,
                   first_prev: str = GENESIS) -> Verification:
    """Walk the chain in seq order, then check every checkpoint against it."""
    result, heads = Verification(), {}
    expected, prev, before_prev = first_seq, first_prev, None
    for entry in entries:
        problem = _check_entry(entry, expected, prev, before_prev)
        if problem:
            result.problems.append(problem)
        heads[entry.seq] = entry.hash
        before_prev, prev, expected = prev, entry.hash, entry.seq + 1
        result.entries += 1
    last_seq = expected - 1
    for cp in checkpoints:
        problem = _check_checkpoint(cp, public_key, heads, last_seq)
        if problem:
            result.problems.append(problem)
        result.checkpoints += 1
    return result


def _check_entry(entry: Entry, expected: int, prev: str, before_prev: str | None) -> Problem | None:
    seq = entry.seq
    if seq != expected:
        return Problem("deleted", expected, f"entries seq {expected}..{seq - 1} are missing: "
                       "deleted from the chain")
    if entry.event is None:
        return Problem("deleted", seq, f"entry seq {seq}: event {entry.event_id} was deleted")
    if entry.prev_hash != prev:
        if entry.prev_hash == before_prev:
            return Problem("inserted", seq - 1, f"entry seq {seq - 1} was inserted: "
                           f"entry seq {seq} links past it")
        return Problem("broken", seq, f"entry seq {seq} does not link to the entry before it: "
                       "an entry was deleted, inserted or reordered there")
    if entry_hash(prev, entry.event) != entry.hash:
        return Problem("edited", seq, f"entry seq {seq} (event {entry.event_id}) does not match "
                       "its hash: edited, or swapped with another entry")
    return None


def _check_checkpoint(cp: Checkpoint, public_key: Ed25519PublicKey, heads: dict[int, str],
                      last_seq: int) -> Problem | None:
    try:
        public_key.verify(base64.b64decode(cp.signature), cp.payload())
    except (InvalidSignature, ValueError):
        return Problem("forged", cp.last_seq, f"checkpoint {cp.checkpoint_id} (seq {cp.last_seq})"
                       " has no valid signature from the ledger key: forged or altered")
    if cp.last_seq > last_seq:
        return Problem("truncated", last_seq + 1, f"checkpoint {cp.checkpoint_id} covers up to "
                       f"seq {cp.last_seq} but the chain ends at seq {last_seq}: "
                       f"entries {last_seq + 1}..{cp.last_seq} were removed")
    if cp.last_seq in heads and heads[cp.last_seq] != cp.head_hash:
        return Problem("rewritten", cp.last_seq, f"the chain at seq {cp.last_seq} differs from "
                       f"the head signed by checkpoint {cp.checkpoint_id}: entries up to seq "
                       f"{cp.last_seq} were rewritten")
    return None


# ---------- the database


def db_entries(conn: psycopg.Connection, first: int = 1,
                last: int | None = None) -> Iterator[Entry]:
    columns = ", ".join(f"e.{c}" for c in EVENT_COLUMNS)
    query = (f"select c.seq, c.event_id as chain_event_id, c.prev_hash, c.hash, {columns}"
             " from audit.chain c left join audit.events e on e.event_id = c.event_id"
             " where c.seq >= %s and c.seq <= %s order by c.seq")
    with conn.cursor(name="ledger_walk", row_factory=dict_row) as cur:  # server-side: flat memory
        cur.execute(query, [first, last if last is not None else 2**62])
        for row in cur:
            event = {c: row[c] for c in EVENT_COLUMNS} if row["event_id"] is not None else None
            yield Entry(row["seq"], row["chain_event_id"], row["prev_hash"], row["hash"], event)


def db_checkpoints(conn: psycopg.Connection) -> list[Checkpoint]:
    rows = conn.execute("select checkpoint_id, last_seq, head_hash, signed_at, key_id, signature"
                        " from audit.checkpoints order by checkpoint_id").fetchall()
    return [Checkpoint(*row) for row in rows]


# ---------- exports (JSON lines or CSV, each with the checkpoints that cover it)


def export(conn: psycopg.Connection, path: Path, since: datetime, until: datetime,
           fmt: str = "jsonl") -> int:
    """Write the sealed entries of [since, until), extended to the next checkpoint."""
    first, last = conn.execute(
        "select min(c.seq), max(c.seq) from audit.chain c join audit.events e using (event_id)"
        " where e.occurred_at >= %s and e.occurred_at < %s", [since, until]).fetchone()
    if first is None:
        raise ValueError(f"no sealed audit entries between {since} and {until}")
    cover = [cp for cp in db_checkpoints(conn) if cp.last_seq >= last]
    end = cover[0].last_seq if cover else last
    checkpoints = [cp for cp in db_checkpoints(conn) if first <= cp.last_seq <= end]
    entries = list(db_entries(conn, first, end))
    (write_jsonl if fmt == "jsonl" else _write_csv)(path, entries, checkpoints)
    return len(entries)


def _entry_record(entry: Entry) -> dict[str, Any]:
    return {"seq": entry.seq, "event_id": entry.event_id, "prev_hash": entry.prev_hash,
            "hash": entry.hash, "event": json.loads(canonical(entry.event))}


def _checkpoint_record(cp: Checkpoint) -> dict[str, Any]:
    return {"type": "checkpoint", **cp.__dict__}


def write_jsonl(path: Path, entries: list[Entry], checkpoints: list[Checkpoint]) -> None:
    with path.open("w") as out:
        for entry in entries:
            out.write(json.dumps({"type": "entry", **_entry_record(entry)}) + "\n")
        for cp in checkpoints:
            out.write(json.dumps(_checkpoint_record(cp)) + "\n")


def _write_csv(path: Path, entries: list[Entry], checkpoints: list[Checkpoint]) -> None:
    # One row per entry with the event's readable columns, plus `event_json`, the exact
    # content that was hashed, so the file can be verified as well as read.
    readable = [c for c in EVENT_COLUMNS if c not in ("filters", "detail")]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["seq", "prev_hash", "hash", *readable, "event_json"])
        for entry in entries:
            record = _entry_record(entry)
            writer.writerow([entry.seq, entry.prev_hash, entry.hash,
                             *(record["event"][c] for c in readable), json.dumps(record["event"])])
    with _checkpoints_path(path).open("w") as out:
        for cp in checkpoints:
            out.write(json.dumps(_checkpoint_record(cp)) + "\n")


def _checkpoints_path(path: Path) -> Path:
    return path.with_name(path.name + ".checkpoints.jsonl")


def verify_export(path: Path, public_pem: str) -> Verification:
    """Verify an export with nothing but the ledger's public key."""
    public_key = serialization.load_pem_public_key(public_pem.encode())
    entries, checkpoints = _read_export(path)
    if not entries:
        return Verification(problems=[Problem("uncovered", None, f"{path}: no entries")])
    result = verify_entries(entries, checkpoints, public_key, first_seq=entries[0].seq,
                            first_prev=entries[0].prev_hash)
    if not any(cp.last_seq >= entries[-1].seq for cp in checkpoints):
        result.problems.append(Problem("uncovered", entries[-1].seq, "no signed checkpoint "
                                       f"covers the last entry (seq {entries[-1].seq})"))
    return result


def _read_export(path: Path) -> tuple[list[Entry], list[Checkpoint]]:
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            entries = [Entry(int(r["seq"]), json.loads(r["event_json"])["event_id"],
                             r["prev_hash"], r["hash"], json.loads(r["event_json"]))
                       for r in csv.DictReader(handle)]
        lines = _checkpoints_path(path).read_text().splitlines()
    else:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        entries = [Entry(r["seq"], r["event_id"], r["prev_hash"], r["hash"], r["event"])
                   for r in records if r["type"] == "entry"]
        lines = [json.dumps(r) for r in records if r["type"] == "checkpoint"]
    checkpoints = []
    for line in lines:
        record = json.loads(line)
        record.pop("type")
        checkpoints.append(Checkpoint(**record))
    return entries, checkpoints
