"""Verify the audit ledger, in the database or in an export, and name the first break.

Each chain entry must link to the one before it and match the hash of its event; each
checkpoint must carry a valid Ed25519 signature and match the chain at the entry it
covers. A database superuser can bypass the append-only triggers, but not the signing key:
rewriting entries and recomputing their hashes still breaks the signed checkpoints.

Erasing the tail together with its checkpoints leaves a shorter ledger that is consistent
in itself. Only a checkpoint seen outside the database (an export, the transparency
report) shows that: given one as `known`, verification refuses a ledger that no longer
reaches it, differs from it, or lacks it (docs/audit-guarantees.md).
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    last_seq: int = 0  # where the walked chain ends
    # The entry hashes at the checkpoints' seqs (and any asked for): only those, so a walk
    # over millions of entries keeps flat memory.
    heads: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_entries(entries: Iterable[Entry], checkpoints: list[Checkpoint],
                   public_key: Ed25519PublicKey, *, first_seq: int = 1,
                   first_prev: str = GENESIS, watch: Iterable[int] = ()) -> Verification:
    """Walk the chain in seq order, then check every checkpoint against it. The hashes at
    the `watch` seqs are kept in `heads` too, for a known checkpoint (`check_known`)."""
    result, heads = Verification(), {}
    watched = {cp.last_seq for cp in checkpoints} | set(watch)
    expected, prev, before_prev = first_seq, first_prev, None
    for entry in entries:
        problem = _check_entry(entry, expected, prev, before_prev)
        if problem:
            result.problems.append(problem)
        if entry.seq in watched:
            heads[entry.seq] = entry.hash
        before_prev, prev, expected = prev, entry.hash, entry.seq + 1
        result.entries += 1
    result.last_seq, result.heads = expected - 1, heads
    for cp in checkpoints:
        problem = _check_checkpoint(cp, public_key, heads, result.last_seq)
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


def signed(cp: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    """Whether the ledger key signed this checkpoint as it stands."""
    try:
        public_key.verify(base64.b64decode(cp.signature), cp.payload())
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_checkpoint(cp: Checkpoint, public_key: Ed25519PublicKey, heads: dict[int, str],
                      last_seq: int) -> Problem | None:
    if not signed(cp, public_key):
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


def check_known(known: Checkpoint, public_key: Ed25519PublicKey, *, end: int,
                heads: Mapping[int, str], recorded: Sequence[Checkpoint],
                holds: range) -> list[Problem]:
    """A checkpoint seen outside the ledger, against the ledger as it is now: the ledger
    must reach it (`end`: its last seq), agree with it (`heads`, or a checkpoint `recorded`
    at the same seq), and, where it keeps every checkpoint (`holds`: seqs), still hold it.
    The classic attack on a hash chain, erasing the tail with its checkpoints, leaves a
    ledger that is consistent in itself: only such an outside checkpoint reveals it."""
    seen = f"checkpoint (seq {known.last_seq}, signed {known.signed_at})"
    if not signed(known, public_key):
        return [Problem("forged", known.last_seq, f"the {seen} given has no valid signature "
                        "from the ledger key: altered, or from another ledger")]
    if known.last_seq > end:
        return [Problem("truncated", end + 1, f"ledger ends at seq {end} but {seen} was seen: "
                        f"entries {end + 1}..{known.last_seq} or more are missing")]
    problems, same_seq = [], [cp for cp in recorded if cp.last_seq == known.last_seq]
    head = heads.get(known.last_seq, same_seq[0].head_hash if same_seq else None)
    if head is not None and head != known.head_hash:
        problems.append(Problem("rewritten", known.last_seq, f"the ledger at seq "
                                f"{known.last_seq} differs from the head of the {seen}: entries "
                                f"up to seq {known.last_seq} were rewritten, or removed and "
                                "replaced"))
    if known.last_seq in holds and not any(_same(cp, known) for cp in same_seq):
        problems.append(Problem("deleted", known.last_seq, f"the {seen} was seen but the ledger "
                                "no longer holds it: checkpoints were deleted"))
    return problems


def _same(a: Checkpoint, b: Checkpoint) -> bool:
    return a.payload() == b.payload() and a.signature == b.signature


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
    """Write the sealed entries of [since, until), extended to the next checkpoint, with
    the checkpoints among them and the ledger's latest one: every export carries the head
    of the whole ledger out of the database, to check a later ledger against."""
    # Taken before the checkpoints are read, so that every checkpoint signed before this
    # moment is in the file (but one whose sealing transaction is still committing).
    exported_at = datetime.now(UTC)
    first, last = conn.execute(
        "select min(c.seq), max(c.seq) from audit.chain c join audit.events e using (event_id)"
        " where e.occurred_at >= %s and e.occurred_at < %s", [since, until]).fetchone()
    if first is None:
        raise ValueError(f"no sealed audit entries between {since} and {until}")
    recorded = db_checkpoints(conn)
    cover = [cp for cp in recorded if cp.last_seq >= last]
    end = cover[0].last_seq if cover else last
    checkpoints = [cp for cp in recorded if first <= cp.last_seq <= end]
    latest = max(recorded, key=lambda cp: cp.last_seq, default=None)
    checkpoints += [latest] if latest and latest.last_seq > end else []
    entries = list(db_entries(conn, first, end))
    (write_jsonl if fmt == "jsonl" else _write_csv)(path, entries, checkpoints, exported_at)
    return len(entries)


def _entry_record(entry: Entry) -> dict[str, Any]:
    return {"seq": entry.seq, "event_id": entry.event_id, "prev_hash": entry.prev_hash,
            "hash": entry.hash, "event": json.loads(canonical(entry.event))}


def _trailer(checkpoints: list[Checkpoint], exported_at: datetime | None) -> Iterator[str]:
    """The checkpoint lines, then when the export was written (archives leave that out)."""
    for cp in checkpoints:
        yield json.dumps({"type": "checkpoint", **cp.__dict__})
    if exported_at is not None:
        yield json.dumps({"type": "exported", "at": exported_at.isoformat()})


def write_jsonl(path: Path, entries: list[Entry], checkpoints: list[Checkpoint],
                exported_at: datetime | None = None) -> None:
    with path.open("w") as out:
        for entry in entries:
            out.write(json.dumps({"type": "entry", **_entry_record(entry)}) + "\n")
        for line in _trailer(checkpoints, exported_at):
            out.write(line + "\n")


def _write_csv(path: Path, entries: list[Entry], checkpoints: list[Checkpoint],
               exported_at: datetime | None = None) -> None:
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
        for line in _trailer(checkpoints, exported_at):
            out.write(line + "\n")


def _checkpoints_path(path: Path) -> Path:
    return path.with_name(path.name + ".checkpoints.jsonl")


def verify_export(path: Path, public_pem: str, known: Checkpoint | None = None) -> Verification:
    """Verify an export with nothing but the ledger's public key, and, given a checkpoint
    seen before the export was written, that the ledger it came from still reached it.
    ValueError if `known` is newer than the export: it cannot tell anything then."""
    public_key = serialization.load_pem_public_key(public_pem.encode())
    entries, checkpoints, exported_at = _read_export(path)
    if not entries:
        return Verification(problems=[Problem("uncovered", None, f"{path}: no entries")])
    last = entries[-1].seq
    inside = [cp for cp in checkpoints if cp.last_seq <= last]
    result = verify_entries(entries, inside, public_key, first_seq=entries[0].seq,
                            first_prev=entries[0].prev_hash,
                            watch=[known.last_seq] if known else [])
    # Checkpoints past the last entry (the ledger's latest at export time) cover no entry
    # here: their signatures are all there is to check.
    later = [cp for cp in checkpoints if cp.last_seq > last]
    result.problems += [_unsigned(cp) for cp in later if not signed(cp, public_key)]
    result.checkpoints += len(later)
    # Every writer ends a file at a checkpoint: a last entry without one was cut short.
    if not any(cp.last_seq == last for cp in inside):
        result.problems.append(Problem("uncovered", last, "no signed checkpoint ends at the "
                                       f"last entry (seq {last}): entries after it are missing"))
    if known:
        _known_before(known, exported_at, path)
        result.problems += check_known(
            known, public_key, end=max([last, *(cp.last_seq for cp in later)]),
            heads=result.heads, recorded=checkpoints, holds=range(entries[0].seq, last + 1))
    return result


def _unsigned(cp: Checkpoint) -> Problem:
    return Problem("forged", cp.last_seq, f"checkpoint {cp.checkpoint_id} (seq {cp.last_seq})"
                   " has no valid signature from the ledger key: forged or altered")


def _known_before(known: Checkpoint, exported_at: datetime | None, path: Path) -> None:
    try:
        signed_at = datetime.fromisoformat(known.signed_at)
    except ValueError:
        raise ValueError(f"the checkpoint's signed_at {known.signed_at!r} is not an ISO "
                         "time: give a checkpoint as exports or /transparency/report write it"
                         ) from None
    signed_at = signed_at if signed_at.tzinfo else signed_at.replace(tzinfo=UTC)
    if exported_at is not None and signed_at > exported_at:
        raise ValueError(f"the checkpoint (seq {known.last_seq}, signed {known.signed_at}) is "
                         f"newer than {path} (exported {exported_at.isoformat()}): give a "
                         "checkpoint seen before the export was written")


def _read_export(path: Path) -> tuple[list[Entry], list[Checkpoint], datetime | None]:
    """Entries, checkpoints and the export time (None in archives and older exports)."""
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            entries = [Entry(int(r["seq"]), json.loads(r["event_json"])["event_id"],
                             r["prev_hash"], r["hash"], json.loads(r["event_json"]))
                       for r in csv.DictReader(handle)]
        records = [json.loads(line) for line in _checkpoints_path(path).read_text().splitlines()]
    else:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        entries = [Entry(r["seq"], r["event_id"], r["prev_hash"], r["hash"], r["event"])
                   for r in records if r["type"] == "entry"]
    checkpoints = [Checkpoint.from_record(r) for r in records if r["type"] == "checkpoint"]
    exported = [datetime.fromisoformat(r["at"]) for r in records if r["type"] == "exported"]
    return entries, checkpoints, exported[-1] if exported else None


# ---------- a checkpoint seen earlier, saved to a file


def read_checkpoint_file(path: Path) -> Checkpoint:
    """The newest checkpoint in a file: an export (JSON lines, or a CSV export with its
    .checkpoints.jsonl beside it), a saved /transparency/report, or one checkpoint as JSON.
    ValueError saying what was expected if the file holds none."""
    source = _checkpoints_path(path) if path.suffix == ".csv" else path
    try:
        found = [Checkpoint.from_record(r) for r in _checkpoint_records(source.read_text())]
    except OSError as exc:
        raise ValueError(f"cannot read {source}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{source}: a checkpoint there is malformed ({exc!s}): give a file "
                         "written by `hub audit export` or saved from /transparency/report"
                         ) from None
    if not found:
        raise ValueError(f"{source} holds no ledger checkpoint: give a file written by "
                         "`hub audit export` or saved from /transparency/report")
    return max(found, key=lambda cp: cp.last_seq)


def _checkpoint_records(text: str) -> Iterator[dict[str, Any]]:
    try:  # one JSON document: a transparency report or a checkpoint
        records = [json.loads(text)]
    except json.JSONDecodeError:  # JSON lines: an export
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        # A transparency report carries its checkpoint under `ledger_checkpoint`.
        found = record.get("ledger_checkpoint", record) if isinstance(record, dict) else None
        if isinstance(found, dict) and found.get("type", "checkpoint") == "checkpoint" \
                and "last_seq" in found:
            yield found
