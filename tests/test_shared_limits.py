"""Two API instances on two ports, one warehouse: the limits, revocations and the audit
sealer behave as one hub (issue 18, stateless API replicas).

Each instance is a real uvicorn server with its own pools, listener and sealer process, as
two `hub serve` behind a load balancer would be. The limits are kept in the warehouse, or in
the Redis on 127.0.0.1:6379 (HUB_REDIS_URL): both are tested.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import redis
from pydantic import SecretStr

from api.main import create_app
from api.ratelimit import LimitsUnavailable, PostgresRateLimiter, RedisRateLimiter
from hub import clients, ledger
from hub.retention import verify_database
from hub.settings import Settings
from tests.conftest import RUN_TAG, free_port, own_warehouse, serving

REDIS = "redis://127.0.0.1:6379/0"
PER_MINUTE = 4  # one token back every 15 s: the test's requests all fall in one bucket
PER_USER = 3


@dataclass
class Pair:
    url: str  # the warehouse both serve
    settings: Settings
    a: httpx.Client
    b: httpx.Client

    def token(self, name: str) -> tuple[str, tuple[str, str]]:
        with psycopg.connect(self.url) as conn:
            client, secret = clients.add_client(conn, name=f"{name}-{RUN_TAG}",
                                                role="transport_analyst")
        credentials = (client.client_id, secret)
        answer = self.a.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=credentials)
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"], credentials


@pytest.fixture(scope="module", params=["postgres", "redis"])
def pair(request, server_url, tmp_path_factory) -> Iterator[Pair]:
    if request.param == "redis":
        redis.Redis.from_url(REDIS).ping()  # no Redis on 6379: the test fails here, loudly
    prefix = f"hub-test-{RUN_TAG}"
    with own_warehouse(server_url, "hub_limits") as url, ExitStack() as stack:
        settings = Settings(
            home=tmp_path_factory.mktemp("limits"), database_url=url, demo_sources=False,
            issuer="http://hub.test", rate_limit_per_minute=PER_MINUTE,
            signin_failures_per_user=PER_USER, audit_seal_seconds=0.2,
            redis_url=REDIS if request.param == "redis" else None, redis_prefix=prefix,
            _env_file=None)
        # Two apps, each with its own pools, listener and sealer: two instances.
        bases = [stack.enter_context(serving(create_app(settings, url), free_port()))
                 for _ in range(2)]
        a, b = (stack.enter_context(httpx.Client(base_url=base, timeout=30)) for base in bases)
        yield Pair(url, settings, a, b)
    if request.param == "redis":
        with redis.Redis.from_url(REDIS) as r:
            for key in r.scan_iter(f"{prefix}:*"):
                r.delete(key)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_one_clients_rate_limit_holds_across_both_instances(pair):
    token, _ = pair.token("limited")
    served = [api.get("/datasets", headers=bearer(token)).status_code
              for api in (pair.a, pair.b, pair.a, pair.b)]
    assert served == [200] * PER_MINUTE  # the bucket's tokens, spent on both
    for api in (pair.a, pair.b):  # per instance it would still have two left
        refused = api.get("/datasets", headers=bearer(token))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
    other, _ = pair.token("unlimited")  # the limit is the client's, not the instance's
    assert pair.b.get("/datasets", headers=bearer(other)).status_code == 200


def test_a_changed_limit_applies_at_once(pair):
    """Instances restarted with another HUB_RATE_LIMIT_PER_MINUTE: the bucket a lower limit
    emptied does not hold back the new one (it starts full), nor the reverse."""
    async def takes(per_minute: int, n: int) -> list[int | None]:
        if pair.settings.redis_url is None:
            async with await psycopg.AsyncConnection.connect(pair.url,
                                                             autocommit=True) as conn:
                limiter = PostgresRateLimiter(None, per_minute)
                return [await limiter.retry_after(client, conn) for _ in range(n)]
        limiter = RedisRateLimiter(REDIS, pair.settings.redis_prefix, per_minute)
        try:
            return [await limiter.retry_after(client) for _ in range(n)]
        finally:
            await limiter.aclose()

    client = f"changed-{RUN_TAG}"
    low = asyncio.run(takes(2, 3))
    assert low[:2] == [None, None] and low[2] >= 1
    assert asyncio.run(takes(600, 5)) == [None] * 5
    assert asyncio.run(takes(2, 3))[2] is not None  # lowered again: two, then a wait


def sign_in(api: httpx.Client, settings: Settings, username: str) -> httpx.Response:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).rstrip(b"=")
    return api.post("/oauth/authorize", data={
        "response_type": "code", "client_id": settings.console_client_id,
        "redirect_uri": next(iter(settings.redirect_uris())),
        "code_challenge": challenge.decode(), "code_challenge_method": "S256",
        "state": "s", "scope": "", "username": username, "password": "wrong"})


def test_failed_sign_ins_are_counted_across_both_instances(pair):
    username = f"guessed-{RUN_TAG}"
    tries = [sign_in(api, pair.settings, username).status_code
             for api in (pair.a, pair.b, pair.a)]
    assert tries == [401] * PER_USER
    for api in (pair.b, pair.a):  # refused without a password check, on either instance
        refused = sign_in(api, pair.settings, username)
        assert refused.status_code == 429
        assert "Too many failed sign-ins" in refused.text
    # Another user from the same address is still let through to the password check.
    assert sign_in(pair.b, pair.settings, f"other-{RUN_TAG}").status_code == 401


def test_a_token_revoked_through_one_instance_is_refused_by_the_other(pair):
    token, credentials = pair.token("revoked")
    assert pair.b.get("/datasets", headers=bearer(token)).status_code == 200  # B remembers it
    assert pair.a.post("/oauth/revoke", data={"token": token},
                       auth=credentials).status_code == 200
    deadline, answer = time.monotonic() + 1.0, None
    while time.monotonic() < deadline:
        answer = pair.b.get("/datasets", headers=bearer(token))
        if answer.status_code == 401:
            break
    assert answer is not None and answer.status_code == 401, answer and answer.text
    assert "revoked" in answer.json()["error_description"]


SEALERS = ("select pid, exists (select 1 from pg_locks l where l.pid = a.pid"
           " and l.locktype = 'advisory' and l.granted) from pg_stat_activity a"
           " where datname = current_database() and application_name = 'hub audit sealer'")


def sealers(url: str) -> list[tuple[int, bool]]:
    with psycopg.connect(url) as conn:
        return conn.execute(SEALERS).fetchall()


def test_one_sealer_chains_the_log_for_both_instances(pair):
    token, _ = pair.token("audited")
    for api in (pair.a, pair.b):  # audit records written by both instances
        api.get("/datasets/public_works.service_requests", headers=bearer(token))
    leader = wait_for(lambda: _one_leader(pair.url), "two sealers, one of them leading")
    sealed = wait_for(lambda: _all_sealed(pair, 0), "every record sealed")
    with psycopg.connect(pair.url, autocommit=True) as conn:  # the leader's session dies
        conn.execute("select pg_terminate_backend(%s)", [leader])
    pair.b.get("/datasets", headers=bearer(token))
    wait_for(lambda: _one_leader(pair.url), "a sealer leading again")  # one, not two
    wait_for(lambda: _all_sealed(pair, sealed), "the new records sealed by the new leader")


def _one_leader(url: str) -> int | None:
    found = sealers(url)
    leaders = [pid for pid, leads in found if leads]
    return leaders[0] if len(found) == 2 and len(leaders) == 1 else None


def _all_sealed(pair: Pair, more_than: int) -> int:
    """How many entries the chain holds, if it verifies, seals every record and holds more
    than `more_than`; else 0."""
    key = ledger.load_signing_key(pair.settings.keys_dir).public_key()
    with psycopg.connect(pair.url) as conn:
        result = verify_database(conn, key)
    done = result.ok and result.unsealed == 0 and result.entries > more_than
    return result.entries if done else 0


def wait_for(check, what: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
    return found


@pytest.mark.parametrize("pair", ["redis"], indirect=True)
def test_a_redis_that_does_not_answer_stops_the_start_in_one_line(pair, tmp_path):
    settings = pair.settings.model_copy(update={
        "redis_url": SecretStr(f"redis://user:secret@127.0.0.1:{free_port()}/0"),
        "home": tmp_path})
    with pytest.raises(LimitsUnavailable) as refused:
        create_app(settings, pair.url)
    message = str(refused.value)
    assert message.startswith("HUB_REDIS_URL=redis://127.0.0.1:") and "\n" not in message
    assert "secret" not in message and "unset HUB_REDIS_URL" in message


@pytest.mark.parametrize("pair", ["redis"], indirect=True)
def test_while_redis_is_down_requests_pass_and_sign_in_pauses(pair):
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), "a Redis of the test's own")
        settings = pair.settings.model_copy(update={
            "redis_url": SecretStr(f"redis://127.0.0.1:{port}/0")})  # same keys
        token, _ = pair.token("outage")
        with serving(create_app(settings, pair.url), free_port()) as base, \
                httpx.Client(base_url=base, timeout=30) as api:
            assert api.get("/datasets", headers=bearer(token)).status_code == 200
            server.terminate()
            server.wait()
            # A cache's outage does not refuse requests: far more than the limit pass.
            assert {api.get("/datasets", headers=bearer(token)).status_code
                    for _ in range(PER_MINUTE + 2)} == {200}
            # Sign-in, which guards passwords, is paused instead, saying why.
            paused = sign_in(api, settings, f"paused-{RUN_TAG}")
            assert paused.status_code == 503
            assert "cannot reach the Redis that counts failed sign-ins" in paused.text
    finally:
        server.kill()
        server.wait()


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port).ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize("pair", ["postgres"], indirect=True)
def test_an_offset_deeper_than_the_cap_is_refused_with_the_cursor_named(pair):
    token, _ = pair.token("deep")
    rows = "/datasets/public_works.service_requests/rows"
    deep = pair.a.get(rows, params={"offset": pair.settings.max_offset + 1},
                      headers=bearer(token))
    assert deep.status_code == 400
    assert deep.json()["error_description"].startswith(
        f"offset: at most {pair.settings.max_offset}; page deeper with cursor=")
    # At the cap the request goes on (to "nothing published yet" in this empty warehouse).
    at_cap = pair.a.get(rows, params={"offset": pair.settings.max_offset},
                        headers=bearer(token))
    assert at_cap.status_code == 404 and at_cap.json()["error"] == "not_published"



IDLE = ("insert into hub.rate_limits (client_id, capacity, tokens, granted, at)"
        " values (%s, 4, 0, false, now() - %s::interval)")


def test_buckets_idle_past_the_longest_window_are_pruned_now_and_then(server_url):
    """A bucket untouched for an hour is full again, the same as no row: the limiter deletes
    such rows (as the application role), at most once per prune_seconds, and keeps the rest."""
    async def take(client: str) -> int | None:
        async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, options="-c role=hub_app") as conn:
            return await limiter.retry_after(client, conn)

    with own_warehouse(server_url, "hub_prune") as url, \
            psycopg.connect(url, autocommit=True) as conn:
        conn.execute(IDLE, ["full-again", "61 minutes"])
        conn.execute(IDLE, ["a-feedback-address", "59 minutes"])  # may still be refilling
        limiter = PostgresRateLimiter(None, 2, prune_seconds=3600)
        assert [asyncio.run(take("new")) for _ in range(2)] == [None, None]
        assert _held(conn) == {"a-feedback-address", "new"}
        conn.execute(IDLE, ["later", "2 hours"])  # within prune_seconds: not yet
        assert asyncio.run(take("new")) >= 1  # and pruning kept the new client's count
        assert _held(conn) == {"a-feedback-address", "later", "new"}


def test_a_window_longer_than_pruning_allows_is_refused():
    with pytest.raises(ValueError, match="its buckets would be pruned before they are full"):
        PostgresRateLimiter(None, 5, window=7200.0)


def _held(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("select client_id from hub.rate_limits")}
