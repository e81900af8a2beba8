"""The console's doors: every page refuses a signed-out visitor (to the sign-in page) and a
role without the page's scope (a 403 page), swept over the app's own routes so that a new
page cannot be forgotten; forms without their CSRF token are refused; failed sign-ins are
throttled per user and per address and on record; errors are pages saying what to do."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.console.web import is_console
from hub import users
from tests.conftest import count, flat_routes
from tests.console_support import form_fields, signed_in

PUBLIC = {"/", "/console/signin", "/console/callback"}  # open to anyone, by design
SAMPLE = {"dataset_id": "public_works.service_requests", "request_id": str(uuid.UUID(int=7)),
          "feedback_id": "7"}
# For each scope, a role whose people lack it.
WITHOUT = {"datasets:read": "auditor", "audit:read": "transport_analyst",
           "contracts:write": "transport_analyst", "grants:admin": "transport_analyst"}


def console_routes(app) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(method, path, scopes) of every console route; scopes None: no guard at all."""
    found = []
    for route in flat_routes(app.routes):
        if not isinstance(route, APIRoute) or not is_console(route.path):
            continue
        guards = [d.call.console_scopes for d in route.dependant.dependencies
                  if hasattr(d.call, "console_scopes")]
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, route.path, guards[0] if guards else None))
    return found


def _path(template: str) -> str:
    return template.format(**SAMPLE)


def test_every_console_page_but_the_public_ones_is_guarded(console):
    routes = console_routes(console.app)
    assert len(routes) >= 8
    unguarded = [(m, p) for m, p, scopes in routes if scopes is None and p not in PUBLIC]
    assert unguarded == []


def test_a_signed_out_visitor_is_sent_to_sign_in_from_every_page(console):
    with httpx.Client(base_url=console.base, timeout=30) as client:
        for method, path, _scopes in console_routes(console.app):
            if path in PUBLIC:
                continue
            answer = client.request(method, _path(path))
            assert answer.status_code == 303, (method, path, answer.text[:300])
            assert answer.headers["location"].startswith("/console/signin?next="), path


