"""The console in a real browser (Playwright driving Debian's Chromium, headless), one
journey per role, against the real server and warehouse. Each main page is checked with
axe-core (no serious or critical violation) and, with HUB_TEST_SCREENSHOTS set, saved as a
screenshot (docs/screenshots/).
"""

from __future__ import annotations

import csv
import io
import os

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.conftest import count
from tests.console_support import SCREENSHOTS, signed_in

DATASET = "public_works.service_requests"
AXE = Axe()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def sign_in(page: Page, console, role: str) -> str:
    """Sign in through the form, as a person would; the person's subject (user:<name>)."""
    user, password = console.people[role]
    page.goto(f"{console.base}/console/signin")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return f"user:{user}"


def checked(page: Page, name: str) -> None:
    """No serious or critical accessibility violation; a screenshot for the docs."""
    found = AXE.run(page).response["violations"]
    bad = [(v["id"], v["impact"], v["help"]) for v in found
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {bad}"
    # Only when asked: a screenshot differs on every run (times, ids), and the committed
    # ones should change when a page does, not whenever the tests run.
    if os.environ.get("HUB_TEST_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=False)


def reads(url: str, subject: str, kind: str) -> int:
    return count(url, "select count(*) from audit.events where client_id = %s and kind = %s",
                 [subject, kind])


def test_the_public_sees_the_transparency_report_without_signing_in(console, page):
    analyst = signed_in(console, "transport_analyst")  # a read for the report to count
    assert analyst.get(f"/console/datasets/{DATASET}/rows").status_code == 200
    analyst.close()
    page.goto(console.base + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("read of each other's data")
    expect(page.locator("figure svg").first).to_be_attached()  # server-drawn charts
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    checked(page, "transparency")
    page.get_by_role("link", name="Sign in").click()  # the sign-in form is accessible too
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    checked(page, "sign-in")


def test_transport_analyst_finds_311_filters_sees_pseudonyms_and_downloads(console, page):
    me = sign_in(page, console, "transport_analyst")
    before = {k: reads(console.url, me, k) for k in ("catalog.read", "data.read", "data.export")}
    page.get_by_label("Search words").fill("service requests")
    page.get_by_role("button", name="Search").click()
    checked(page, "catalog")
    page.get_by_role("link", name="LA 311 service requests").click()
    address = page.locator("tr", has=page.get_by_role("cell", name="address", exact=True))
    expect(address).to_contain_text("masked: hash")
    checked(page, "dataset")
    page.get_by_role("link", name="Read the rows").click()
    page.get_by_label("Column").select_option("status")
    page.get_by_label("Operator").select_option("eq")
    page.get_by_label("Value").fill("Closed")
    page.get_by_role("button", name="Add filter").click()
    expect(page).to_have_url(f"{console.base}/console/datasets/{DATASET}/rows?status=eq.Closed")
    shown = _table(page)
    assert shown and all(r["status"] == "Closed" for r in shown)
    _same_as_the_api(console, page, shown)
    page.goto(page.url + "&select=sr_number,created_date,request_type,status,address,zip_code")
    expect(page.locator("table thead th")).to_have_count(6)  # select= of the grammar
    checked(page, "rows")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV of this query").click()
    sheet = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(sheet) >= len(shown) and all(r["status"] == "Closed" for r in sheet)
    assert {r["address"] for r in sheet} >= {r["address"] for r in shown}
    # One audit record per page read, like the API: catalog and dataset pages (catalog.read),
    # three rows pages (unfiltered, filtered, fewer columns), the API check (data.read), the
    # download (data.export). The filter form's redirect reads nothing.
    after = {k: reads(console.url, me, k) for k in before}
    assert after == {"catalog.read": before["catalog.read"] + 2,
                     "data.read": before["data.read"] + 4,
                     "data.export": before["data.export"] + 1}


def _table(page: Page) -> list[dict[str, str]]:
    heads = page.locator("table thead th").all_inner_texts()
    return [dict(zip(heads, row.locator("td").all_inner_texts(), strict=True))
            for row in page.locator("table tbody tr").all()]


def _same_as_the_api(console, page: Page, shown: list[dict[str, str]]) -> None:
    """The rows the page shows are the API's answer to this person, masked the same way:
    the address a keyed pseudonym, never the warehouse's value."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "hub_console")
    api = httpx.get(f"{console.base}/datasets/{DATASET}/rows",
                    params={"status": "eq.Closed", "limit": 50, "offset": 0},
                    headers={"Authorization": f"Bearer {token}"}).json()["rows"]
    assert [r["address"] or "" for r in api] == [r["address"] for r in shown]
    raw = count(console.url, "select count(*) from shared.public_works__service_requests"
                " where address = any(%s)", [[r["address"] for r in shown]])
    assert raw == 0


def test_a_dark_narrow_screen_is_not_broken(console, browser):
    """Dark colours and a phone's width: no serious contrast or layout violation, and the
    page does not scroll sideways (wide tables scroll inside their own region)."""
    context = browser.new_context(color_scheme="dark", viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(console.base + "/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide on a 375 px screen"
    checked(page, "transparency-dark-narrow")
    context.close()
