"""The demo's open release on the real 311 sample (published by the suite's first pass),
and the open data routes: no token, nothing the release rules did not allow, every read
counted without a word about the reader."""

from __future__ import annotations

import csv
import io

import psycopg
import pytest

from contracts import load_all
from contracts.suppression import margins
from hub.releases import publish_release
from tests.conftest import REPO, bearer, token_for
from tests.test_release_rules import exposed, levels

DATASET = "public_works.service_requests"
CONTRACTS = load_all(REPO / "contracts")
REQUESTS = CONTRACTS[DATASET]
K = REQUESTS.release.k
# What a cell of the release counts, straight from the published table.
TRUE_CELLS = """
select coalesce(nc_name, '(none)'), request_type, to_char(created_date, 'YYYY-MM'), count(*)
from shared.public_works__service_requests group by 1, 2, 3
"""


def stored(url: str) -> tuple[list[str], list[list]]:
    with psycopg.connect(url) as conn:
        return conn.execute("select columns, cells from releases.versions where dataset = %s"
                            " order by version desc limit 1", [DATASET]).fetchone()


def test_the_311_release_publishes_only_safe_cells(url: str, first_run: list) -> None:
    columns, cells = stored(url)
    assert columns == list(REQUESTS.release.columns)
    with psycopg.connect(url) as conn:
        base = {tuple(r[:3]): r[3] for r in conn.execute(TRUE_CELLS).fetchall()}
    table = margins(base, levels(3))
    published = {tuple(c[:3]): c[3] for c in cells}
    assert all(n >= K for n in published.values())
    assert all(table[key] == n for key, n in published.items())  # true counts, or absent
    small = {key for key, n in table.items() if n < K}
    assert small and not small & set(published)  # the sample has small cells: all absent
    hidden = set(table) - set(published)
    assert not exposed(base, published, hidden)
    # Small cells alone would not do on this sample: some would follow from the totals.
    assert exposed(base, {k: n for k, n in table.items() if k not in small}, small)
    assert published[(None, None, None)] == 9999  # the grand total is safe and shown
    medians = [c[4] for c in cells if c[4] is not None]
    assert medians and all(m >= 0 for m in medians)  # days from creation to closing


def test_a_change_under_k_is_not_published_again(url: str, first_run: list) -> None:
    """Differencing on the real table: three requests of a published cell go, the next
    release holds that cell back instead of showing a count three lower."""
    _, cells = stored(url)
    cell = next(c for c in cells if None not in c[:3] and c[3] >= K + 3)
    with psycopg.connect(url) as conn:  # rolled back: the served release stays as it was
        conn.execute(
            "delete from shared.public_works__service_requests where sr_number in (select"
            " sr_number from shared.public_works__service_requests where coalesce(nc_name,"
            " '(none)') = %s and request_type = %s limit 3)", cell[:2])
        publish_release(conn, REQUESTS, 999)
        [again] = conn.execute("select cells from releases.versions where dataset = %s"
                               " and dataset_version = 999", [DATASET]).fetchone()
        conn.rollback()
    keys = {tuple(c[:3]): c[3] for c in again}
    assert tuple(cell[:3]) not in keys
    assert all(n >= K for n in keys.values())