def test_a_role_without_the_scope_gets_the_403_page_on_every_page(console):
    sessions: dict[str, httpx.Client] = {}
    checked = 0
    for method, path, scopes in console_routes(console.app):
        if path in PUBLIC or not scopes:
            continue
        role = WITHOUT[scopes[0]]
        client = sessions.setdefault(role, signed_in(console, role))
        answer = client.request(method, _path(path), follow_redirects=False)
        assert answer.status_code == 403, (method, path, answer.text[:300])
        assert "Not allowed" in answer.text and "this page needs scope" in answer.text
        assert "Traceback" not in answer.text
        checked += 1
    assert checked >= 6
    for client in sessions.values():
        client.close()


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(console):
    client = signed_in(console, "transport_analyst")
    token = client.cookies["hub_console"]
    for sent in ({}, {"csrf_token": "0" * 64}):
        refused = client.post("/console/signout", data=sent)
        assert refused.status_code == 403 and "security token" in refused.text
    assert client.get("/console/catalog").status_code == 200  # still signed in
    csrf = form_fields(client.get("/console/catalog").text)["csrf_token"]
    done = client.post("/console/signout", data={"csrf_token": csrf})
    assert done.status_code == 200 and "Signed out" in done.text
    # Sign-out revoked the token: the API refuses it too, and the console asks to sign in.
    api = httpx.get(f"{console.base}/datasets", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    again = httpx.get(f"{console.base}/console/catalog", cookies={"hub_console": token})
    assert again.status_code == 303 and "/console/signin" in again.headers["location"]


def test_a_users_mistake_is_a_page_saying_what_to_fix(console):
    client = signed_in(console, "transport_analyst")
    bad = client.get("/console/datasets/public_works.service_requests/rows",
                     params={"status": "zz.Open"})
    assert bad.status_code == 400 and "Traceback" not in bad.text
    assert "status" in bad.text and "Check what you entered" in bad.text
    missing = client.get("/console/no-such-page")
    assert missing.status_code == 404 and "Not found" in missing.text


# ---------- failed sign-ins: throttled per user and per address, and on record


@pytest.fixture
def strict_app(settings, url, first_run):
    """A fresh app with small limits, for one TestClient (each runs the app's lifespan)."""
    from api.main import create_app

    strict = settings.model_copy(update={"signin_failures_per_user": 3,
                                         "signin_failures_per_address": 6})
    return lambda: create_app(strict, url)


def _attempt(client: TestClient, user: str, password: str):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return client.post("/oauth/authorize", follow_redirects=False, data={
        "response_type": "code", "client_id": "console",
        "redirect_uri": "http://127.0.0.1:8000/console/callback",
        "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
        "state": "s", "username": user, "password": password})


def _person(url: str) -> tuple[str, str]:
    name = f"throttled-{secrets.token_hex(3)}"
    with psycopg.connect(url) as conn:
        return name, users.add_user(conn, name, "transport_analyst")


def test_failed_sign_ins_for_one_user_are_throttled_and_audited(strict_app, url):
    user, password = _person(url)
    with TestClient(strict_app(), client=("203.0.113.10", 4000)) as client:
        assert [_attempt(client, user, "wrong").status_code for _ in range(3)] == [401] * 3
        held = _attempt(client, user, password)  # even the right password waits
        assert held.status_code == 429 and "Too many failed sign-ins" in held.text
        assert int(held.headers["Retry-After"]) > 0
    assert count(url, "select count(*) from audit.events where kind = 'login.denied'"
                      " and client_id = %s and reason = 'too many failed sign-ins'",
                 [f"user:{user}"]) == 1


def test_failed_sign_ins_from_one_address_are_throttled(strict_app, url):
    user, password = _person(url)
    with TestClient(strict_app(), client=("203.0.113.11", 4000)) as client:
        for n in range(6):  # six different names: no single user reaches its limit
            assert _attempt(client, f"guess-{n}-{user}", "wrong").status_code == 401
        held = _attempt(client, user, password)  # a right password, from that address
        assert held.status_code == 429 and "from this address" in held.text


def test_a_callback_without_its_sign_in_is_refused_with_what_to_do(console):
    with httpx.Client(base_url=console.base, timeout=30) as client:
        alone = client.get("/console/callback", params={"code": "x", "state": "y"})
        assert alone.status_code == 400 and "open Sign in again" in alone.text
        started = client.get("/console/signin")  # the flow cookie is set now
        assert started.status_code == 303
        wrong = client.get("/console/callback", params={"code": "x", "state": "not-it"})
        assert wrong.status_code == 400 and "open Sign in again" in wrong.text
        refused = client.get("/console/callback", params={
            "error": "access_denied", "error_description": "no thanks"})
        assert refused.status_code == 400 and "sign-in was refused: no thanks" in refused.text


def test_bad_form_input_gets_one_line_saying_what_to_fix(console):
    client = signed_in(console, "transport_analyst")
    rows = f"/console/datasets/{SAMPLE['dataset_id']}/rows"
    csrf = form_fields(client.get("/console/requests/new").text)["csrf_token"]
    cases = [
        (client.get(rows, params={"limit": "ten"}), 400, "limit: a whole number"),
        (client.post("/console/requests", data={"csrf_token": csrf, "dataset": SAMPLE[
            "dataset_id"], "purpose": "short", "days": "3"}), 400, "purpose:"),
        (client.post("/console/requests", data={"csrf_token": csrf, "dataset": "nope.none",
                                                "purpose": "a long enough purpose", "days": "3"}),
         400, "unknown dataset"),
    ]
    for answer, status, text in cases:
        assert answer.status_code == status and text in answer.text, answer.text[-600:]
        assert "Traceback" not in answer.text
    client.close()
    admin = signed_in(console, "public_works_data_admin")
    token = form_fields(admin.get("/console/approvals").text)["csrf_token"]
    odd = admin.post(f"/console/approvals/{SAMPLE['request_id']}",
                     data={"csrf_token": token, "decision": "maybe"})
    assert odd.status_code == 400 and "decision: approve or reject" in odd.text
    unknown = admin.post(f"/console/approvals/{SAMPLE['request_id']}",
                         data={"csrf_token": token, "decision": "approve"})
    assert unknown.status_code == 404 and "no access request" in unknown.text
    auditor = signed_in(console, "auditor")
    assert "after: the event id" in auditor.get("/console/audit", params={"after": "x"}).text
    admin.close()
    auditor.close()


def test_the_console_bench_runs_and_refuses_a_wrong_password(console):
    import subprocess
    import sys

    from tests.conftest import REPO

    user, password = console.people["transport_analyst"]
    base = ["bench/console.py", "--base", console.base, "--user", user, "--rounds", "1"]
    wrong = subprocess.run([sys.executable, *base, "--password", "wrong"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "sign-in failed (401)" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    done = subprocess.run([sys.executable, *base, "--password", password], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1].split()
    assert [pair.split("=")[0] for pair in last] == [
        "transparency_ms", "catalog_ms", "dataset_ms", "rows_ms"]


def test_a_refused_console_page_is_on_record_like_a_refused_api_request(console):
    import re

    from tests.conftest import refused

    auditor = signed_in(console, "auditor")
    page = auditor.get(f"/console/datasets/{SAMPLE['dataset_id']}")
    auditor.close()
    assert page.status_code == 403
    request_id = re.search(r"Request id: <code>([0-9a-f]+)</code>", page.text)[1]
    subject = f"user:{console.people['auditor'][0]}"
    assert refused(console.url, request_id) == [
        ("deny", 403, subject, "auditor", SAMPLE["dataset_id"], 0, [])]
