"""Catalog search (GET /datasets?q=): the caller's visible datasets ranked by PostgreSQL
full-text search, narrowed by department and quality; what the caller cannot see never
appears, however well it would match."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import bearer, token_for

# The latest check of each dataset, as the catalog's quality filter should read it.
LATEST = """
select distinct on (dataset) dataset,
       case when passed then 'passed' else 'failed' end
from hub.validation_reports order by dataset, created_at desc
"""


def _ids(app_client, credentials, role: str, **params) -> list[str]:
    answer = app_client.get("/datasets", params=params,
                            headers=bearer(token_for(app_client, credentials, role)))
    assert answer.status_code == 200, answer.text
    return [d["id"] for d in answer.json()["datasets"]]


def test_title_and_description_outrank_column_names(app_client, credentials):
    # "direction": bike counts' description says it; the 311 requests have a column so
    # named, with a description saying it.
    assert _ids(app_client, credentials, "transport_analyst", q="direction") == [
        "transport.bike_counts", "public_works.service_requests"]
    assert _ids(app_client, credentials, "transport_analyst", q="bicycle bridge") == [
        "transport.bike_counts"]


def test_column_descriptions_are_searched(app_client, credentials):
    # "Thomas Brothers Map" is only in the 311 dataset's column descriptions.
    assert _ids(app_client, credentials, "public_works_engineer", q="thomas brothers") == [
        "public_works.service_requests"]


def test_invisible_datasets_never_appear(app_client, credentials):
    # The 311 requests match "address" best, but the health inspector has no grant on them.
    everyone = _ids(app_client, credentials, "public_works_engineer", q="address")
    assert "public_works.service_requests" in everyone
    found = _ids(app_client, credentials, "health_inspector", q="address")
    assert found == ["health.restaurant_inspections"]
    assert set(found) <= set(_ids(app_client, credentials, "health_inspector"))


def test_department_filter(app_client, credentials):
    assert _ids(app_client, credentials, "transport_analyst", q="direction",
                department="transport") == ["transport.bike_counts"]
    assert _ids(app_client, credentials, "transport_analyst",
                department="public_works") == ["public_works.service_requests"]
    assert _ids(app_client, credentials, "transport_analyst", department="nowhere") == []


@pytest.mark.parametrize("role", ["transport_analyst", "public_works_data_admin"])
def test_quality_filter_follows_the_latest_check(app_client, credentials, url, role):
    visible = _ids(app_client, credentials, role)
    with psycopg.connect(url) as conn:
        latest = dict(conn.execute(LATEST).fetchall())
    by_quality = {quality: _ids(app_client, credentials, role, quality=quality)
                  for quality in ("passed", "failed", "unchecked")}
    for quality, found in by_quality.items():
        assert found == [d for d in visible if latest.get(d, "unchecked") == quality], quality
    assert sorted(sum(by_quality.values(), [])) == sorted(visible)


@pytest.mark.parametrize(("params", "said"), [
    ({"q": "   "}, "q: give at least one word to search for"),
    ({"q": "x" * 201}, "q: at most 200 characters"),
    ({"quality": "great"}, "query.quality: Input should be 'passed', 'failed' or 'unchecked'"),
])
def test_bad_search_is_refused_in_one_line(app_client, credentials, params, said):
    answer = app_client.get("/datasets", params=params, headers=bearer(
        token_for(app_client, credentials, "transport_analyst")))
    assert answer.status_code == 400
    assert answer.json()["error_description"].startswith(said)
