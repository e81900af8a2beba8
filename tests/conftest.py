"""Test fixtures: a real PostgreSQL, a fresh database per run, real Prefect/dbt/GX.

The server is HUB_TEST_DATABASE_URL when set (CI: the machine's PostgreSQL on 5432),
otherwise an embedded one started under the test run's temp dir. Either way this run gets
its own databases, created here and dropped at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from hub.bootstrap import bootstrap
from hub.settings import Settings
from hub.warehouse import drop_database, ensure_database, start_embedded, with_database

RUN_TAG = uuid.uuid4().hex[:8]

# The day the tests run on unless told otherwise (--clock, HUB_TEST_CLOCK): inside every
# shipped grant's window. The tests never see the real date.
REFERENCE_DAY = date(2026, 11, 23)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--clock", metavar="YYYY-MM-DD", default=None,
                     help="the day the hub believes it is (default HUB_TEST_CLOCK, else "
                     f"{REFERENCE_DAY}); grant dates in the policies move with it")


def pytest_configure(config: pytest.Config) -> None:
    # Prefect, dbt and GX read their environment when first imported (at collection).
    import tempfile

    from hub.runtime import QUIET_OFFLINE, quiet_libraries

    quiet_libraries()
    fix_test_clock(config)

    # Each pytest-xdist worker is a test session of its own: its own Prefect home too.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="hub-test-prefect-")
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="hub-test-prefect-"))
    for key, value in QUIET_OFFLINE.items():
        os.environ.setdefault(key, value)


def pytest_report_header(config: pytest.Config) -> str:
    return f"test clock: {test_day(config)} (set with --clock YYYY-MM-DD or HUB_TEST_CLOCK)"


def test_day(config: pytest.Config) -> date:
    text = config.getoption("--clock") or os.environ.get("HUB_TEST_CLOCK") or str(REFERENCE_DAY)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise pytest.UsageError(f"--clock/HUB_TEST_CLOCK: {text!r} is not a day; "
                                "write YYYY-MM-DD") from None


def fix_test_clock(config: pytest.Config) -> None:
    """Fix the hub's day here and, through HUB_CLOCK, in every server and command the tests
    start; off the reference day, the policies are a copy with their dates moved as far."""
    import tempfile

    from hub import clock

    day = test_day(config)
    clock.fix_today(day)
    os.environ["HUB_CLOCK"] = day.isoformat()
    if day != REFERENCE_DAY:
        copy = Path(tempfile.mkdtemp(prefix="hub-test-policies-")) / "access_policies"
        shift_policies(REPO / "access_policies", copy, day - REFERENCE_DAY)
        os.environ["HUB_POLICIES_DIR"] = str(copy)


def clock_env() -> dict[str, str]:
    """The test clock's variables, for a subprocess given an otherwise clean environment."""
    return {k: os.environ[k] for k in ("HUB_CLOCK", "HUB_POLICIES_DIR") if k in os.environ}


GRANT_DAY = re.compile(r"(valid_(?:from|until):\s*)(\d{4}-\d{2}-\d{2})")


def shift_policies(source: Path, target: Path, by: timedelta) -> None:
    """A copy of the policy folder whose grant windows are moved `by`: they relate to the
    test clock as the shipped ones relate to REFERENCE_DAY."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.glob("*.yaml"):
        path.write_text(GRANT_DAY.sub(
            lambda m: m[1] + (date.fromisoformat(m[2]) + by).isoformat(), path.read_text()))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("HUB_TEST_DATABASE_URL") or start_embedded(
        tmp_path_factory.mktemp("embedded-pg"))
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at HUB_TEST_DATABASE_URL={url!r}: {exc}")
    return url


@pytest.fixture(scope="session")
def warehouse_url(server_url: str) -> Iterator[str]:
    name = f"hub_test_{RUN_TAG}"
    url = ensure_database(server_url, name)
    yield url
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def source_url(server_url: str, settings: Settings) -> Iterator[str]:
    """Public works' own system: a separate database holding the real LA 311 sample."""
    from contracts import load_all
    from demo.sources import provision

    contract = load_all(settings.contracts_dir)["public_works.service_requests"]
    name = f"hub_test_{RUN_TAG}_public_works"
    url = provision(server_url, contract, settings.sample_data_dir, database=name)
    os.environ[contract.source.connection_env] = url
    yield url
    os.environ.pop(contract.source.connection_env, None)
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, warehouse_url: str) -> Settings:
    from hub.runtime import configure

    home = tmp_path_factory.mktemp("hub-home")
    # Test stand-ins for departments' systems run on loopback, which the guard otherwise
    # refuses (demo_sources is off, as in production).
    s = Settings(home=home, database_url=warehouse_url, demo_sources=False,
                 source_allowed_hosts="127.0.0.1", _env_file=None)
    configure(s)
    return s


@pytest.fixture(scope="session")
def prefect_harness(settings: Settings) -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def department_sources(tmp_path_factory: pytest.TempPathFactory,
                       server_url: str) -> Iterator[dict[str, str]]:
    """Transport's API, human resources' database, social services' and health's drop
    folders and environment's sensor feed, each a real server, folder or broker holding
    the bundled samples; their variables are set."""
    from tests.stand_ins import (
        beach_feed,
        bike_api,
        forget_feed,
        hr_database,
        inspections_drop,
        routing_drop,
        shelter_drop,
    )

    found = {"HUB_SOURCE_TRANSPORT_URL": bike_api(),
             "HUB_SOURCE_HUMAN_RESOURCES_URL": hr_database(server_url, RUN_TAG),
             "HUB_SOURCE_SOCIAL_SERVICES_DROP": shelter_drop(tmp_path_factory.mktemp("drop")),
             "HUB_SOURCE_HEALTH_DROP": inspections_drop(tmp_path_factory.mktemp("health")),
             "HUB_SOURCE_PUBLIC_WORKS_ROUTING_DROP": routing_drop(
                 tmp_path_factory.mktemp("routing")),
             "HUB_SOURCE_ENVIRONMENT_MQTT": beach_feed(f"hub-test-{RUN_TAG}")}
    os.environ.update(found)
    yield found
    for name in found:
        os.environ.pop(name, None)
    forget_feed(found["HUB_SOURCE_ENVIRONMENT_MQTT"])
    drop_database(server_url, f"hub_test_{RUN_TAG}_human_resources")


