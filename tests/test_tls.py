"""Encryption in transit: `hub serve` over https with a certificate made here, HSTS and
Secure cookies; key files others can read are refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hub import clients, users
from tests.conftest import REPO, clock_env, own_warehouse
from tests.console_support import sign_in_over
from tests.test_cli import _free_port, _wait_until, hub

SHELTER = "social_services.shelter_census"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (mode 0600), valid around the signing time."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_serve_over_https_gives_tokens_and_rows_with_hsts(
        server_url, settings, department_sources, prefect_harness, tmp_path):
    from flows.pipeline import run_all

    cert, key = self_signed(tmp_path)
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    with own_warehouse(server_url, "hub_test_tls") as url:
        own = settings.model_copy(update={"database_url": SecretStr(url),
                                          "home": tmp_path / "home"})
        [report] = run_all(SHELTER, own)
        assert report.status == "published", report.failures
        with psycopg.connect(url) as conn:
            client, secret = clients.add_client(conn, name="tls", role="social_services_analyst")
            person = ("tls-person", users.add_user(conn, "tls-person", "social_services_analyst"))
        server = subprocess.Popen(
            [sys.executable, "-m", "hub_cli", "serve", "--port", str(port),
             "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)], cwd=REPO,
            env=clean | clock_env() | {"HUB_HOME": str(tmp_path / "home"),
                                       "HUB_DATABASE_URL": url})
        try:
            _talk_https(f"https://127.0.0.1:{port}", cert, client.client_id, secret)
            _console_over_https(f"https://127.0.0.1:{port}", cert, person)
        finally:
            server.terminate()
            server.wait(timeout=30)


def _talk_https(base: str, cert: Path, client_id: str, secret: str) -> None:
    trusting = ssl.create_default_context(cafile=str(cert))
    _wait_until(lambda: _answers(base, trusting), f"`hub serve` answering at {base}")
    with httpx.Client(base_url=base, verify=trusting) as https:
        token = https.post("/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(client_id, secret))
        assert token.status_code == 200, token.text
        assert token.headers["strict-transport-security"].startswith("max-age=31536000")
        rows = https.get(f"/datasets/{SHELTER}/rows?limit=5", headers={
            "Authorization": f"Bearer {token.json()['access_token']}"})
        assert rows.status_code == 200 and len(rows.json()["rows"]) == 5
        meta = https.get("/.well-known/oauth-authorization-server").json()
        assert meta["issuer"].startswith("https://")
    plain = base.replace("https://", "http://")
    try:  # the port speaks TLS only: a plain request gets no answer
        httpx.get(f"{plain}/.well-known/jwks.json", timeout=2)
        raise AssertionError("served over plain http too")
    except httpx.TransportError:
        pass
    untrusting = ssl.create_default_context()
    try:  # a client that does not trust the certificate refuses the connection
        httpx.get(f"{base}/.well-known/jwks.json", verify=untrusting, timeout=2)
        raise AssertionError("a client that does not trust the certificate connected")
    except httpx.ConnectError as exc:
        assert "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _console_over_https(base: str, cert: Path, person: tuple[str, str]) -> None:
    """The console over https: the real session cookie after sign-in is Secure, HttpOnly
    and SameSite, and its pages are served with HSTS."""
    trusting = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=base, verify=trusting, follow_redirects=True,
                      timeout=30) as browser:
        public = browser.get("/")
        assert public.status_code == 200 and "Sign in" in public.text
        landed = sign_in_over(browser, *person)
        [session] = [v for r in landed.history for k, v in r.headers.multi_items()
                     if k == "set-cookie" and v.startswith("hub_console=")]
        attributes = {a.strip().split("=")[0].lower(): a.strip() for a in session.split(";")}
        assert {"secure", "httponly", "samesite"} <= attributes.keys(), session
        assert attributes["samesite"].lower() in ("samesite=lax", "samesite=strict"), session
        catalog = browser.get("/console/catalog")
        assert catalog.status_code == 200 and SHELTER in catalog.text
        assert catalog.headers["strict-transport-security"].startswith("max-age=31536000")


def _answers(base: str, context: ssl.SSLContext) -> bool:
    try:
        return httpx.get(f"{base}/.well-known/jwks.json", verify=context,
                         timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_cookies_are_secure_and_hsts_sent_only_with_tls(server_url, settings, tmp_path):
    cert, key = self_signed(tmp_path)
    with own_warehouse(server_url, "hub_test_cookies") as url:
        for tls in (True, False):
            _probe(settings.model_copy(update={"tls_certfile": cert if tls else None,
                                               "tls_keyfile": key if tls else None}), url, tls)


def _probe(served, url: str, expected: bool) -> None:
    from api.main import create_app

    with TestClient(create_app(served, url)) as api:
        # The console's sign-in start sets a real cookie (its flow's state and verifier).
        answer = api.get("/console/signin", follow_redirects=False)
    assert answer.status_code == 303 and "hub_console_flow=" in answer.headers["set-cookie"]
    assert ("; secure" in answer.headers["set-cookie"].lower()) is expected
    assert ("strict-transport-security" in answer.headers) is expected


def test_serve_refuses_a_tls_key_or_hub_key_others_can_read(server_url, tmp_path):
    cert, key = self_signed(tmp_path)
    with own_warehouse(server_url, "hub_test_tls_keys") as url:
        env = {"HUB_HOME": str(tmp_path / "home"), "HUB_DATABASE_URL": url}
        half = hub("serve", "--ssl-certfile", str(cert), env=env)
        assert half.returncode == 2 and "TLS needs both a certificate and its key" in half.stderr
        gone = hub("serve", "--ssl-certfile", str(cert), "--ssl-keyfile", "nope.pem", env=env)
        assert gone.returncode == 2 and "TLS file nope.pem does not exist" in gone.stderr
        key.chmod(0o644)
        exposed = hub("serve", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), env=env)
        assert exposed.returncode == 2, exposed.stderr
        assert f"key file {key} is readable by others (mode 0644)" in exposed.stderr
        assert "Traceback" not in exposed.stderr
        assert hub("audit", "public-key", env=env).returncode == 0  # creates the ledger key
        ledger_key = tmp_path / "home" / "keys" / "audit-ed25519.pem"
        assert ledger_key.stat().st_mode & 0o777 == 0o600
        ledger_key.chmod(0o640)
        refused = hub("serve", env=env)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert f"key file {ledger_key} is readable by others (mode 0640)" in refused.stderr


def test_backup_key_file_must_be_private(server_url, tmp_path):
    key_file = tmp_path / "backup.key"
    key_file.write_text("a long passphrase\n")
    key_file.chmod(0o644)
    with own_warehouse(server_url, "hub_test_backup_key") as url:
        env = {"HUB_HOME": str(tmp_path / "home"), "HUB_DATABASE_URL": url,
               "HUB_BACKUP_KEY_FILE": str(key_file)}
        exposed = hub("backup", "create", "--to", str(tmp_path / "b"), env=env)
        assert exposed.returncode == 2 and "Traceback" not in exposed.stderr
        assert f"key file {key_file} is readable by others" in exposed.stderr
        key_file.chmod(0o600)
        beside = hub("backup", "create", "--to", str(tmp_path), env=env)
        assert beside.returncode == 2 and "Traceback" not in beside.stderr
        assert f"HUB_BACKUP_KEY_FILE {key_file} is inside the backup destination" in beside.stderr
        made = hub("backup", "create", "--to", str(tmp_path / "b"), env=env)
        assert made.returncode == 0, made.stderr
        assert "a long passphrase" not in "".join(
            p.read_bytes().decode(errors="replace") for p in (tmp_path / "b").rglob("*")
            if p.is_file())
