"""Authorization code with PKCE for people signing in to the console: the whole round
trip, and each way a code or a verifier can be wrong."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from hub import users
from tests.conftest import bearer, count

REDIRECT = "http://127.0.0.1:8000/console/callback"
ROWS = "/datasets/public_works.service_requests/rows"


@pytest.fixture(scope="module")
def person(url) -> tuple[str, str]:
    name = f"dana-{secrets.token_hex(3)}"
    with psycopg.connect(url) as conn:
        password = users.add_user(conn, name, "transport_analyst")
    return name, password


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize(client, person, challenge: str, **changes) -> dict:
    params = {"response_type": "code", "client_id": "console", "redirect_uri": REDIRECT,
              "code_challenge": challenge, "code_challenge_method": "S256",
              "state": "xyz", "scope": "datasets:read"} | changes
    form = dict(params, username=person[0], password=person[1])
    response = client.post("/oauth/authorize", data=form, follow_redirects=False)
    return {"status": response.status_code, "location": response.headers.get("location", ""),
            "text": response.text}


def _code(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def _exchange(client, code: str, verifier: str, **changes):
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": "console", "code_verifier": verifier} | changes
    return client.post("/oauth/token", data=form)


def test_sign_in_form_is_served(app_client):
    _, challenge = _pkce()
    response = app_client.get("/oauth/authorize", params={
        "response_type": "code", "client_id": "console", "redirect_uri": REDIRECT,
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert response.status_code == 200 and 'name="password"' in response.text


def test_code_and_verifier_get_a_token_that_reads_as_the_person(app_client, person, url):
    verifier, challenge = _pkce()
    answer = _authorize(app_client, person, challenge)
    assert answer["status"] == 303 and answer["location"].startswith(REDIRECT)
    assert parse_qs(urlsplit(answer["location"]).query)["state"] == ["xyz"]
    token = _exchange(app_client, _code(answer["location"]), verifier)
    assert token.status_code == 200, token.text
    rows = app_client.get(ROWS, params={"limit": 1}, headers=bearer(token.json()["access_token"]))
    assert rows.status_code == 200
    assert count(url, "select count(*) from audit.events where kind = 'data.read'"
                      " and client_id = %s", [f"user:{person[0]}"]) == 1


@pytest.mark.parametrize("change, message", [
    ({"code_verifier": "x" * 50}, "code_verifier does not match"),
    ({"redirect_uri": "http://127.0.0.1:8000/other"}, "must be those of the authorization"),
    ({"client_id": "someone-else"}, "must be those of the authorization"),
])
def test_a_wrong_verifier_or_binding_is_invalid_grant(app_client, person, change, message):
    verifier, challenge = _pkce()
    code = _code(_authorize(app_client, person, challenge)["location"])
    response = _exchange(app_client, code, verifier, **change)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert message in response.json()["error_description"]


def test_a_code_works_once(app_client, person):
    verifier, challenge = _pkce()
    code = _code(_authorize(app_client, person, challenge)["location"])
    assert _exchange(app_client, code, verifier).status_code == 200
    again = _exchange(app_client, code, verifier)
    assert again.status_code == 400 and "already used" in again.json()["error_description"]


def test_an_expired_code_is_refused(app_client, person, url):
    verifier, challenge = _pkce()
    code = _code(_authorize(app_client, person, challenge)["location"])
    with psycopg.connect(url) as conn:
        conn.execute("update hub.auth_codes set expires_at = now() - interval '1 second'"
                     " where code_hash = %s", [hashlib.sha256(code.encode()).hexdigest()])
    response = _exchange(app_client, code, verifier)
    assert response.status_code == 400 and "expired" in response.json()["error_description"]


@pytest.mark.parametrize("change, error", [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": ""}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
])
def test_requests_without_s256_pkce_are_sent_back_with_an_error(app_client, person, change,
                                                                error):
    _, challenge = _pkce()
    answer = _authorize(app_client, person, challenge, **change)
    query = parse_qs(urlsplit(answer["location"]).query)
    assert answer["status"] == 303 and query["error"] == [error] and query["state"] == ["xyz"]


@pytest.mark.parametrize("change, message", [
    ({"client_id": "evil"}, "unknown client 'evil'"),
    ({"redirect_uri": "https://evil.example/steal"}, "redirect_uri is not registered"),
])
def test_unknown_client_or_redirect_is_never_redirected_to(app_client, person, change,
                                                           message):
    _, challenge = _pkce()
    answer = _authorize(app_client, person, challenge, **change)
    assert answer["status"] == 400 and answer["location"] == "" and message in answer["text"]


def test_a_wrong_password_shows_the_form_again_and_is_audited(app_client, person, url):
    _, challenge = _pkce()
    answer = _authorize(app_client, (person[0], "not-it"), challenge)
    assert answer["status"] == 401 and "wrong password" in answer["text"]
    assert count(url, "select count(*) from audit.events where kind = 'login.denied'"
                      " and client_id = %s", [f"user:{person[0]}"]) >= 1


def test_a_removed_users_tokens_stop_working(app_client, url):
    with psycopg.connect(url) as conn:
        password = users.add_user(conn, "leaving", "transport_analyst")
    verifier, challenge = _pkce()
    code = _code(_authorize(app_client, ("leaving", password), challenge)["location"])
    token = _exchange(app_client, code, verifier).json()["access_token"]
    assert app_client.get(ROWS, headers=bearer(token)).status_code == 200
    with psycopg.connect(url) as conn:
        users.remove_user(conn, "leaving")
        with pytest.raises(users.UserError, match="no user named 'leaving'"):
            users.remove_user(conn, "leaving")
    assert app_client.get(ROWS, headers=bearer(token)).status_code == 401


def test_metadata_announces_the_code_flow(app_client):
    meta = app_client.get("/.well-known/oauth-authorization-server").json()
    assert meta["authorization_endpoint"].endswith("/oauth/authorize")
    assert "authorization_code" in meta["grant_types_supported"]
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_an_unknown_code_or_the_code_of_a_removed_user_is_invalid_grant(app_client, url):
    verifier, challenge = _pkce()
    unknown = _exchange(app_client, "no-such-code", verifier)
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    assert "unknown authorization code" in unknown.json()["error_description"]
    name = f"gone-{secrets.token_hex(3)}"
    with psycopg.connect(url) as conn:
        password = users.add_user(conn, name, "transport_analyst")
    code = _code(_authorize(app_client, (name, password), challenge)["location"])
    with psycopg.connect(url) as conn:
        users.remove_user(conn, name)  # between sign-in and the exchange
    response = _exchange(app_client, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "no longer exists" in response.json()["error_description"]


def test_a_persons_attributes_travel_in_their_token_and_filter_their_rows(app_client, url):
    name = f"councillor-{secrets.token_hex(3)}"
    with psycopg.connect(url) as conn:
        password = users.add_user(conn, name, "council_office", {"district": "4"})
    verifier, challenge = _pkce()
    answer = _authorize(app_client, (name, password), challenge)
    token = _exchange(app_client, _code(answer["location"]), verifier).json()["access_token"]
    rows = app_client.get(ROWS, params={"limit": 1000, "select": "cd"},
                          headers=bearer(token)).json()["rows"]
    assert rows and {r["cd"] for r in rows} == {4}
    assert len(rows) == min(1000, count(url, "select count(*) from"
                                             " shared.public_works__service_requests where cd = 4"))
