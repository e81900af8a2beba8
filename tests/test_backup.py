"""Backups: the restore drill, and each refusal, through the `hub` command as users run it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from hub import clients, ledger
from hub.audit import AuditEvent, record
from hub.backup.crypto import EncryptingWriter, decrypt
from hub.backup.store import DUMP, HOME, MANIFEST
from hub.settings import Settings
from hub.warehouse import drop_database, ensure_database
from tests.conftest import RUN_TAG, bearer, own_warehouse
from tests.stand_ins import beach_feed, forget_feed
from tests.test_cli import hub

KEY = "correct horse battery staple"
REQUESTS = "public_works.service_requests"


def _env(url: str, home: Path, **more: str) -> dict[str, str]:
    return {"HUB_DATABASE_URL": url, "HUB_HOME": str(home), "HUB_BACKUP_KEY": KEY, **more}


def _create(env: dict[str, str], store: Path) -> str:
    made = hub("backup", "create", "--to", str(store), env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    return made.stdout.splitlines()[-1]


def _recreate(server_url: str, url: str) -> None:
    name = make_url(url).database
    drop_database(server_url, name)
    ensure_database(server_url, name)


def _read(settings: Settings, url: str, token: str) -> dict:
    from api.main import create_app

    with TestClient(create_app(settings, url)) as api:
        response = api.get(f"/datasets/{REQUESTS}/rows?limit=50", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def own_feed(department_sources, monkeypatch) -> Iterator[str]:
    """A sensor feed of the drill's own: the session's feed is drained by whichever test
    runs the first pass, so in random order the drill would find it empty."""
    url = beach_feed(f"hub-test-{RUN_TAG}-drill")
    monkeypatch.setenv("HUB_SOURCE_ENVIRONMENT_MQTT", url)
    yield url
    forget_feed(url)


def test_restore_drill(server_url, settings, source_url, own_feed, prefect_harness, tmp_path):
    from api.main import create_app
    from flows.pipeline import run_all

    home, store = tmp_path / "home", tmp_path / "backups"
    with own_warehouse(server_url, "hub_test_drill") as url:
        drill = settings.model_copy(update={"database_url": SecretStr(url), "home": home})
        home.mkdir()
        first = run_all(None, drill)  # every demo dataset, through each kind of source
        assert [r.status for r in first] == ["published"] * len(first) == ["published"] * 7, \
            [(r.dataset, r.failures) for r in first]
        with psycopg.connect(url) as conn:
            client, secret = clients.add_client(conn, name="drill", role="transport_analyst")
        with TestClient(create_app(drill, url)) as api:
            token = api.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(client.client_id, secret)).json()["access_token"]
        before = _read(drill, url, token)
        name = _create(_env(url, home), store)
        checked = hub("backup", "verify", name, "--from", str(store), env=_env(url, home))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"VERIFIED: {name}" in checked.stdout and "; intact" in checked.stdout
        assert _backup_events(url) == ["backup.created", "backup.verified"]

        _recreate(server_url, url)  # the warehouse and HUB_HOME are lost
        shutil.rmtree(home)
        restored = hub("backup", "restore", name, "--from", str(store), env=_env(url, home))
        assert restored.returncode == 0, restored.stdout + restored.stderr

        after = _read(drill, url, token)  # the same token: the signing key came back
        assert after == before and len(before["rows"]) == 50
        audit = hub("audit", "verify", env=_env(url, home))
        assert audit.returncode == 0 and "ledger intact" in audit.stdout, audit.stdout
        again = run_all(None, drill)
        assert {r.dataset: r.rows_loaded for r in again} == {r.dataset: 0 for r in first}
        # The dump was taken before its own record was written: the restored log has the
        # restore's record only.
        assert _backup_events(url) == ["backup.restored"]


def _backup_events(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [k for (k,) in conn.execute(
            "select kind from audit.events where kind like 'backup.%' order by event_id")]


# ---------- refusals


@pytest.fixture
def backed_up(server_url, tmp_path):
    """A small warehouse with sealed audit entries, and one backup of it."""
    home, store = tmp_path / "home", tmp_path / "backups"
    with own_warehouse(server_url, "hub_test_backup") as url:
        with psycopg.connect(url) as conn:
            for n in range(3):
                record(conn, AuditEvent(kind="test.event", reason=f"event {n}"))
            ledger.seal(conn, ledger.load_signing_key(home / "keys"))
        name = _create(_env(url, home), store)
        yield url, home, store, name


def _refused(result, says: str) -> None:
    assert result.returncode != 0
    assert says in result.stdout + result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_key_is_refused(backed_up):
    url, home, store, name = backed_up
    env = _env(url, home, HUB_BACKUP_KEY="not the key")
    _refused(hub("backup", "restore", name, "--from", str(store), "--force", env=env),
             "wrong backup key")
    checked = hub("backup", "verify", name, "--from", str(store), env=env)
    assert checked.returncode == 1 and "FAILED" in checked.stdout
    _refused(checked, "manifest.json.cdhb: wrong backup key")


def test_truncated_file_is_refused(backed_up):
    url, home, store, name = backed_up
    dump = store / name / DUMP
    dump.write_bytes(dump.read_bytes()[:-100])
    _refused(hub("backup", "restore", name, "--from", str(store), "--force",
                 env=_env(url, home)),
             f"error: {DUMP}: truncated: the file ends before its final chunk")


def test_flipped_byte_inside_the_archive_is_refused(backed_up):
    url, home, store, name = backed_up
    dump = store / name / DUMP
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0x01
    dump.write_bytes(bytes(data))
    _refused(hub("backup", "verify", name, "--from", str(store), env=_env(url, home)),
             f"{DUMP}: chunk 0 fails authentication: the file was altered")


def _rewrite_manifest(path: Path, change) -> None:
    """Decrypt the manifest, change it, encrypt it again with the right key."""
    with path.open("rb") as source:
        manifest = json.loads(b"".join(decrypt(source, KEY.encode(), MANIFEST)))
    change(manifest)
    with path.open("wb") as sink:
        writer = EncryptingWriter(sink, KEY.encode())
        writer.write(json.dumps(manifest).encode())
        writer.close()


def test_manifest_checksum_mismatch_is_refused(backed_up):
    url, home, store, name = backed_up
    # A manifest of another backup: the stored file is not the one it describes.
    _rewrite_manifest(store / name / MANIFEST,
                      lambda m: m["files"][HOME].update(stored_sha256="0" * 64))
    _refused(hub("backup", "restore", name, "--from", str(store), "--force",
                 env=_env(url, home)),
             f"error: {HOME}: checksum does not match the manifest's")


def test_restore_over_a_non_empty_warehouse_needs_force(backed_up):
    url, home, store, name = backed_up
    env = _env(url, home)
    _refused(hub("backup", "restore", name, "--from", str(store), env=env),
             "refusing to restore over a non-empty warehouse or HUB_HOME")
    forced = hub("backup", "restore", name, "--from", str(store), "--force", env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    audit = hub("audit", "verify", env=env)
    assert audit.returncode == 0 and "3 entries" in audit.stdout, audit.stdout


def test_unknown_backup_and_missing_key_say_what_to_do(backed_up, tmp_path):
    url, home, store, _ = backed_up
    _refused(hub("backup", "restore", "hub-20260101T000000Z-abcd", "--from", str(store),
                 env=_env(url, home)), "no backup 'hub-20260101T000000Z-abcd'")
    _refused(hub("backup", "restore", "latest", "--from", str(store), env=_env(url, home)),
             "'latest' is not a backup name")
    no_key = {"HUB_DATABASE_URL": url, "HUB_HOME": str(home)}
    _refused(hub("backup", "create", "--to", str(store), env=no_key),
             "no backup key: set HUB_BACKUP_KEY")
    _refused(hub("backup", "create", env=_env(url, home, HUB_BACKUP_KEEP="a week")),
             "HUB_BACKUP_KEEP='a week': write daily/weekly/monthly counts")


def test_content_checksum_mismatch_leaves_an_empty_warehouse_empty(backed_up, server_url):
    url, home, store, name = backed_up
    _rewrite_manifest(store / name / MANIFEST,
                      lambda m: m["files"][DUMP].update(plain_sha256="0" * 64))
    with own_warehouse(server_url, "hub_test_restore_into") as target:
        _recreate(server_url, target)  # own_warehouse bootstraps it: empty it again
        _refused(hub("backup", "restore", name, "--from", str(store),
                     env=_env(target, home.parent / "fresh")),
                 f"error: {DUMP}: decrypted content does not match the manifest's checksum")
        with psycopg.connect(target) as conn:  # pg_restore's one transaction rolled back
            assert conn.execute("select to_regclass('audit.events')").fetchone()[0] is None


def test_verify_names_each_mismatch_with_the_manifest(backed_up):
    url, home, store, name = backed_up
    _rewrite_manifest(store / name / MANIFEST,
                      lambda m: m["tables"].update({"audit.events": 99, "shared.gone": 1}))
    checked = hub("backup", "verify", name, "--from", str(store), env=_env(url, home))
    assert checked.returncode == 1 and f"FAILED: {name}" in checked.stdout
    assert "rows of audit.events: manifest 99, restored 3" in checked.stdout
    assert "rows of shared.gone: manifest 1, restored no table" in checked.stdout
    with psycopg.connect(url) as conn:
        [(decision, detail)] = conn.execute("select decision, detail from audit.events"
                                            " where kind = 'backup.verified'").fetchall()
    assert decision == "deny" and detail["ok"] is False


def test_tool_and_store_failures_say_what_to_do(backed_up, tmp_path):
    from hub.backup import BackupError
    from hub.backup.create import _dump
    from hub.backup.pgtools import find_tool
    from hub.backup.restore import Source, load
    from hub.backup.store import Store

    url, home, store, name = backed_up
    with pytest.raises(BackupError, match="no pg_dump for PostgreSQL 99 or newer was found"):
        find_tool("pg_dump", 99)
    with pytest.raises(BackupError, match="backup destination 'nosuch://x'"):
        Store("nosuch://x")
    with pytest.raises(BackupError, match="pg_dump failed: .*invalid snapshot identifier"):
        _dump(url, "00000003-0000001B-1", Store(str(tmp_path / "s")), "hub-x", KEY.encode())
    source = Source(Store(str(store)), name, KEY.encode())
    with pytest.raises(BackupError, match="pg_restore failed: .*already exists"):
        load(source, source.manifest(), url)  # over the very warehouse it came from
    missing = {"HUB_DATABASE_URL": url, "HUB_HOME": str(home),
               "HUB_BACKUP_KEY_FILE": str(tmp_path / "nope.key")}
    _refused(hub("backup", "list", "--from", "nosuch://x", env=missing),
             "backup destination 'nosuch://x'")
    _refused(hub("backup", "create", "--to", str(store), env=missing),
             f"HUB_BACKUP_KEY_FILE {tmp_path / 'nope.key'} does not exist")


def test_any_fsspec_destination_backs_up_and_verifies(backed_up):
    from hub.backup.service import make_backup, verify_backup
    from hub.backup.store import Store

    url, home, _, _ = backed_up
    settings = Settings(home=home, database_url=SecretStr(url), backup_key=SecretStr(KEY),
                        _env_file=None)
    where = f"memory://hub-test-{home.parent.name}"
    name, pruned = make_backup(settings, url, where)
    assert pruned == [] and [b.name for b in Store(where).backups() if b.complete] == [name]
    report = verify_backup(settings, url, where, name)
    assert report.ok, report.problems
    assert any("ledger: 3 entries" in line for line in report.lines), report.lines
