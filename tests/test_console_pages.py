"""The console's pages over HTTP (no browser needed): each shows what the API answers the
same person, through the same functions. Catalog search ranks as `GET /datasets?q=` does."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.console_support import Console, signed_in


def _api(console: Console, client: httpx.Client, path: str, **params: str) -> httpx.Response:
    """The API asked with the console session's own token: the same person."""
    token = client.cookies["hub_console"]
    return httpx.get(console.base + path, params=params, timeout=30,
                     headers={"Authorization": f"Bearer {token}"})


def _catalog_ids(html: str) -> list[str]:
    return re.findall(r'<a href="/console/datasets/([^"/]+)">', html)


@pytest.mark.parametrize("params", [
    {"q": "direction"},  # ranked: bike counts' description outranks a 311 column's name
    {"q": "direction", "department": "transport"},
    {"department": "public_works"},
    {"quality": "passed"},
    {},
])
def test_catalog_search_ranks_as_the_api_does(console, params):
    client = signed_in(console, "transport_analyst")
    page = client.get("/console/catalog", params=params)
    assert page.status_code == 200, page.text[:300]
    api = _api(console, client, "/datasets", **params).json()["datasets"]
    assert _catalog_ids(page.text) == [d["id"] for d in api]
    if params == {"q": "direction"}:
        assert _catalog_ids(page.text) == ["transport.bike_counts",
                                           "public_works.service_requests"]
    client.close()


@pytest.mark.parametrize(("params", "says"), [
    ({"quality": "great"}, "quality: passed, failed or unchecked"),
    ({"q": "x" * 201}, "q: at most 200 characters"),
])
def test_a_catalog_search_that_cannot_be_run_says_what_to_fix(console, params, says):
    client = signed_in(console, "transport_analyst")
    page = client.get("/console/catalog", params=params)
    assert page.status_code == 400 and says in page.text and "Traceback" not in page.text
    client.close()
