"""The open side of the hub, parts 3 and 4 of issue 16: the DCAT-AP 3.0 catalog (validated
with pyshacl against the official shapes in api/dcat/shapes/) and residents' feedback end to
end (post, department answers, public answer with its response time, 413 / 429), read
without a token, audited without the reader, never returning a contact email or its hash.

One app over a warehouse of this module's own: one contract made open by a copy of the
contract folder, one published table for its temporal coverage. No pipeline pass needed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
import rdflib
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pyshacl import validate
from rdflib.compare import isomorphic
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF

from api.dcat.graph import ACCESS_RIGHT, FREQUENCY, accrual_frequency
from api.main import create_app
from contracts import load_all
from hub import clients
from hub import feedback as hub_feedback
from tests.conftest import REPO, bearer, flat_routes, own_warehouse
from tests.console_support import form_fields

SHAPES = REPO / "api" / "dcat" / "shapes"
OPEN = "public_works.service_requests"
RESTRICTED = "human_resources.employee_salaries"
EMAIL = "Resident.Of.Sherman.Oaks@example.org"
# A public release as issue 16 part 1 declares it (api/routes/open_data.py serves it).
RELEASE = """  - property: hubPublicRelease
    value:
      k: 10
      dimensions:
        - {column: created_date, generalise: month}
        - {column: request_type}
      measures: [count]
