"""The tamper-evident audit ledger: hash chain, signed checkpoints, sealing.

Writers only INSERT into `audit.events`. The sealer, one at a time (advisory lock), takes
the unsealed events, appends each to `audit.chain` with sha256(previous hash || canonical
JSON of the event), then signs a checkpoint over the new head with the hub's Ed25519 key.
Anyone holding only the public key can check a checkpoint, and through it every entry
before it (see hub/ledger_verify.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from psycopg.rows import dict_row

from hub.keyfiles import read_or_create

GENESIS = "0" * 64
# Events can commit out of id order (a transaction keeps its early id until it ends): each
# seal also looks this far below the highest sealed id for late commits, instead of
# scanning the whole table. The background sealer's routine passes look less far
# (hub/sealer.py), with a pass this wide now and then.
LATE_COMMIT_WINDOW = 100_000
EVENT_COLUMNS = (
    "event_id", "occurred_at", "kind", "request_id", "client_id", "role", "department",
    "purpose", "dataset", "dataset_version", "columns", "unmasked_personal", "filters",
    "rows_returned", "decision", "reason", "grant_id", "source_address", "status_code", "detail",
)


@dataclass(frozen=True)
class Checkpoint:
    checkpoint_id: int | None
    last_seq: int
    head_hash: str
    signed_at: str
    key_id: str
    signature: str

    def payload(self) -> bytes:
        """The signed bytes: everything but the signature and the row id."""
        return canonical({"last_seq": self.last_seq, "head_hash": self.head_hash,
                          "signed_at": self.signed_at, "key_id": self.key_id})

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Checkpoint:
        """A checkpoint as exports and the transparency report write it; other keys (the
        record type, the key fingerprint) are ignored. KeyError/ValueError if malformed."""
        last_seq = record["last_seq"]
        if not isinstance(last_seq, int) or isinstance(last_seq, bool):
            raise ValueError(f"last_seq must be a whole number, not {last_seq!r}")
        return cls(record.get("checkpoint_id"), last_seq, str(record["head_hash"]),
                   str(record["signed_at"]), str(record["key_id"]), str(record["signature"]))

    def public_record(self) -> dict[str, Any]:
        """What leaves the database (exports, the transparency report): all but the row id."""
        return {"last_seq": self.last_seq, "head_hash": self.head_hash,
                "signed_at": self.signed_at, "key_id": self.key_id, "signature": self.signature}


# ---------- hashing


def canonical(value: Any) -> bytes:
    """Stable JSON: sorted keys, no spaces, timestamps in UTC ISO form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"not canonical: {type(value).__name__}")


def entry_hash(prev_hash: str, event: dict[str, Any]) -> str:
    content = {k: event[k] for k in EVENT_COLUMNS}
    return hashlib.sha256(prev_hash.encode() + canonical(content)).hexdigest()


# ---------- keys


def load_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The ledger's Ed25519 key, created on first use (0600) under HUB_HOME/keys."""
    def make() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())

    pem = read_or_create(keys_dir / "audit-ed25519.pem", make)
    return serialization.load_pem_private_key(pem, password=None)


def public_pem(key: Ed25519PrivateKey) -> str:
    return public_pem_of(key.public_key())


def public_pem_of(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(public: Ed25519PublicKey) -> str:
    return fingerprint(public)[:16]


def fingerprint(public: Ed25519PublicKey) -> str:
    """sha256 of the raw public key: published beside checkpoints, so a verifier can tell
    that the key it was handed is the one the hub signs with."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(key: Ed25519PrivateKey, last_seq: int, head_hash: str) -> Checkpoint:
    unsigned = Checkpoint(None, last_seq, head_hash, datetime.now(UTC).isoformat(),
                          key_id(key.public_key()), "")
    signature = base64.b64encode(key.sign(unsigned.payload())).decode()
    return Checkpoint(None, last_seq, head_hash, unsigned.signed_at, unsigned.key_id, signature)


# ---------- sealing


def seal(conn: psycopg.Connection, key: Ed25519PrivateKey, limit: int = 50_000,
         window: int = LATE_COMMIT_WINDOW) -> int:
    """Chain the unsealed events and sign a checkpoint over them; return how many."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('civic-data-hub audit sealer'))")
        seq, head = _head(conn)
        events = _unsealed(conn, limit, window)
        entries = []
        for event in events:
            prev, seq = head, seq + 1
            head = entry_hash(prev, event)
            entries.append((seq, event["event_id"], prev, head))
        # One COPY for the batch: under load the sealer chains hundreds of events a second,
        # and a statement per entry cost the API measurable throughput (bench/api.py).
        with conn.cursor().copy("copy audit.chain (seq, event_id, prev_hash, hash)"
                                " from stdin") as copy:
            for entry in entries:
                copy.write_row(entry)
        if events:
            _store_checkpoint(conn, sign(key, seq, head))
    return len(events)


def _head(conn: psycopg.Connection) -> tuple[int, str]:
    """The last entry: in the chain table, or, when all were archived, in the newest archive."""
    row = conn.execute("select seq, hash from audit.chain order by seq desc limit 1").fetchone()
    row = row or conn.execute("select last_seq, head_hash from audit.archives"
                              " order by last_seq desc limit 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def _unsealed(conn: psycopg.Connection, limit: int, window: int) -> list[dict[str, Any]]:
    """Events not chained yet: late commits within `window` below the highest chained id,
    then the new ones above it. Every range is bounded on both sides, so each query walks
    an index slice: the planner's statistics of a table growing this fast lag behind, and
    an open range led it to hash the whole chain on every pass."""
    top = conn.execute("select coalesce(max(event_id), 0) from audit.chain").fetchone()[0]
    low, columns = max(top - window, 0), ", ".join(EVENT_COLUMNS)
    with conn.cursor(row_factory=dict_row) as cur:
        late = cur.execute(
            f"select {columns} from audit.events e where e.event_id > %(low)s"
            " and e.event_id <= %(top)s and not exists (select 1 from audit.chain c"
            "   where c.event_id = e.event_id and c.event_id > %(low)s"
            "   and c.event_id <= %(top)s)"
            " order by e.event_id limit %(limit)s",
            {"low": low, "top": top, "limit": limit}).fetchall()
        new = cur.execute(
            f"select {columns} from audit.events where event_id > %s"
            " order by event_id limit %s", [top, limit - len(late)]).fetchall()
    return late + new


def _store_checkpoint(conn: psycopg.Connection, cp: Checkpoint) -> None:
    conn.execute("insert into audit.checkpoints"
                 " (last_seq, head_hash, signed_at, key_id, signature)"
                 " values (%s, %s, %s, %s, %s)",
                 [cp.last_seq, cp.head_hash, cp.signed_at, cp.key_id, cp.signature])
