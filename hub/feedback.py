"""Residents' feedback on datasets: posted without an account, answered by the owning
department, the answers public with their response time (docs/open-catalog.md).

A contact email is optional and kept only as HMAC-SHA256 under a key of the hub's own
(HUB_HOME/keys/feedback.key): equal addresses give equal hashes, so a department can tell a
returning correspondent apart, but nobody, the hub's operators included, can read the
address back from the table, and no query here ever selects the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from hub.keyfiles import read_or_create

KINDS = ("wrong", "publish", "matters", "other")  # this looks wrong, please publish X...
# What a department sees of an item: never contact_hmac.
QUEUE_COLUMNS = ("feedback_id, dataset, kind, about, message, posted_at, answer, answered_by,"
                 " answered_at, message_public, contact_hmac is not null as has_contact")
# Hours between post and answer, as the public and the transparency report see it.
HOURS = "extract(epoch from answered_at - posted_at) / 3600.0"


class FeedbackError(LookupError):
    """The item is not there, not the department's, or answered already: the message says."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NewFeedback:
    dataset: str
    department: str
    kind: str
    message: str
    about: str | None = None
    contact_hmac: bytes | None = None


def load_key(keys_dir: Path) -> bytes:
    """The feedback key, made on first use and kept beside the hub's other keys."""
    return read_or_create(keys_dir / "feedback.key", lambda: os.urandom(32))


def contact_hash(key: bytes, email: str) -> bytes:
    # Case and surrounding spaces do not make another address.
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).digest()


def post(conn: psycopg.Connection, item: NewFeedback) -> dict[str, Any]:
    """Store one item; its id and time."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "insert into hub.feedback (dataset, department, kind, about, message, contact_hmac)"
            " values (%s, %s, %s, %s, %s, %s) returning feedback_id, posted_at",
            [item.dataset, item.department, item.kind, item.about, item.message,
             item.contact_hmac]).fetchone()


def queue(conn: psycopg.Connection, department: str, answered: bool = False,
          limit: int = 200) -> list[dict[str, Any]]:
    """The department's items, oldest waiting first (with `answered`: newest answers)."""
    order = "answered_at desc" if answered else "posted_at"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"select {QUEUE_COLUMNS} from hub.feedback where department = %s"
            f" and (answered_at is not null) = %s order by {order} limit %s",
            [department, answered, limit]).fetchall()


def answer(conn: psycopg.Connection, feedback_id: int, department: str, text: str, by: str,
           message_public: bool) -> dict[str, Any]:
    """Answer an item of the department's, once; raise FeedbackError otherwise."""
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("select department, answered_at from hub.feedback"
                            " where feedback_id = %s for update", [feedback_id]).fetchone()
        if found is None:
            raise FeedbackError(404, f"no feedback {feedback_id}")
        if found["department"] != department:
            raise FeedbackError(403, f"feedback {feedback_id} is for {found['department']}:"
                                " only that department answers it")
        if found["answered_at"] is not None:
            raise FeedbackError(409, f"feedback {feedback_id} was answered at "
                                f"{found['answered_at']:%Y-%m-%d %H:%M} UTC already")
        return cur.execute(
            "update hub.feedback set answer = %s, answered_by = %s, answered_at = now(),"
            " message_public = %s where feedback_id = %s"
            f" returning {QUEUE_COLUMNS}", [text, by, message_public, feedback_id]).fetchone()


def public_answers(conn: psycopg.Connection, dataset: str | None,
                   limit: int = 200) -> list[dict[str, Any]]:
    """Answered items, newest first: the resident's words only where the department chose
    to show them (they may name a street or a person)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select feedback_id, dataset, department, kind,"
            " case when message_public then about end as about,"
            " case when message_public then message end as message,"
            f" posted_at, answer, answered_at, round(({HOURS})::numeric, 1)::float"
            " as response_hours from hub.feedback where answered_at is not null"
            " and (%(d)s::text is null or dataset = %(d)s)"
            " order by answered_at desc limit %(n)s", {"d": dataset, "n": limit}).fetchall()


def per_department(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """For the transparency report: items received and answered, and the median time to
    answer, per department."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select department, count(*) as received, count(answered_at) as answered,"
            f" round((percentile_cont(0.5) within group (order by {HOURS}))::numeric, 1)::float"
            " as median_hours_to_answer from hub.feedback group by department"
            " order by department").fetchall()