"""
DAYS = [date(2017, 3, 1), date(2017, 5, 20), date(2017, 4, 2)]


def opened(source: Path, target: Path) -> Path:
    """A copy of the contract folder in which OPEN declares a public release (unless the
    shipped contract does already)."""
    shutil.copytree(source, target)
    path = target / "public_works" / "service_requests.odcs.yaml"
    text = path.read_text()
    if "hubPublicRelease" not in text:
        path.write_text(text.replace("customProperties:\n", "customProperties:\n" + RELEASE, 1))
    return target


@pytest.fixture(scope="module")
def hub_app(server_url, settings, tmp_path_factory) -> Iterator[tuple[TestClient, str]]:
    contracts = opened(REPO / "contracts", tmp_path_factory.mktemp("open") / "contracts")
    with own_warehouse(server_url, "hub_test_open") as url:
        with psycopg.connect(url) as conn:  # OPEN as published: its days give the coverage
            conn.execute("create table shared.public_works__service_requests"
                         " (sr_number text, created_date timestamp)")
            conn.cursor().executemany("insert into shared.public_works__service_requests values"
                             " (%s, %s)", [(str(i), d) for i, d in enumerate(DAYS)])
        ours = settings.model_copy(update={
            "database_url": SecretStr(url), "contracts_dir": contracts,
            "feedback_max_chars": 300, "feedback_per_hour": 3,
            "open_publisher": "City of Los Angeles"})
        with TestClient(create_app(ours, url)) as client:
            yield client, url


def token(client: TestClient, url: str, role: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        made, secret = clients.add_client(conn, name=f"open-{role}-{uuid.uuid4().hex[:8]}",
                                          role=role)
    answer = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(made.client_id, secret))
    return bearer(answer.json()["access_token"])


def shapes(name: str) -> rdflib.Graph:
    return rdflib.Graph().parse(SHAPES / name)


def test_the_catalog_validates_against_the_official_dcat_ap_shapes(hub_app):
    client, _ = hub_app
    answer = client.get("/open/catalog")  # no token
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "text/turtle")
    graph = rdflib.Graph().parse(data=answer.text, format="turtle")
    for name in ("shacl__dcat-ap-SHACL.ttl", "html__shacl__shapes.ttl"):
        conforms, _, report = validate(graph, shacl_graph=shapes(name))
        assert conforms, (name, report)
    # Without the publisher's type the strict shapes refuse it: the check can fail.
    for publisher in graph.objects(None, DCTERMS.publisher):
        graph.remove((publisher, RDF.type, FOAF.Agent))
    assert not validate(graph, shacl_graph=shapes("shacl__dcat-ap-SHACL.ttl"))[0]


def dataset_node(graph: rdflib.Graph, dataset: str) -> rdflib.URIRef:
    return next(graph.subjects(DCTERMS.identifier, rdflib.Literal(dataset)))


def test_open_datasets_have_their_distributions_and_restricted_ones_the_way_to_ask(hub_app):
    client, _ = hub_app
    graph = rdflib.Graph().parse(data=client.get("/open/catalog").text, format="turtle")
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == len(load_all(REPO / "contracts"))
    node = dataset_node(graph, OPEN)
    assert graph.value(node, DCTERMS.accessRights) == ACCESS_RIGHT.PUBLIC
    urls = {str(graph.value(d, DCAT.downloadURL)): str(graph.value(d, DCAT.mediaType))
            for d in graph.objects(node, DCAT.distribution)}
    base = client.app.state.hub.settings.token_issuer
    assert urls == {f"{base}/open/datasets/{OPEN}?format=csv":
                    "http://www.iana.org/assignments/media-types/text/csv",
                    f"{base}/open/datasets/{OPEN}?format=json":
                    "http://www.iana.org/assignments/media-types/application/json"}
    period = graph.value(node, DCTERMS.temporal)
    assert (graph.value(period, DCAT.startDate).toPython(),
            graph.value(period, DCAT.endDate).toPython()) == (min(DAYS), max(DAYS))
    assert graph.value(node, DCTERMS.accrualPeriodicity) == FREQUENCY["15MIN"]
    assert str(graph.value(node, DCTERMS.conformsTo)) == f"{base}/contracts/{OPEN}"
    assert (graph.value(node, DCTERMS.publisher), RDF.type, FOAF.Agent) in graph
    closed = dataset_node(graph, RESTRICTED)
    assert graph.value(closed, DCTERMS.accessRights) == ACCESS_RIGHT.RESTRICTED
    assert list(graph.objects(closed, DCAT.distribution)) == []
    assert str(graph.value(closed, DCAT.landingPage)).endswith(
        f"/console/requests/new?dataset={RESTRICTED}")


def test_the_catalog_names_no_column_and_no_reader_is_on_record(hub_app):
    client, url = hub_app
    text = client.get("/open/catalog", headers={"X-Request-Id": "open-catalog-read"}).text
    words = {w for o in rdflib.Graph().parse(data=text, format="turtle").objects()
             if isinstance(o, rdflib.Literal) for w in re.findall(r"\w+", str(o))}
    personal = {c.name for contract in load_all(REPO / "contracts").values()
                for c in contract.columns if c.personal}
    assert personal and not personal & words
    with psycopg.connect(url) as conn:
        found = conn.execute("select kind, source_address, client_id, detail->>'route'"
                             " from audit.events where request_id = 'open-catalog-read'"
                             ).fetchall()
    assert found == [("open.read", None, None, "/open/catalog")]


def test_json_ld_by_format_or_accept_is_the_same_graph(hub_app):
    client, _ = hub_app
    turtle = rdflib.Graph().parse(data=client.get("/open/catalog").text, format="turtle")
    for answer in (client.get("/open/catalog", params={"format": "jsonld"}),
                   client.get("/open/catalog", headers={"Accept": "application/ld+json"})):
        assert answer.headers["content-type"].startswith("application/ld+json")
        assert "@context" in answer.json()
        assert isomorphic(rdflib.Graph().parse(data=answer.text, format="json-ld"), turtle)
    refused = client.get("/open/catalog", headers={"Accept": "application/xml"})
    assert refused.status_code == 406 and "?format=jsonld" in refused.json()[
        "error_description"]
    assert client.get("/open/catalog", params={"format": "xml"}).status_code == 400


def test_cron_schedules_become_eu_frequencies():
    assert [accrual_frequency(c) for c in ("*/15 * * * *", "5 * * * *", "30 2 * * *",
                                           "15 3 * * 0", "0 0 1 * *", "0 0 1 1 *", "*/7 * * * *",
                                           None)] == [
        "15MIN", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "ANNUAL", None, None]


def post(client: TestClient, **fields) -> object:
    body = {"dataset": OPEN, "kind": "wrong", "message": "The counts for March look low."}
    return client.post("/open/feedback", json=body | fields)


def test_feedback_end_to_end_answer_public_with_its_response_time(hub_app):
    client, url = hub_app
    seen = []  # every answer body, searched for the email and its hash at the end
    posted = post(client, contact_email=EMAIL, about="Sherman Oaks, March 2017")
    seen.append(posted.text)
    assert posted.status_code == 201, posted.text
    item = posted.json()["feedback_id"]
    engineer, inspector = token(client, url, "public_works_engineer"), token(
        client, url, "health_inspector")
    queue = client.get("/feedback", headers=engineer)
    seen.append(queue.text)
    mine = [i for i in queue.json()["items"] if i["feedback_id"] == item]
    assert mine and mine[0]["has_contact"] and mine[0]["about"] == "Sherman Oaks, March 2017"
    assert item not in [i["feedback_id"] for i in client.get(
        "/feedback", headers=inspector).json()["items"]]  # not health's queue
    other = client.post(f"/feedback/{item}/answer", headers=inspector,
                        json={"answer": "Not ours to answer."})
    assert other.status_code == 403 and "public_works" in other.json()["error_description"]
    done = client.post(f"/feedback/{item}/answer", headers=engineer,
                       json={"answer": "March was a partial month in the sample."})
    seen.append(done.text)
    assert done.status_code == 200, done.text
    again = client.post(f"/feedback/{item}/answer", headers=engineer,
                        json={"answer": "A second answer."})
    assert again.status_code == 409
    public = client.get("/open/feedback", params={"dataset": OPEN})  # no token
    seen.append(public.text)
    answer = next(a for a in public.json()["answers"] if a["feedback_id"] == item)
    assert answer["answer"] == "March was a partial month in the sample."
    assert answer["response_hours"] >= 0 and answer["answered_at"] >= answer["posted_at"]
    assert answer["message"] is None and answer["about"] is None  # the department chose so
    report = client.get("/transparency/report")
    seen.append(report.text)
    works = next(f for f in report.json()["feedback"] if f["department"] == "public_works")
    assert works["received"] >= 1 and works["answered"] >= 1
    assert works["median_hours_to_answer"] is not None
    _nowhere(seen, url, client)


def _nowhere(seen: list[str], url: str, client: TestClient) -> None:
    """Neither the email nor its hash in any answer; the table holds the hash only."""
    digest = hub_feedback.contact_hash(client.app.state.hub.feedback_key, EMAIL)
    marks = [EMAIL.lower(), digest.hex(), base64.b64encode(digest).decode().lower(),
             hashlib.sha256(EMAIL.lower().encode()).hexdigest()]
    for text in seen:
        assert not [m for m in marks if m in text.lower()], text
    with psycopg.connect(url) as conn:
        stored = conn.execute("select contact_hmac from hub.feedback where contact_hmac"
                              " is not null").fetchall()
        logged = conn.execute("select count(*) from audit.events where detail::text ilike %s",
                              [f"%{EMAIL}%"]).fetchone()[0]
    assert (digest,) in stored and logged == 0


def test_the_console_queue_answers_and_shows_the_message_if_asked(hub_app):
    client, url = hub_app
    item = post(client, kind="matters", message="Graffiti reports matter to our block.").json()
    engineer = token(client, url, "public_works_engineer")["Authorization"].split()[1]
    client.cookies.set("hub_console", engineer)
    try:
        page = client.get("/console/feedback")
        assert page.status_code == 200 and "Graffiti reports matter" in page.text
        csrf = form_fields(page.text)["csrf_token"]
        done = client.post(f"/console/feedback/{item['feedback_id']}", follow_redirects=False,
                           data={"csrf_token": csrf, "answer": "We publish them weekly.",
                                 "message_public": "yes"})
        assert done.status_code == 303
        short = client.post(f"/console/feedback/{item['feedback_id']}",
                            data={"csrf_token": csrf, "answer": "ok"})
        assert short.status_code == 400 and "answer:" in short.text
    finally:
        client.cookies.clear()
    public = client.get("/open/feedback", params={"dataset": OPEN}).json()["answers"]
    shown = next(a for a in public if a["feedback_id"] == item["feedback_id"])
    assert shown["message"] == "Graffiti reports matter to our block."


def test_oversized_and_malformed_posts_are_refused_with_what_to_fix(hub_app):
    client, _ = hub_app
    # Each from an address of its own: every post, refused or not, counts against the limit.
    senders = (TestClient(client.app, client=(f"192.0.2.{i}", 5000)) for i in range(1, 9))
    long = post(next(senders), message="x" * 301)
    assert long.status_code == 413 and "at most 300" in long.json()["error_description"]
    huge = next(senders).post("/open/feedback", content=b"{" + b" " * 10_000_000 + b"}",
                              headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    unknown = post(next(senders), dataset="nowhere.at_all")
    assert unknown.status_code == 404 and "/open/catalog" in unknown.json()["error_description"]
    bad = post(next(senders), kind="angry")
    assert bad.status_code == 400 and bad.json()["error_description"].startswith("kind:")
    blank = post(next(senders), message="   ")
    assert blank.status_code == 400 and blank.json()["error_description"].startswith("message:")
    not_json = next(senders).post("/open/feedback", content=b"hello")
    assert not_json.status_code == 400 and "send JSON" in not_json.json()["error_description"]


def test_a_flood_from_one_address_gets_429_and_others_still_post(hub_app):
    client, _ = hub_app
    flooder = TestClient(client.app, client=("198.51.100.7", 5000))
    answers = [post(flooder).status_code for _ in range(4)]  # HUB_FEEDBACK_PER_HOUR=3
    assert answers == [201, 201, 201, 429]
    refused = post(flooder)
    assert int(refused.headers["Retry-After"]) > 0 and "retry in" in refused.json()[
        "error_description"]
    assert post(TestClient(client.app, client=("198.51.100.8", 5000))).status_code == 201


def open_reads(app) -> list[str]:
    """Every GET route under /open/ of the app, its dataset parameter filled in."""
    return sorted(route.path.replace("{dataset_id}", OPEN) for route in flat_routes(app.routes)
                  if isinstance(route, APIRoute) and route.path.startswith("/open/")
                  and "GET" in route.methods)


def test_every_open_route_answers_without_a_token_and_records_no_reader(hub_app):
    client, url = hub_app
    paths = open_reads(client.app)
    assert {"/open/catalog", "/open/feedback"} <= set(paths)
    for path in paths:
        before = _open_reads(url)
        answer = client.get(path)
        assert answer.status_code not in (401, 403) and answer.status_code < 500, (
            path, answer.text)
        assert "www-authenticate" not in answer.headers, path
        if answer.status_code == 200:  # one more open.read, and nothing about the reader
            after = _open_reads(url)
            assert len(after) == len(before) + 1, path
            assert after[-1] == (None, None, None, None), path


def _open_reads(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select source_address, client_id, role, detail->>'user_agent'"
                            " from audit.events where kind = 'open.read' order by event_id"
                            ).fetchall()
