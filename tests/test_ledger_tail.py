"""The ledger's tail: erasing the newest entries together with the checkpoints that cover
them leaves a ledger consistent in itself; a checkpoint seen outside the database (an
export, the transparency report) reveals it and says which entries are gone.

A sealed ledger is built once; each test tampers with its own copy, as a superuser could.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub import ledger
from hub.audit import AuditEvent, record
from hub.bootstrap import bootstrap
from hub.ledger_verify import export, read_checkpoint_file, verify_export
from hub.retention import archive, verify_database
from hub.warehouse import drop_database, ensure_database, with_database
from tests.test_cli import hub
from tests.test_ledger import first, tamper

EVENTS = 30  # sealed in three batches of ten: checkpoints at seq 10, 20 and 30
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return tmp_path_factory.mktemp("hub-home") / "keys"


@pytest.fixture(scope="module")
def sealed(server_url, keys):
    name = f"hub_tail_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    bootstrap(url)
    with psycopg.connect(url) as conn:
        for i in range(1, EVENTS + 1):
            record(conn, AuditEvent(kind="data.read", request_id=f"r{i}", decision="allow",
                                    client_id=f"c{i % 3}", dataset="public_works.x",
                                    rows_returned=i, filters={"limit": i}))
            if i % 10 == 0:
                conn.commit()
                ledger.seal(conn, ledger.load_signing_key(keys))
    yield name
    drop_database(server_url, name)


@pytest.fixture
def copy(server_url, sealed):
    name = f"{sealed}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{sealed}"')
    yield with_database(server_url, name)
    drop_database(server_url, name)


def public_key(keys):
    return ledger.load_signing_key(keys).public_key()


def verify(url: str, keys, known=None, archive_dir=None):
    with psycopg.connect(url) as conn:
        return verify_database(conn, public_key(keys), archive_dir, known)


def export_all(url: str, path, fmt: str = "jsonl"):
    with psycopg.connect(url) as conn:
        export(conn, path, datetime.now(UTC) - DAY, datetime.now(UTC) + DAY, fmt)
    return path


def erase_tail(url: str, keep: int) -> None:
    """The classic attack: the entries after `keep`, their events and their checkpoints."""
    tamper(url, f"delete from audit.events where event_id in"
                f" (select event_id from audit.chain where seq > {keep})",
           f"delete from audit.chain where seq > {keep}",
           f"delete from audit.checkpoints where last_seq > {keep}")


def add_and_seal(url: str, keys, n: int) -> None:
    with psycopg.connect(url) as conn:
        for i in range(n):
            record(conn, AuditEvent(kind="data.read", request_id=f"later{i}", decision="allow"))
        conn.commit()
        ledger.seal(conn, ledger.load_signing_key(keys))


# ---------- the database against a checkpoint seen earlier


@pytest.mark.parametrize("erased", [1, 10, 15])
def test_erased_tail_is_found_by_an_earlier_exported_checkpoint(copy, keys, tmp_path, erased):
    known = read_checkpoint_file(export_all(copy, tmp_path / "before.jsonl"))
    keep = EVENTS - erased
    erase_tail(copy, keep)
    assert verify(copy, keys).ok  # on its own, the shortened ledger is consistent
    problem = first(verify(copy, keys, known))
    assert (problem.kind, problem.seq) == ("truncated", keep + 1)
    assert problem.message == (
        f"ledger ends at seq {keep} but checkpoint (seq {EVENTS}, signed {known.signed_at})"
        f" was seen: entries {keep + 1}..{EVENTS} or more are missing")


def test_intact_ledger_verifies_against_its_own_checkpoints(copy, keys, tmp_path):
    known = read_checkpoint_file(export_all(copy, tmp_path / "x.jsonl"))
    add_and_seal(copy, keys, 3)  # the ledger grew since: fine
    assert known.last_seq == EVENTS and verify(copy, keys, known).ok
    with psycopg.connect(copy) as conn:  # a checkpoint mid-chain, too
        middle = [cp for cp in ledger_checkpoints(conn) if cp.last_seq == 20][0]
    assert verify(copy, keys, middle).ok


def ledger_checkpoints(conn):
    from hub.ledger_verify import db_checkpoints

    return db_checkpoints(conn)


def test_erased_tail_refilled_by_later_seals_is_found(copy, keys, tmp_path):
    known = read_checkpoint_file(export_all(copy, tmp_path / "before.jsonl"))
    erase_tail(copy, 20)
    add_and_seal(copy, keys, 15)  # the sealer goes on: seq 21..35 are new entries
    result = verify(copy, keys, known)
    assert [(p.kind, p.seq) for p in result.problems] == [("rewritten", 30), ("deleted", 30)]
    assert "was seen but the ledger no longer holds it" in result.problems[1].message


def test_deleted_checkpoint_alone_is_found(copy, keys, tmp_path):
    known = read_checkpoint_file(export_all(copy, tmp_path / "before.jsonl"))
    tamper(copy, "delete from audit.checkpoints where last_seq = 30")
    problems = verify(copy, keys, known).problems
    assert [(p.kind, p.seq) for p in problems] == [("deleted", 30)]


def test_altered_known_checkpoint_is_refused(copy, keys, tmp_path):
    saved = tmp_path / "cp.json"
    cp = read_checkpoint_file(export_all(copy, tmp_path / "x.jsonl"))
    saved.write_text(json.dumps(cp.public_record() | {"last_seq": 40}))
    problems = verify(copy, keys, read_checkpoint_file(saved)).problems
    assert [(p.kind, p.seq) for p in problems] == [("forged", 40)]
    other = ledger.sign(ledger.load_signing_key(tmp_path / "other"), 30, cp.head_hash)
    assert [p.kind for p in verify(copy, keys, other).problems] == ["forged"]


def test_known_checkpoint_in_the_archived_part(copy, keys, tmp_path):
    known = read_checkpoint_file(export_all(copy, tmp_path / "x.jsonl"))
    with psycopg.connect(copy) as conn:
        middle = [cp for cp in ledger_checkpoints(conn) if cp.last_seq == 20][0]
        archive(conn, tmp_path / "archive", datetime.now(UTC) + DAY)  # seq 1..30 leave
    add_and_seal(copy, keys, 2)
    assert verify(copy, keys, known, tmp_path / "archive").ok
    assert verify(copy, keys, middle, tmp_path / "archive").ok
    tamper(copy, "delete from audit.checkpoints where last_seq = 20")
    problems = verify(copy, keys, middle, tmp_path / "archive").problems
    assert ("deleted", 20) in [(p.kind, p.seq) for p in problems]


# ---------- exports: the latest checkpoint leaves with every one


def test_every_export_carries_the_latest_checkpoint(copy, keys, tmp_path):
    with psycopg.connect(copy) as conn:  # the first batch's time range only
        start, end = conn.execute("select min(occurred_at), max(occurred_at) from audit.events"
                                  " where event_id <= 10").fetchone()
        assert export(conn, tmp_path / "early.jsonl", start, end + timedelta(microseconds=1)) == 10
    path = tmp_path / "early.jsonl"
    assert read_checkpoint_file(path).last_seq == EVENTS
    public = ledger.public_pem(ledger.load_signing_key(keys))
    assert verify_export(path, public).ok  # the later checkpoint is no truncation
    assert verify_export(path, public, read_checkpoint_file(path)).ok


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_after_an_erased_tail_is_found(copy, keys, tmp_path, fmt):
    known = read_checkpoint_file(export_all(copy, tmp_path / f"before.{fmt}", fmt))
    erase_tail(copy, 20)
    after = export_all(copy, tmp_path / f"after.{fmt}", fmt)
    public = ledger.public_pem(ledger.load_signing_key(keys))
    assert verify_export(after, public).ok
    problem = first(verify_export(after, public, known))
    assert (problem.kind, problem.seq) == ("truncated", 21)
    assert "entries 21..30 or more are missing" in problem.message


def test_export_cut_short_with_its_latest_checkpoint_left_is_found(copy, keys, tmp_path):
    path = export_all(copy, tmp_path / "x.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in records if r.get("seq", 0) <= 25))
    problems = verify_export(path, ledger.public_pem(ledger.load_signing_key(keys))).problems
    assert [(p.kind, p.seq) for p in problems] == [("uncovered", 25)]


def test_later_forged_checkpoint_in_an_export_is_found(copy, keys, tmp_path):
    with psycopg.connect(copy) as conn:
        start = conn.execute("select occurred_at from audit.events where event_id = 1").fetchone()
        export(conn, tmp_path / "x.jsonl", start[0], start[0] + timedelta(microseconds=1))
    path = tmp_path / "x.jsonl"
    text = path.read_text().replace('"last_seq": 30', '"last_seq": 31')
    path.write_text(text)
    problems = verify_export(path, ledger.public_pem(ledger.load_signing_key(keys))).problems
    assert [(p.kind, p.seq) for p in problems] == [("forged", 31)]


def test_checkpoint_newer_than_the_export_is_a_usage_mistake(copy, keys, tmp_path):
    old = export_all(copy, tmp_path / "old.jsonl")
    add_and_seal(copy, keys, 2)
    newer = read_checkpoint_file(export_all(copy, tmp_path / "new.jsonl"))
    with pytest.raises(ValueError, match="newer than .*old.jsonl .*give a checkpoint seen before"):
        verify_export(old, ledger.public_pem(ledger.load_signing_key(keys)), newer)


def test_checkpoint_without_an_iso_time_is_a_usage_mistake(copy, keys, tmp_path):
    path = export_all(copy, tmp_path / "x.jsonl")
    odd = dataclasses.replace(read_checkpoint_file(path), signed_at="yesterday")
    with pytest.raises(ValueError, match="'yesterday' is not an ISO time"):
        verify_export(path, ledger.public_pem(ledger.load_signing_key(keys)), odd)


# ---------- checkpoint files


def test_checkpoint_files_in_every_published_form(copy, tmp_path):
    cp = read_checkpoint_file(export_all(copy, tmp_path / "x.csv", "csv"))
    forms = {"one.json": cp.public_record(),
             "report.json": {"generated_at": "x", "ledger_checkpoint": cp.public_record()}}
    for name, content in forms.items():
        (tmp_path / name).write_text(json.dumps(content, indent=2))
        assert read_checkpoint_file(tmp_path / name).payload() == cp.payload()
    assert cp.last_seq == EVENTS


@pytest.mark.parametrize(("content", "message"), [
    ('{"ledger_checkpoint": null}', "holds no ledger checkpoint"),
    ('{"type": "entry", "seq": 1}\n', "holds no ledger checkpoint"),
    ('{"last_seq": "ten", "head_hash": "a", "signed_at": "b", "key_id": "c",'
     ' "signature": "d"}', "malformed .*last_seq must be a whole number"),
    ('{"last_seq": 10}', "malformed .*head_hash"),
    ("not json\nat all\n", "malformed"),
])
def test_unusable_checkpoint_file_says_what_to_give(tmp_path, content, message):
    (tmp_path / "cp.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_checkpoint_file(tmp_path / "cp.json")


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="cannot read .*nowhere.json"):
        read_checkpoint_file(tmp_path / "nowhere.json")


# ---------- the command line


def test_cli_verify_with_a_checkpoint_locates_the_erased_tail(copy, keys, tmp_path):
    saved = tmp_path / "seen.json"
    env = {"HUB_DATABASE_URL": copy, "HUB_HOME": str(keys.parent)}
    saved.write_text(json.dumps(read_checkpoint_file(export_all(copy, tmp_path / "x.jsonl"))
                                .public_record()))
    intact = hub("audit", "verify", "--checkpoint", str(saved), env=env)
    assert intact.returncode == 0 and intact.stdout.endswith("ledger intact\n")
    erase_tail(copy, 12)
    result = hub("audit", "verify", "--checkpoint", str(saved), env=env)
    assert result.returncode == 1
    assert "TAMPERED: first at seq 13: ledger ends at seq 12 but checkpoint (seq 30, signed" \
        in result.stdout


def test_cli_verify_refuses_an_unusable_checkpoint_file(tmp_path):
    (tmp_path / "empty.json").write_text("{}")
    for path, message in [(tmp_path / "empty.json", "holds no ledger checkpoint"),
                          (tmp_path / "nowhere.json", "cannot read")]:
        result = hub("audit", "verify", "--checkpoint", str(path),
                     env={"HUB_HOME": str(tmp_path)})
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
