"""The console's other journeys in the browser: a health inspector asks for the 311 data,
public works' data admin approves, the inspector reads; an engineer's breaking change is
refused with the list of breaks; an auditor finds the analyst's reads and no data rows."""

from __future__ import annotations

import psycopg
import yaml
from playwright.sync_api import expect

from hub.registry import latest_version
from tests.console_support import signed_in
from tests.test_console import DATASET, checked, sign_in


def test_inspector_requests_access_admin_approves_inspector_reads(console, browser):
    inspector = browser.new_context().new_page()
    me = sign_in(inspector, console, "health_inspector")
    inspector.goto(f"{console.base}/console/datasets/{DATASET}/rows")
    expect(inspector.get_by_role("heading", level=1)).to_have_text("Not allowed")
    inspector.get_by_role("link", name=f"Request access to {DATASET}").click()
    expect(inspector.get_by_label("Dataset")).to_have_value(DATASET)
    inspector.get_by_label("Purpose").fill("Cross-check complaints about restaurants' waste.")
    inspector.get_by_label("Days").fill("14")
    checked(inspector, "request-access")
    inspector.get_by_role("button", name="Send request").click()
    expect(inspector.locator("td.state").first).to_have_text("pending")

    admin = browser.new_context().new_page()
    sign_in(admin, console, "public_works_data_admin")
    admin.goto(f"{console.base}/console/approvals")
    checked(admin, "approvals")
    admin.get_by_role("button", name=f"Approve the request of {me} for {DATASET}").click()
    expect(admin.get_by_role("table").nth(1)).to_contain_text(me)

    inspector.goto(f"{console.base}/console/requests")
    expect(inspector.locator("td.state").first).to_have_text("approved")
    inspector.goto(f"{console.base}/console/datasets/{DATASET}/rows")
    expect(inspector.get_by_role("heading", level=1)).to_contain_text("Rows of")
    assert inspector.locator("table tbody tr").count() > 1
    inspector.context.close()
    admin.context.close()


def _broken_contract(url: str) -> tuple[str, str]:
    """The registered 311 contract with a column removed and only a minor version bump."""
    with psycopg.connect(url) as conn:
        latest = latest_version(conn, DATASET)
    doc = yaml.safe_load(latest.source_text)
    major, minor, *_ = (int(p) for p in latest.version.split("."))
    doc["version"] = f"{major}.{minor + 1}.0"
    columns = doc["schema"][0]["properties"]
    doc["schema"][0]["properties"] = [c for c in columns if c["name"] != "direction"]
    return yaml.safe_dump(doc, sort_keys=False), latest.version


def test_engineer_sees_a_breaking_change_refused_with_the_list_of_breaks(console, browser):
    text, registered = _broken_contract(console.url)
    page = browser.new_context().new_page()
    sign_in(page, console, "public_works_engineer")
    page.goto(f"{console.base}/console/contracts")
    page.get_by_label("Contract (YAML)").fill(text)
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".refused")).to_contain_text("Refused (breaking_change)")
    expect(page.locator("ul.breaks")).to_contain_text("direction")
    checked(page, "contract-refused")
    with psycopg.connect(console.url) as conn:  # nothing was registered
        assert latest_version(conn, DATASET).version == registered
    page.get_by_label("Contract (YAML)").fill("apiVersion: v3.0.2\nkind: DataContract\n")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("ul.problems li").first).to_be_visible()  # lint, by field path
    page.get_by_role("link", name="Quality", exact=True).click()  # their datasets' quality
    page.get_by_role("link", name="LA 311 service requests").click()
    expect(page.get_by_role("heading", name="Validation reports")).to_be_visible()
    expect(page.locator("p.onboarding strong")).to_be_visible()  # where it stands
    checked(page, "quality")
    page.context.close()


def test_auditor_finds_the_analysts_reads_and_sees_no_data_rows(console, browser):
    analyst = signed_in(console, "transport_analyst")
    seen = analyst.get(f"/console/datasets/{DATASET}/rows", params={"limit": 5})
    assert seen.status_code == 200
    subject = f"user:{console.people['transport_analyst'][0]}"
    with psycopg.connect(console.url) as conn:
        values = [r[0] for r in conn.execute(
            f"select sr_number from shared.{DATASET.replace('.', '__')}"
            " order by sr_number limit 5")]
    page = browser.new_context().new_page()
    sign_in(page, console, "auditor")
    page.get_by_label("Client or person").fill(subject)
    page.get_by_label("Kind").fill("data.read")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table tbody tr")
    expect(rows.first).to_contain_text(DATASET)
    assert all(subject in text for text in rows.all_inner_texts())
    checked(page, "audit")
    page.goto(f"{console.base}/console/audit/datasets/{DATASET}")
    expect(page.get_by_role("table")).to_contain_text(subject)  # the access report
    checked(page, "access-report")
    for path in ("/console/audit", f"/console/audit/datasets/{DATASET}",
                 "/console/audit/anomalies", "/console/audit/ledger"):
        page.goto(console.base + path)
        assert not any(v in page.content() for v in values), path
    expect(page.get_by_role("heading", name="Last signed checkpoint")).to_be_visible()
    checked(page, "ledger")
    page.get_by_role("link", name="Activity").click()  # reads and denials over time
    expect(page.locator("figure svg").first).to_be_attached()
    assert not any(v in page.content() for v in values)
    checked(page, "activity")
    page.context.close()
