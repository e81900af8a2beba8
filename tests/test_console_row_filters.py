"""The truth table's row dimension in the console (over HTTP, no browser needed): a person
whose grant filters rows (a dispatcher by routing, a council office by district) sees in the
rows view, every page followed, exactly the rows the API serves the same person, which are
exactly those the filter allows by hand-written SQL; the CSV download holds no other."""

from __future__ import annotations

import csv
import html
import io
import re
import secrets

import httpx
import psycopg
import pytest

from hub import users
from tests.console_support import Console, sign_in_over
from tests.test_row_filters import BY_DISTRICT, ROUTED, all_pages, allowed

DATASET = "public_works.service_requests"
PEOPLE = [("sanitation_dispatcher", {}, ROUTED, "sanitation"),
          ("street_lighting_dispatcher", {}, ROUTED, "street_lighting"),
          ("council_office", {"district": "9"}, BY_DISTRICT, 9),
          ("council_office", {"district": "99"}, BY_DISTRICT, 99)]  # no such district


def person(console: Console, role: str, attributes: dict[str, str]) -> httpx.Client:
    """A person of `role` with `attributes` (`hub users add --attribute`'s function),
    signed in to the console."""
    name = f"rowdim-{secrets.token_hex(3)}"
    with psycopg.connect(console.url) as conn:
        password = users.add_user(conn, name, role, attributes)
    client = httpx.Client(base_url=console.base, follow_redirects=True, timeout=60)
    sign_in_over(client, name, password)
    return client


def console_rows(client: httpx.Client) -> list[str]:
    """The sr_number of every row the rows view shows, page after page (its Next link)."""
    found: list[str] = []
    path = f"/console/datasets/{DATASET}/rows?select=sr_number,request_type,cd&limit=1000"
    while path:
        page = client.get(path)
        assert page.status_code == 200, page.text[:300]
        head = re.findall(r'<th scope="col">(.*?)</th>', page.text)
        assert head == ["sr_number", "request_type", "cd"]
        body = page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        found += [html.unescape(re.findall(r"<td>(.*?)</td>", row, re.S)[0])
                  for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
                  if "No row matches" not in row]
        after = re.search(r'<a href="([^"]+)">Next page</a>', page.text)
        path = html.unescape(after.group(1)) if after else ""
        # Key order: the API's cursor, not offset= (capped by HUB_MAX_OFFSET), so a page
        # deep in a large dataset is reached at the cost of the first.
        assert not path or ("cursor=" in path and "offset=" not in path), path
    return found


def downloaded(client: httpx.Client) -> list[str]:
    answer = client.get(f"/console/datasets/{DATASET}/download", params={"select": "sr_number"})
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/csv")
    return [r["sr_number"] for r in csv.DictReader(io.StringIO(answer.text))]


@pytest.mark.parametrize("role, attributes, query, param", PEOPLE,
                         ids=[f"{p[0]}-{p[3]}" for p in PEOPLE])
def test_the_console_shows_and_downloads_exactly_the_rows_the_filter_allows(
        console, role, attributes, query, param):
    expected = allowed(console.url, query, param)
    client = person(console, role, attributes)
    shown = console_rows(client)
    assert len(shown) == len(set(shown))  # no row on two pages
    api = httpx.Client(base_url=console.base, timeout=60)  # the same person's token
    served = all_pages(api, client.cookies["hub_console"])
    assert set(shown) == {r["sr_number"] for r in served} == expected
    csv_keys = downloaded(client)
    assert len(csv_keys) == len(set(csv_keys)) and set(csv_keys) == expected
    if param != 99:
        total = allowed(console.url, "select sr_number from"
                        " shared.public_works__service_requests where %s", True)
        assert expected and len(expected) < len(total)  # the filter excludes rows
    api.close()
    client.close()