def test_open_routes_answer_without_a_token(app_client, first_run: list) -> None:
    listed = app_client.get("/open/datasets")
    assert listed.status_code == 200, listed.text
    [one] = [d for d in listed.json()["datasets"] if d["id"] == DATASET]
    assert one["k"] == K and one["licence"] == "CC-BY-4.0"
    assert {d["url"] for d in one["distributions"]} == {
        f"/open/datasets/{DATASET}?format=csv", f"/open/datasets/{DATASET}?format=json"}
    as_csv = app_client.get(f"/open/datasets/{DATASET}?format=csv")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert next(csv.reader(io.StringIO(as_csv.text))) == list(REQUESTS.release.columns)
    # The dataset's open page leads to residents' feedback and the department's answers.
    link = app_client.get(f"/open/datasets/{DATASET}").json()["feedback"]
    assert link == one["feedback"] == f"/open/feedback?dataset={DATASET}"
    answers = app_client.get(link)
    assert answers.status_code == 200 and "answers" in answers.json(), answers.text


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/open/datasets/human_resources.employee_salaries", 404, "not_found"),
    ("/open/datasets/no.such", 404, "not_found"),
    (f"/open/datasets/{DATASET}?format=xlsx", 400, "invalid_request"),
])
def test_open_route_errors(app_client, first_run: list, path: str, status: int,
                           code: str) -> None:
    answer = app_client.get(path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code and "Traceback" not in answer.text


def every_open_answer(app_client) -> list[tuple[list[str], list[list]]]:
    """(columns, rows) of every /open/datasets answer: the list, and each dataset it names
    in each of its distributions."""
    listed = app_client.get("/open/datasets").json()["datasets"]
    found = [(list(OPEN_LIST_FIELDS), [[d[f] for f in OPEN_LIST_FIELDS] for d in listed])]
    for dataset in listed:
        for dist in dataset["distributions"]:
            answer = app_client.get(dist["url"])
            assert answer.status_code == 200, answer.text
            if dist["format"] == "csv":
                header, *rows = list(csv.reader(io.StringIO(answer.text)))
                found.append((header, [[int(r[header.index("records")])] for r in rows]))
            else:
                body = answer.json()
                found.append((body["columns"], [[r["records"]] for r in body["rows"]]))
    return found


OPEN_LIST_FIELDS = ("id", "title", "department", "k", "dimensions", "measures", "columns")


def test_no_open_answer_holds_personal_columns_or_small_cells(app_client,
                                                              first_run: list) -> None:
    personal = {c.name for contract in CONTRACTS.values() for c in contract.columns
                if c.personal or c.free_text}
    answers = every_open_answer(app_client)
    assert len(answers) >= 3  # the list, the 311 release as CSV and as JSON
    for columns, rows in answers[1:]:
        assert not personal & set(columns), columns
        assert rows and all(row[0] >= K for row in rows)
    for dataset in app_client.get("/open/datasets").json()["datasets"]:
        assert not personal & set(dataset["dimensions"] + dataset["columns"])


def test_every_public_read_is_counted_without_the_reader(app_client, url: str,
                                                         first_run: list) -> None:
    with psycopg.connect(url) as conn:
        before = conn.execute("select coalesce(max(event_id), 0) from audit.events").fetchone()[0]
    app_client.get(f"/open/datasets/{DATASET}", headers={"User-Agent": "resident-browser"})
    with psycopg.connect(url) as conn:
        events = conn.execute(
            "select kind, dataset, request_id, source_address, client_id, role, department,"
            " detail from audit.events where event_id > %s and kind = 'open.read'",
            [before]).fetchall()
    assert len(events) == 1
    kind, dataset, *reader, detail = events[0]
    assert (kind, dataset) == ("open.read", DATASET) and reader == [None] * 5
    assert "resident-browser" not in str(detail) and "testclient" not in str(detail)
    report = app_client.get("/transparency/report").json()
    counted = [r for r in report["open_reads_by_month"] if r["dataset"] == DATASET]
    assert counted and sum(r["reads"] for r in counted) >= 1


def test_registration_refuses_a_release_breaking_the_rules(app_client, credentials) -> None:
    from tests.test_release_lint import with_release

    token = token_for(app_client, credentials, "public_works_engineer")
    text = with_release({"k": 10, "dimensions": [{"column": "latitude", "grid": 0.01}]})
    refused = app_client.post("/contracts", content=text.replace("version: 1.0.0",
                                                                 "version: 1.1.0", 1),
                              headers={**bearer(token), "Content-Type": "application/yaml"})
    assert refused.status_code == 400, refused.text
    assert "hubPublicRelease.dimensions[0].column: 'latitude' is personal" in \
        refused.json()["error_description"]