@pytest.fixture(scope="session")
def first_run(settings: Settings, source_url: str, department_sources: dict,
              prefect_harness: None) -> list:
    """The first pipeline pass over every dataset's real sample; later tests build on it."""
    from flows.pipeline import run_all

    return run_all(None, settings)


def report_of(reports: list, dataset: str):
    return next(r for r in reports if r.dataset == dataset)


def count(url: str, query: str, params: list | None = None) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params or []).fetchone()[0]


REFUSAL = "decision, status_code, client_id, role, dataset, rows_returned, columns"


def refused(url: str, request_id: str, columns: str = REFUSAL,
            seconds: float = 5.0) -> list[tuple]:
    """The audit record of a refused request. It is written at once, unless its client was
    refused for the same reason within the second: then the refusal log (hub/refusals.py)
    writes it when the second ends, its id in detail.request_ids. Waits that long at most."""
    deadline = time.monotonic() + seconds
    while True:
        with psycopg.connect(url) as conn:
            found = conn.execute(
                f"select {columns} from audit.events where decision = 'deny'"
                " and (request_id = %s or detail->'request_ids' ? %s)",
                [request_id, request_id]).fetchall()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


REPO = Path(__file__).resolve().parent.parent


# ---------- the API over the published warehouse, with one client per role


@pytest.fixture(scope="session")
def url(settings: Settings) -> str:
    return settings.database_url.get_secret_value()


@pytest.fixture(scope="session")
def app_client(settings: Settings, url: str, first_run: list):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(settings, url)) as client:
        yield client


@pytest.fixture(scope="session")
def credentials(url: str, settings: Settings, first_run: list) -> dict[str, tuple[str, str]]:
    from access_policies import load_policies
    from contracts import load_all
    from hub import clients

    made = {}
    with psycopg.connect(url) as conn:
        for role in load_policies(settings.policies_dir, load_all(settings.contracts_dir)).roles:
            client, secret = clients.add_client(conn, name=f"test-{role}", role=role,
                                                attributes=CLIENT_ATTRIBUTES.get(role))
            made[role] = (client.client_id, secret)
    return made


# The attributes of each role's test client, where a grant's row filter needs one of the
# client's own (tests/test_row_filters.py tries other values with clients of its own).
CLIENT_ATTRIBUTES = {"council_office": {"district": "13"}}


def token_for(app_client, credentials: dict, role: str) -> str:
    response = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=credentials[role])
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def own_warehouse(server_url: str, prefix: str) -> Iterator[str]:
    """A bootstrapped warehouse database of one test's own, dropped afterwards: nothing it
    writes lands in the shared warehouse that other tests count or verify."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    bootstrap(url)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@contextmanager
def own_public_works(server_url: str, settings: Settings, home: Path,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, str]]:
    """Settings for a warehouse of one test's own, fed by its own copy of public works' 311
    system (its variable pointing there for the test): the pipeline passes a test makes and
    the source rows it edits touch nothing another test reads. Yields (settings, source)."""
    from contracts import load_all
    from demo.sources import provision

    contract = load_all(settings.contracts_dir)["public_works.service_requests"]
    name = f"hub_src_{uuid.uuid4().hex[:8]}"
    source = provision(server_url, contract, settings.sample_data_dir, database=name)
    monkeypatch.setenv(contract.source.connection_env, source)
    try:
        with own_warehouse(server_url, "hub_own") as url:
            yield settings.model_copy(update={"database_url": SecretStr(url), "home": home}), \
                source
    finally:
        drop_database(server_url, name)


@contextmanager
def cloned(server_url: str, url: str, prefix: str) -> Iterator[str]:
    """A database of one test's own copied from the one at `url` (CREATE DATABASE ...
    TEMPLATE: a file copy, far faster than building it again), dropped afterwards.
    PostgreSQL copies only a database nobody is connected to: the template's sessions
    (left by the pass that built it) are ended first."""
    from psycopg import sql

    template = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("select pg_terminate_backend(pid, 5000) from pg_stat_activity"
                     " where datname = %s and pid <> pg_backend_pid()", [template])
        conn.execute(sql.SQL("create database {} template {}").format(
            sql.Identifier(name), sql.Identifier(template)))
    try:
        yield with_database(server_url, name)
    finally:
        drop_database(server_url, name)


# ---------- the web console: one real server per test session, one browser per module


@pytest.fixture(scope="session")
def console(settings: Settings, url: str, first_run: list):
    from tests.console_support import running_console

    with running_console(settings, url) as served:
        yield served


# Per module, not per session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and other modules' tests call asyncio.run().
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from tests.console_support import chromium

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


# ---------- an app served on a real port, for tests that need sockets, not a TestClient


def flat_routes(routes: list) -> list:
    """Every route of an app, those of included routers too: FastAPI keeps an included
    router as one entry holding the router's own routes."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += flat_routes(inner.routes) if inner is not None else [route]
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app, port: int) -> Iterator[str]:
    """`app` served by uvicorn in a thread on `port` until the block ends; yields its base URL.
    Fails if it has not started within 60 s."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start within 60 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
