"""A truth table over every role × dataset × column, checked against real responses.

For each cell the policy engine says: denied, shown as stored, or masked (and how). The
API's answer must match: 403 for a denied role, and for each column of each row the stored
value, or exactly the mask of the stored value.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

from access_policies import decide, load_policies
from access_policies.masking import MASKS
from contracts import load_all
from tests.conftest import REPO, bearer, token_for

CONTRACTS = load_all(REPO / "contracts")
POLICY = load_policies(REPO / "access_policies", CONTRACTS)
CELLS = [(role, dataset) for role in sorted(POLICY.roles) for dataset in sorted(CONTRACTS)]
SAMPLE = 200


def stored_rows(url: str, dataset: str) -> dict[str, dict]:
    contract = CONTRACTS[dataset]
    key = contract.primary_key[0]
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"select * from shared.{contract.relation_name}"
                           f" order by {key} limit {SAMPLE}").fetchall()
    return {row[key]: row for row in rows}


def as_json(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


@pytest.mark.parametrize("role, dataset", CELLS)
def test_every_column_is_shown_masked_or_denied_as_the_policy_says(
        app_client, credentials, url, role, dataset):
    decision = decide(POLICY, role=role, contract=CONTRACTS[dataset],
                      today=datetime.now(UTC).date())
    token = token_for(app_client, credentials, role)
    response = app_client.get(f"/datasets/{dataset}/rows", params={"limit": SAMPLE},
                              headers=bearer(token))
    if "datasets:read" not in POLICY.roles[role].scopes or not decision.allowed:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    body = response.json()
    assert body["columns"] == [c.name for c in decision.columns]
    key = CONTRACTS[dataset].primary_key[0]
    stored, pseudonym_key = stored_rows(url, dataset), app_client.app.state.hub.pseudonym_key
    for row in body["rows"]:
        original = stored[row[key]]
        for column in decision.columns:
            expected = original[column.name]
            if column.mask is not None:
                expected = MASKS[column.mask](expected, pseudonym_key)
            assert row[column.name] == as_json(expected), (role, column.name, column.mask)


def test_the_table_covers_masked_unmasked_and_denied_cells():
    kinds = set()
    for role, dataset in CELLS:
        decision = decide(POLICY, role=role, contract=CONTRACTS[dataset],
                          today=datetime.now(UTC).date())
        kinds |= {c.mask or "shown" for c in decision.columns} or {"denied"}
    assert {"shown", "redact", "null", "hash", "denied"} <= kinds
