"""Ledger verification on chains built in memory: no database, a key made here.

The entries are hashed and the checkpoints signed with hub.ledger's own helpers, then
tampered with exactly as an attacker would; each test names the break verification must
report (kind, seq and message). The mutation check (docs/mutation.md) runs these.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ledger import EVENT_COLUMNS, GENESIS, entry_hash, sign
from hub.ledger_verify import Entry, Problem, check_known, signed, verify_entries

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
OTHER_KEY = Ed25519PrivateKey.generate()


def event(event_id: int) -> dict:
    return {c: None for c in EVENT_COLUMNS} | {
        "event_id": event_id, "occurred_at": "2026-06-15T10:00:00+00:00", "kind": "data.read",
        "rows_returned": event_id, "filters": {"limit": event_id}}


def chain(last: int, first: int = 1, prev: str = GENESIS) -> list[Entry]:
    entries = []
    for seq in range(first, last + 1):
        content = event(100 + seq)
        entries.append(Entry(seq, 100 + seq, prev, entry_hash(prev, content), content))
        prev = entries[-1].hash
    return entries


def at(entries: list[Entry], seq: int) -> Entry:
    return next(e for e in entries if e.seq == seq)


def checkpoint(entries: list[Entry], seq: int, cid: int | None = None, key=KEY):
    return replace(sign(key, seq, at(entries, seq).hash), checkpoint_id=cid)


def problems(result) -> list[tuple]:
    return [(p.kind, p.seq, p.message) for p in result.problems]


# ---------- the chain


def test_an_intact_chain_verifies_and_keeps_the_heads_asked_for():
    entries = chain(5)
    cps = [checkpoint(entries, 3), checkpoint(entries, 5)]
    result = verify_entries(entries, cps, PUBLIC, watch=[2])
    assert result.ok and problems(result) == []
    assert (result.entries, result.checkpoints, result.last_seq) == (5, 2, 5)
    assert result.heads == {2: entries[1].hash, 3: entries[2].hash, 5: entries[4].hash}


def test_a_missing_entry_is_reported_once_by_its_seq():
    entries = chain(5)
    result = verify_entries([e for e in entries if e.seq != 3], [], PUBLIC)
    assert problems(result) == [
        ("deleted", 3, "entries seq 3..3 are missing: deleted from the chain")]
    assert result.last_seq == 5 and result.entries == 4


def test_a_deleted_event_is_located():
    entries = chain(4)
    entries[2] = replace(entries[2], event=None)
    assert problems(verify_entries(entries, [], PUBLIC)) == [
        ("deleted", 3, "entry seq 3: event 103 was deleted")]


def test_an_inserted_entry_is_located_before_the_one_that_links_past_it():
    entries = chain(5)
    forged = event(999)
    inserted = Entry(3, 999, entries[1].hash, entry_hash(entries[1].hash, forged), forged)
    renumbered = [replace(e, seq=e.seq + 1) for e in entries[2:]]
    result = verify_entries([*entries[:2], inserted, *renumbered], [], PUBLIC)
    assert problems(result) == [
        ("inserted", 3, "entry seq 3 was inserted: entry seq 4 links past it")]


def test_an_entry_linking_to_nothing_before_it_is_broken():
    entries = chain(4)
    entries[2] = replace(entries[2], prev_hash="f" * 64)
    assert problems(verify_entries(entries, [], PUBLIC)) == [
        ("broken", 3, "entry seq 3 does not link to the entry before it: an entry was "
                      "deleted, inserted or reordered there")]


def test_an_edited_event_is_located():
    entries = chain(4)
    entries[1] = replace(entries[1], event=entries[1].event | {"rows_returned": 0})
    assert problems(verify_entries(entries, [], PUBLIC)) == [
        ("edited", 2, "entry seq 2 (event 102) does not match its hash: edited, or swapped "
                      "with another entry")]


def test_a_slice_of_the_chain_verifies_from_where_it_starts():
    whole = chain(15)
    part = whole[10:]
    result = verify_entries(part, [checkpoint(whole, 5), checkpoint(whole, 15)], PUBLIC,
                            first_seq=11, first_prev=whole[9].hash)
    assert result.ok and result.last_seq == 15 and result.checkpoints == 2
    assert problems(verify_entries(part, [], PUBLIC))[0] == (
        "deleted", 1, "entries seq 1..10 are missing: deleted from the chain")
    assert problems(verify_entries(part, [], PUBLIC, first_seq=11))[0][:2] == ("broken", 11)


def test_no_entries_end_before_the_first_seq():
    assert verify_entries([], [], PUBLIC).last_seq == 0
    assert verify_entries([], [], PUBLIC, first_seq=11).last_seq == 10


# ---------- checkpoints in the chain


def test_a_checkpoint_altered_after_signing_is_forged():
    entries = chain(3)
    cp = replace(checkpoint(entries, 3, cid=7), signed_at="2020-01-01T00:00:00+00:00")
    result = verify_entries(entries, [cp], PUBLIC)
    assert problems(result) == [("forged", 3, "checkpoint 7 (seq 3) has no valid signature "
                                              "from the ledger key: forged or altered")]
    assert result.checkpoints == 1


def test_a_checkpoint_past_the_end_of_the_chain_shows_the_removed_tail():
    entries = chain(7)
    result = verify_entries(entries[:5], [checkpoint(entries, 7, cid=2),
                                          checkpoint(entries, 5, cid=1)], PUBLIC)
    assert problems(result) == [("truncated", 6, "checkpoint 2 covers up to seq 7 but the "
                                                 "chain ends at seq 5: entries 6..7 were removed")]


def test_a_chain_rewritten_under_a_checkpoint_is_found():
    entries = chain(3)
    cp = replace(sign(KEY, 3, "a" * 64), checkpoint_id=4)
    assert problems(verify_entries(entries, [cp], PUBLIC)) == [
        ("rewritten", 3, "the chain at seq 3 differs from the head signed by checkpoint 4: "
                         "entries up to seq 3 were rewritten")]


@pytest.mark.parametrize("signature", ["abc", "", base64.b64encode(b"x" * 64).decode()])
def test_a_signature_that_is_not_one_is_refused(signature):
    cp = replace(sign(KEY, 1, "a" * 64), signature=signature)
    assert signed(cp, PUBLIC) is False


def test_a_checkpoint_signed_with_another_key_is_refused():
    assert signed(sign(KEY, 1, "a" * 64), PUBLIC) is True
    assert signed(sign(OTHER_KEY, 1, "a" * 64), PUBLIC) is False


# ---------- a checkpoint seen outside the ledger


def known_problems(known, *, end=5, heads=None, recorded=(), holds=range(1, 6)):
    return [(p.kind, p.seq, p.message) for p in
            check_known(known, PUBLIC, end=end, heads=heads or {}, recorded=list(recorded),
                        holds=holds)]


def test_a_known_checkpoint_the_ledger_still_holds_is_fine():
    entries = chain(5)
    known = checkpoint(entries, 5)
    assert known_problems(known, heads={5: entries[4].hash}, recorded=[known]) == []


def test_a_forged_known_checkpoint_is_refused():
    known = replace(sign(KEY, 5, "a" * 64), head_hash="b" * 64, signed_at="2026-01-01")
    assert known_problems(known) == [
        ("forged", 5, "the checkpoint (seq 5, signed 2026-01-01) given has no valid "
                      "signature from the ledger key: altered, or from another ledger")]


def test_a_known_checkpoint_past_the_end_shows_the_missing_entries():
    known = sign(KEY, 6, "a" * 64)
    assert known_problems(known, end=5) == [
        ("truncated", 6, f"ledger ends at seq 5 but checkpoint (seq 6, signed "
                         f"{known.signed_at}) was seen: entries 6..6 or more are missing")]
    assert known_problems(known, end=6, holds=range(0)) == []


def test_a_known_checkpoint_differing_from_the_chain_is_rewritten():
    known = sign(KEY, 5, "a" * 64)
    message = (f"the ledger at seq 5 differs from the head of the checkpoint (seq 5, signed "
               f"{known.signed_at}): entries up to seq 5 were rewritten, or removed and "
               "replaced")
    assert known_problems(known, heads={5: "b" * 64}, holds=range(0)) == [
        ("rewritten", 5, message)]


def test_without_the_entry_a_recorded_checkpoint_at_that_seq_is_compared():
    known = sign(KEY, 5, "a" * 64)
    other = sign(KEY, 5, "b" * 64)
    assert [p[0] for p in known_problems(known, recorded=[other])] == ["rewritten", "deleted"]
    # The chain's own entry, when walked, is what counts.
    assert known_problems(known, heads={5: "a" * 64}, recorded=[other], holds=range(0)) == []
    assert known_problems(known, recorded=[sign(KEY, 4, "b" * 64)], holds=range(0)) == []


def test_a_known_checkpoint_deleted_from_the_ledger_is_found():
    known = sign(KEY, 5, "a" * 64)
    resigned = replace(sign(KEY, 5, "a" * 64), signed_at="2026-01-01T00:00:00+00:00")
    assert known_problems(known, heads={5: "a" * 64}, recorded=[resigned]) == [
        ("deleted", 5, f"the checkpoint (seq 5, signed {known.signed_at}) was seen but the "
                       "ledger no longer holds it: checkpoints were deleted")]
    # Outside the seqs where the ledger keeps every checkpoint, a missing one is no break.
    assert known_problems(known, heads={5: "a" * 64}, holds=range(1, 5)) == []
    same_but_signature = replace(known, signature=base64.b64encode(b"y" * 64).decode())
    assert [p[0] for p in known_problems(known, heads={5: "a" * 64},
                                         recorded=[same_but_signature])] == ["deleted"]


def test_problem_is_plain_data():
    assert Problem("edited", 2, "m") == Problem("edited", 2, "m")


# ---------- helpers shared with the export tests


def write_export(path: Path, entries, cps, exported_at=None, fmt="jsonl") -> Path:
    from hub.ledger_verify import _write_csv, write_jsonl

    (write_jsonl if fmt == "jsonl" else _write_csv)(path, entries, cps, exported_at)
    return path


def later(days: int = 1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------- exports verified with nothing but the public key


def export_problems(path: Path, known=None) -> list[tuple]:
    from hub.ledger import public_pem
    from hub.ledger_verify import verify_export

    return problems(verify_export(path, public_pem(KEY), known))


@pytest.mark.parametrize("fmt, name", [("jsonl", "a.jsonl"), ("csv", "a.csv")])
def test_an_intact_export_verifies_in_either_format(tmp_path, fmt, name):
    from hub.ledger import public_pem
    from hub.ledger_verify import verify_export

    whole = chain(8)
    cps = [checkpoint(whole, 3), checkpoint(whole, 6), checkpoint(whole, 8)]
    path = write_export(tmp_path / name, whole[3:6], cps[1:], later(), fmt)
    result = verify_export(path, public_pem(KEY))
    assert result.ok, result.problems
    assert (result.entries, result.checkpoints, result.last_seq) == (3, 2, 6)


@pytest.mark.parametrize("fmt, name", [("jsonl", "a.jsonl"), ("csv", "a.csv")])
def test_an_edited_export_is_located(tmp_path, fmt, name):
    entries = chain(4)
    path = write_export(tmp_path / name, entries, [checkpoint(entries, 4)], later(), fmt)
    path.write_text(path.read_text().replace('"rows_returned": 102', '"rows_returned": 9')
                    .replace('""rows_returned"": 102', '""rows_returned"": 9'))
    assert export_problems(path) == [("edited", 2, "entry seq 2 (event 102) does not match "
                                                   "its hash: edited, or swapped with another "
                                                   "entry")]


def test_an_export_without_entries_says_so(tmp_path):
    path = write_export(tmp_path / "e.jsonl", [], [])
    assert export_problems(path) == [("uncovered", None, f"{path}: no entries")]


def test_an_export_cut_short_of_its_checkpoint_is_uncovered(tmp_path):
    entries = chain(5)
    path = write_export(tmp_path / "e.jsonl", entries[:4], [checkpoint(entries, 5)])
    assert export_problems(path) == [
        ("uncovered", 4, "no signed checkpoint ends at the last entry (seq 4): entries after "
                         "it are missing")]


def test_the_ledgers_latest_checkpoint_past_the_export_is_checked_for_its_signature(tmp_path):
    from hub.ledger import public_pem
    from hub.ledger_verify import verify_export

    entries = chain(9)
    latest = checkpoint(entries, 9, cid=3)
    path = write_export(tmp_path / "e.jsonl", entries[:4], [checkpoint(entries, 4), latest])
    result = verify_export(path, public_pem(KEY))
    assert result.ok and result.checkpoints == 2
    forged = replace(latest, head_hash="c" * 64)
    path = write_export(tmp_path / "f.jsonl", entries[:4], [checkpoint(entries, 4), forged])
    assert export_problems(path) == [("forged", 9, "checkpoint 3 (seq 9) has no valid "
                                                   "signature from the ledger key: forged or "
                                                   "altered")]


def test_a_known_checkpoint_is_checked_against_the_export(tmp_path):
    entries = chain(9)
    cps = [checkpoint(entries, 4), checkpoint(entries, 9)]
    path = write_export(tmp_path / "e.jsonl", entries[:4], cps, later())
    assert export_problems(path, known=cps[0]) == []
    assert export_problems(path, known=cps[1]) == []  # the latest, past the entries
    beyond = checkpoint(chain(10), 10)
    assert [p[:2] for p in export_problems(path, known=beyond)] == [("truncated", 10)]
    # Inside the export, a known checkpoint the file lacks was deleted.
    inner = checkpoint(entries, 2)
    assert [p[:2] for p in export_problems(path, known=inner)] == [("deleted", 2)]
    rewritten = sign(KEY, 3, "d" * 64)
    assert [p[:2] for p in export_problems(path, known=rewritten)] == [
        ("rewritten", 3), ("deleted", 3)]


def resigned(cp, signed_at: str):
    """`cp` signed again, as of `signed_at`."""
    unsigned = replace(cp, signed_at=signed_at, signature="")
    return replace(unsigned, signature=base64.b64encode(KEY.sign(unsigned.payload())).decode())


def test_the_export_keeps_its_own_problems_beside_the_known_checkpoints(tmp_path):
    entries = chain(4)
    cp = checkpoint(entries, 4)
    path = write_export(tmp_path / "e.jsonl", entries, [cp], later())
    path.write_text(path.read_text().replace('"rows_returned": 102', '"rows_returned": 9'))
    assert [p[:2] for p in export_problems(path, known=cp)] == [("edited", 2)]


def test_only_seqs_inside_the_export_must_still_hold_the_known_checkpoint(tmp_path):
    whole = chain(9)
    path = write_export(tmp_path / "e.jsonl", whole[3:6],
                        [checkpoint(whole, 6), checkpoint(whole, 9)], later())
    assert export_problems(path, known=checkpoint(whole, 3)) == []  # before the export
    assert export_problems(path, known=checkpoint(whole, 7)) == []  # after its entries
    assert [p[:2] for p in export_problems(path, known=checkpoint(whole, 4))] == [
        ("deleted", 4)]  # its first entry: the file should carry it


def test_a_known_checkpoint_time_with_a_zone_is_compared_as_that_instant(tmp_path):
    entries = chain(4)
    known = resigned(checkpoint(entries, 4), "2026-01-01T13:00:00+02:00")  # 11:00 UTC
    path = write_export(tmp_path / "e.jsonl", entries, [known],
                        datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert export_problems(path, known=known) == []


def test_a_known_checkpoint_newer_than_the_export_is_a_usage_mistake(tmp_path):
    entries = chain(4)
    exported = datetime(2026, 1, 1, tzinfo=UTC)
    path = write_export(tmp_path / "e.jsonl", entries, [checkpoint(entries, 4)], exported)
    known = checkpoint(entries, 4)
    with pytest.raises(ValueError) as caught:
        export_problems(path, known=known)
    assert str(caught.value) == (
        f"the checkpoint (seq 4, signed {known.signed_at}) is newer than {path} (exported "
        "2026-01-01T00:00:00+00:00): give a checkpoint seen before the export was written")


def test_a_known_checkpoint_signed_at_the_export_time_is_not_newer(tmp_path):
    entries = chain(4)
    known = checkpoint(entries, 4)
    at_export = datetime.fromisoformat(known.signed_at)
    path = write_export(tmp_path / "e.jsonl", entries, [known], at_export)
    assert export_problems(path, known=known) == []


def test_a_known_checkpoint_time_without_a_zone_is_read_as_utc(tmp_path):
    entries = chain(4)
    known = resigned(checkpoint(entries, 4), "2026-01-01T12:00:00")
    path = write_export(tmp_path / "e.jsonl", entries, [known],
                        datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    assert export_problems(path, known=known) == []  # 12:00 is read as 12:00 UTC
    path = write_export(tmp_path / "e.jsonl", entries, [known],
                        datetime(2026, 1, 1, 11, 30, tzinfo=UTC))
    with pytest.raises(ValueError, match="is newer than"):
        export_problems(path, known=known)


def test_a_known_checkpoint_without_an_iso_time_is_a_usage_mistake(tmp_path):
    entries = chain(4)
    path = write_export(tmp_path / "e.jsonl", entries, [checkpoint(entries, 4)], later())
    known = replace(checkpoint(entries, 4), signed_at="yesterday")
    with pytest.raises(ValueError) as caught:
        export_problems(path, known=known)
    assert str(caught.value) == (
        "the checkpoint's signed_at 'yesterday' is not an ISO time: give a checkpoint as "
        "exports or /transparency/report write it")


def test_an_archive_without_an_export_time_takes_any_known_checkpoint(tmp_path):
    entries = chain(4)
    known = checkpoint(entries, 4)
    path = write_export(tmp_path / "e.jsonl", entries, [known])
    assert export_problems(path, known=known) == []


def test_the_last_export_time_in_a_file_counts(tmp_path):
    entries = chain(4)
    known = checkpoint(entries, 4)
    path = write_export(tmp_path / "e.jsonl", entries, [known], later())
    with path.open("a") as out:  # a second, earlier time appended: it is the one read
        out.write(json.dumps({"type": "exported", "at": "2026-01-01T00:00:00+00:00"}) + "\n")
    with pytest.raises(ValueError, match="is newer than"):
        export_problems(path, known=known)


def test_an_export_writes_entries_then_checkpoints_then_its_time(tmp_path):
    entries = chain(2)
    cp = checkpoint(entries, 2, cid=5)
    when = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
    records = lines(write_export(tmp_path / "e.jsonl", entries, [cp], when))
    assert [r["type"] for r in records] == ["entry", "entry", "checkpoint", "exported"]
    assert records[0] == {"type": "entry", "seq": 1, "event_id": 101, "prev_hash": GENESIS,
                          "hash": entries[0].hash, "event": entries[0].event}
    assert records[2] == {"type": "checkpoint", **cp.__dict__}
    assert records[3] == {"type": "exported", "at": "2026-06-15T10:00:00+00:00"}
    csv_path = write_export(tmp_path / "e.csv", entries, [cp], when, fmt="csv")
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["seq", "prev_hash", "hash"] and header[-1] == "event_json"
    assert "filters" not in header and "detail" not in header and "kind" in header
    assert lines(tmp_path / "e.csv.checkpoints.jsonl")[1]["type"] == "exported"


# ---------- a checkpoint saved to a file


def test_the_newest_checkpoint_in_an_export_is_read(tmp_path):
    from hub.ledger_verify import read_checkpoint_file

    entries = chain(9)
    cps = [checkpoint(entries, 9, cid=2), checkpoint(entries, 4, cid=1)]
    path = write_export(tmp_path / "e.jsonl", entries, cps, later())
    assert read_checkpoint_file(path) == cps[0]
    write_export(tmp_path / "e.csv", entries, cps, later(), fmt="csv")
    assert read_checkpoint_file(tmp_path / "e.csv") == cps[0]


@pytest.mark.parametrize("wrap", [
    lambda cp: {"ledger_checkpoint": {"type": "checkpoint", **cp.public_record()}},
    lambda cp: cp.public_record(),
    lambda cp: {"type": "checkpoint", **cp.__dict__},
])
def test_a_report_or_a_single_checkpoint_is_read(tmp_path, wrap):
    from hub.ledger_verify import read_checkpoint_file

    cp = checkpoint(chain(3), 3)
    (tmp_path / "c.json").write_text(json.dumps(wrap(cp), indent=2))
    assert read_checkpoint_file(tmp_path / "c.json").public_record() == cp.public_record()


def test_a_record_of_another_type_is_no_checkpoint(tmp_path):
    from hub.ledger_verify import read_checkpoint_file

    cp = checkpoint(chain(5), 5)
    other = {"type": "summary", **replace(cp, last_seq=99).public_record()}
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(other) + "\n" + json.dumps({"type": "checkpoint", **cp.__dict__}))
    assert read_checkpoint_file(path) == cp


@pytest.mark.parametrize("content, message", [
    ('{"type": "entry", "seq": 1}\n["a"]\n{"other": 1}\n', "holds no ledger checkpoint"),
    ('{"last_seq": "7", "head_hash": "a"}', "a checkpoint there is malformed"),
    ('{"last_seq": 7, "head_hash": "a"}', "a checkpoint there is malformed ('signed_at')"),
    ("", "holds no ledger checkpoint"),
])
def test_an_unusable_checkpoint_file_says_what_to_give(tmp_path, content, message):
    from hub.ledger_verify import read_checkpoint_file

    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ValueError) as caught:
        read_checkpoint_file(path)
    assert str(caught.value).startswith(f"{path}: ") or str(caught.value).startswith(f"{path} ")
    assert message in str(caught.value)
    assert "give a file written by `hub audit export` or saved from /transparency/report" \
        in str(caught.value)


def test_a_missing_checkpoint_file_is_named(tmp_path):
    from hub.ledger_verify import read_checkpoint_file

    with pytest.raises(ValueError) as caught:
        read_checkpoint_file(tmp_path / "gone.csv")
    assert str(caught.value) == (f"cannot read {tmp_path / 'gone.csv.checkpoints.jsonl'}: "
                                 "No such file or directory")
