"""The audit ledger: append-only by trigger and by privilege, and every kind of tampering
by someone who can bypass both (a database superuser) detected and located.

A pristine sealed ledger is built once; each test tampers with its own copy of it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub import ledger
from hub.audit import AuditEvent, record
from hub.bootstrap import bootstrap
from hub.ledger_verify import export, verify_export
from hub.retention import verify_database
from hub.warehouse import drop_database, ensure_database, with_database
from hub_cli.audit import format_verification
from tests.test_cli import hub

EVENTS = 30  # sealed in three batches of ten: checkpoints at seq 10, 20 and 30


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hub-home") / "keys"


@pytest.fixture(scope="module")
def pristine(server_url, keys_dir):
    name = f"hub_ledger_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    bootstrap(url)
    key = ledger.load_signing_key(keys_dir)
    with psycopg.connect(url) as conn:
        for i in range(1, EVENTS + 1):
            record(conn, AuditEvent(kind="data.read", request_id=f"r{i}", decision="allow",
                                    client_id=f"c{i % 3}", dataset="public_works.x",
                                    rows_returned=i, filters={"limit": i}))
            if i % 10 == 0:
                conn.commit()
                ledger.seal(conn, key)
    yield name
    drop_database(server_url, name)


@pytest.fixture
def copy(server_url, pristine):
    name = f"{pristine}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{pristine}"')
    yield with_database(server_url, name)
    drop_database(server_url, name)


def tamper(url: str, *statements: str) -> None:
    """Run statements with triggers off, as a superuser could."""
    with psycopg.connect(url) as conn:
        conn.execute("set session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


def verify(url: str, keys_dir):
    with psycopg.connect(url) as conn:
        return verify_database(conn, ledger.load_signing_key(keys_dir).public_key())


def first(result):
    return min(result.problems, key=lambda p: (p.seq is None, p.seq or 0))


def test_intact_ledger_verifies(copy, keys_dir):
    result = verify(copy, keys_dir)
    assert result.ok, result.problems
    assert (result.entries, result.checkpoints, result.unsealed) == (EVENTS, 3, 0)


@pytest.mark.parametrize("statement", [
    "update audit.events set rows_returned = 0 where event_id = 3",
    "delete from audit.events where event_id = 3",
    "truncate audit.events",
    "update audit.chain set hash = 'x' where seq = 3",
    "delete from audit.checkpoints",
])
def test_changes_are_refused_even_for_the_owner(copy, statement):
    with psycopg.connect(copy) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                      match="append-only"):
        conn.execute(statement)


@pytest.mark.parametrize("statement", [
    "update audit.events set rows_returned = 0 where event_id = 3",
    "delete from audit.events where event_id = 3",
])
def test_application_role_has_no_update_or_delete_privilege(copy, statement):
    with psycopg.connect(copy) as conn:
        conn.execute("set session_replication_role = replica")  # even with triggers off
        conn.execute("set role hub_app")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_application_role_can_append(copy):
    with psycopg.connect(copy) as conn:
        conn.execute("set role hub_app")
        record(conn, AuditEvent(kind="data.read", decision="allow"))


def test_edited_field_is_located(copy, keys_dir):
    tamper(copy, "update audit.events set rows_returned = 0 where event_id = 12")
    problem = first(verify(copy, keys_dir))
    assert (problem.kind, problem.seq) == ("edited", 12)


def test_deleted_event_is_located(copy, keys_dir):
    tamper(copy, "delete from audit.events where event_id = 7")
    problem = first(verify(copy, keys_dir))
    assert (problem.kind, problem.seq) == ("deleted", 7)


def test_deleted_entry_is_located(copy, keys_dir):
    tamper(copy, "delete from audit.events where event_id = 15",
           "delete from audit.chain where seq = 15")
    problem = first(verify(copy, keys_dir))
    assert (problem.kind, problem.seq) == ("deleted", 15)


def test_inserted_entry_is_located(copy, keys_dir):
    with psycopg.connect(copy) as conn:
        prev = conn.execute("select hash from audit.chain where seq = 9").fetchone()[0]
    forged = {c: None for c in ledger.EVENT_COLUMNS} | {
        "event_id": 1000, "occurred_at": datetime.now(UTC), "kind": "data.read",
        "columns": [], "unmasked_personal": [], "filters": {}, "rows_returned": 0,
        "reason": "", "detail": {}}
    tamper(copy,
           "update audit.chain set seq = seq + 1000000 where seq >= 10",
           "update audit.chain set seq = seq - 999999 where seq >= 1000000",
           "insert into audit.events (event_id, occurred_at, kind)"
           f" values (1000, '{forged['occurred_at'].isoformat()}', 'data.read')",
           f"insert into audit.chain values (10, 1000, '{prev}',"
           f" '{ledger.entry_hash(prev, forged)}')")
    problem = first(verify(copy, keys_dir))
    assert (problem.kind, problem.seq) == ("inserted", 10)


def test_swapped_entries_are_located(copy, keys_dir):
    tamper(copy, "update audit.chain set event_id = -5 where seq = 5",
           "update audit.chain set event_id = 5 where seq = 6",
           "update audit.chain set event_id = 6 where seq = 5")
    problem = first(verify(copy, keys_dir))
    assert (problem.kind, problem.seq) == ("edited", 5)


def test_truncated_tail_is_located(copy, keys_dir):
    tamper(copy, "delete from audit.chain where seq > 25",
           "delete from audit.events where event_id > 25")
    problem = first(verify(copy, keys_dir))
    assert (problem.kind, problem.seq) == ("truncated", 26)


def test_forged_checkpoint_is_located(copy, keys_dir):
    tamper(copy, "update audit.checkpoints set head_hash = repeat('f', 64) where last_seq = 20")
    problems = verify(copy, keys_dir).problems
    assert [(p.kind, p.seq) for p in problems] == [("forged", 20)]


def test_checkpoint_signed_with_another_key_is_forged(copy, keys_dir, tmp_path):
    other = ledger.sign(ledger.load_signing_key(tmp_path), 30, "f" * 64)
    tamper(copy, "insert into audit.checkpoints"
           " (last_seq, head_hash, signed_at, key_id, signature)"
           f" values (30, '{other.head_hash}', '{other.signed_at}', '{other.key_id}',"
           f" '{other.signature}')")
    assert [p.kind for p in verify(copy, keys_dir).problems] == ["forged"]


def test_rewrite_with_recomputed_hashes_is_caught_by_the_signed_checkpoint(copy, keys_dir):
    # The attacker edits event 12 and recomputes every later hash, without the signing key.
    tamper(copy, "update audit.events set rows_returned = 0 where event_id = 12")
    with psycopg.connect(copy) as conn:
        conn.execute("set session_replication_role = replica")
        prev = conn.execute("select hash from audit.chain where seq = 11").fetchone()[0]
        for seq in range(12, EVENTS + 1):
            event = _event(conn, seq)
            new = ledger.entry_hash(prev, event)
            conn.execute("update audit.chain set prev_hash = %s, hash = %s where seq = %s",
                         [prev, new, seq])
            prev = new
    problems = verify(copy, keys_dir).problems
    assert [(p.kind, p.seq) for p in problems] == [("rewritten", 20), ("rewritten", 30)]


def _event(conn: psycopg.Connection, seq: int) -> dict:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"select {', '.join(ledger.EVENT_COLUMNS)} from audit.events"
                           " where event_id = (select event_id from audit.chain where seq = %s)",
                           [seq]).fetchone()


# ---------- exports, verified with only the public key


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_verifies_with_only_the_public_key(copy, keys_dir, tmp_path, fmt):
    path = tmp_path / f"audit.{fmt}"
    with psycopg.connect(copy) as conn:
        count = export(conn, path, datetime.now(UTC) - timedelta(days=1),
                       datetime.now(UTC) + timedelta(days=1), fmt)
    assert count == EVENTS
    public = ledger.public_pem(ledger.load_signing_key(keys_dir))
    assert verify_export(path, public).ok


def test_edited_export_is_located(copy, keys_dir, tmp_path):
    path = tmp_path / "audit.jsonl"
    with psycopg.connect(copy) as conn:
        export(conn, path, datetime.now(UTC) - timedelta(days=1),
               datetime.now(UTC) + timedelta(days=1))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[3]["event"]["rows_returned"] = 0  # seq 4
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    result = verify_export(path, ledger.public_pem(ledger.load_signing_key(keys_dir)))
    assert (first(result).kind, first(result).seq) == ("edited", 4)


def test_export_of_an_empty_range_says_so(copy, tmp_path):
    with psycopg.connect(copy) as conn, pytest.raises(ValueError, match="no sealed audit"):
        export(conn, tmp_path / "x.jsonl", datetime(2000, 1, 1, tzinfo=UTC),
               datetime(2000, 1, 2, tzinfo=UTC))


def test_cli_verify_names_the_first_tampered_entry(copy, keys_dir):
    tamper(copy, "update audit.events set client_id = 'someone-else' where event_id = 17")
    env = {"HUB_DATABASE_URL": copy, "HUB_HOME": str(keys_dir.parent)}
    result = hub("audit", "verify", env=env)
    assert result.returncode == 1
    assert "TAMPERED: first at seq 17: entry seq 17 (event 17) does not match its hash" \
        in result.stdout
    assert hub("audit", "verify", "--export", "x.jsonl", env=env).returncode == 2


def test_verification_report_reads_clean_when_intact(copy, keys_dir):
    assert format_verification(verify(copy, keys_dir)).endswith("ledger intact")


# ---------- retention: archives keep the chain verifiable


def _archive_all(url: str, directory):
    from hub.retention import archive

    with psycopg.connect(url) as conn:
        return archive(conn, directory, datetime.now(UTC) + timedelta(days=1))


def _add_and_seal(url: str, keys_dir, n: int) -> None:
    with psycopg.connect(url) as conn:
        for i in range(n):
            record(conn, AuditEvent(kind="data.read", request_id=f"late{i}", decision="allow"))
        conn.commit()
        ledger.seal(conn, ledger.load_signing_key(keys_dir))


def test_archived_entries_leave_the_database_and_still_verify(copy, keys_dir, tmp_path):
    done = _archive_all(copy, tmp_path)
    assert (done.first_seq, done.last_seq) == (1, EVENTS)
    assert count_rows(copy, "audit.chain") == 0 and count_rows(copy, "audit.events") == 0
    _add_and_seal(copy, keys_dir, 5)
    with psycopg.connect(copy) as conn:
        result = verify_database(conn, ledger.load_signing_key(keys_dir).public_key(), tmp_path)
    assert result.ok, result.problems
    assert result.entries == 5  # the database part; the archive verified alongside


def test_tampered_archive_file_is_detected(copy, keys_dir, tmp_path):
    done = _archive_all(copy, tmp_path)
    path = tmp_path / done.file_name
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[9]["event"]["client_id"] = "nobody"  # seq 10
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with psycopg.connect(copy) as conn:
        problems = verify_database(conn, ledger.load_signing_key(keys_dir).public_key(),
                                   tmp_path).problems
    assert ("edited", 10) in [(p.kind, p.seq) for p in problems]


def test_missing_archive_file_is_detected(copy, keys_dir, tmp_path):
    done = _archive_all(copy, tmp_path)
    (tmp_path / done.file_name).unlink()
    with psycopg.connect(copy) as conn:
        problems = verify_database(conn, ledger.load_signing_key(keys_dir).public_key(),
                                   tmp_path).problems
    assert [p.kind for p in problems] == ["deleted"] and "is missing" in problems[0].message


def test_only_archived_rows_may_be_deleted_even_while_archiving(copy):
    with psycopg.connect(copy) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                      match="append-only"):
        conn.execute("set local hub.audit_archiving = 'on'")
        conn.execute("delete from audit.events where event_id = 3")


def test_nothing_to_archive_before_the_first_checkpoint(copy, tmp_path):
    from hub.retention import archive

    with psycopg.connect(copy) as conn:
        assert archive(conn, tmp_path, datetime(2000, 1, 1, tzinfo=UTC)) is None


def count_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


def test_a_late_commit_is_chained_by_a_pass_that_looks_back_far_enough(copy, keys_dir):
    key = ledger.load_signing_key(keys_dir)
    late = psycopg.connect(copy)
    record(late, AuditEvent(kind="data.read", request_id="late", decision="allow"))  # open
    with psycopg.connect(copy) as conn:
        for i in range(3):
            record(conn, AuditEvent(kind="data.read", request_id=f"on-time{i}"))
        conn.commit()
        assert ledger.seal(conn, key) == 3  # the open transaction's lower id is not visible
    late.commit()
    late.close()
    with psycopg.connect(copy) as conn:
        assert ledger.seal(conn, key, window=0) == 0  # a pass that does not look back...
        assert ledger.seal(conn, key) == 1  # ...and one within the late-commit window
        result = verify_database(conn, key.public_key())
    assert result.ok and result.unsealed == 0
