"""The quarantine route honours a grant's row filter: an engineer whose grant is filtered to
one council district reads the held-back rows of that district only.

No shipped role has a filtered grant with contracts:write, so the test writes a copy of the
policy with one (a district engineer of public works) and serves an app on it. The expected
rows are read by hand-written SQL on the quarantine table.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from hub import clients
from tests.conftest import REPO, bearer

DATASET = "public_works.service_requests"
PROBES = {"quarantine-filter-9": 9, "quarantine-filter-1": 1}  # sr_number -> council district


def filtered_engineer_policies(folder: Path) -> Path:
    """The shipped policy folder plus a public works engineer role whose grant on the 311
    data is filtered to the district of the caller."""
    shutil.copytree(REPO / "access_policies", folder,
                    ignore=shutil.ignore_patterns("__pycache__", "*.py", "expected"))
    policy = yaml.safe_load((folder / "city.yaml").read_text())
    policy["roles"]["district_engineer"] = {
        "department": "public_works", "scopes": ["datasets:read", "contracts:write"],
        "description": "A district's public works engineer."}
    policy["grants"].append({
        "id": "district-engineer-311", "dataset": DATASET, "roles": ["district_engineer"],
        "purpose": "Repair the district's own held-back requests.", "columns": "all",
        "row_filter": {"cd": {"claim": "district"}}})
    (folder / "city.yaml").write_text(yaml.safe_dump(policy))
    return folder


@pytest.fixture
def probes(url: str):
    """Two held-back rows, one in district 9 and one in district 1 (removed after)."""
    with psycopg.connect(url) as conn:
        for number, district in PROBES.items():
            conn.execute(
                "insert into quarantine.public_works__service_requests"
                " (sr_number, cd, status, failed_rules, reasons) values (%s, %s, 'Nonsense',"
                " array['accepted_values(status)'], array['not an accepted value'])",
                [number, district])
    yield
    with psycopg.connect(url) as conn:
        conn.execute("delete from quarantine.public_works__service_requests"
                     " where sr_number = any(%s)", [list(PROBES)])


def test_the_quarantine_serves_an_engineer_only_the_rows_of_the_filter(
        settings, url, first_run, probes, tmp_path):
    from fastapi.testclient import TestClient

    from api.main import create_app

    own = settings.model_copy(update={"policies_dir": filtered_engineer_policies(
        tmp_path / "policies")})
    with psycopg.connect(url) as conn:
        client, secret = clients.add_client(conn, name=f"district-{uuid.uuid4().hex[:8]}",
                                            role="district_engineer",
                                            attributes={"district": "9"})
        expected = {n for (n,) in conn.execute(
            "select sr_number from quarantine.public_works__service_requests where cd = 9")}
    with TestClient(create_app(own, url)) as app:
        token = app.post("/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(client.client_id, secret)).json()["access_token"]
        answer = app.get(f"/datasets/{DATASET}/quarantine", headers=bearer(token),
                         params={"limit": 500})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    served = {row["sr_number"] for row in body["rows"]}
    assert "quarantine-filter-9" in served and "quarantine-filter-1" not in served
    assert served == expected and body["total"] == len(expected)
