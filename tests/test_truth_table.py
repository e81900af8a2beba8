"""Who sees what, every role × dataset × column: the API's real answers against the truth
table written by hand (access_policies/expected/city.yaml), not against the engine that
serves them. Each served value is checked against the warehouse, read here by plain SQL.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from access_policies import load_policies
from access_policies.expectations import (
    DENIED,
    EXPECTED_FILE,
    HIDDEN,
    MASKED,
    VISIBLE,
    Access,
    compare,
    load_expectations,
)
from contracts import Contract, load_all
from tests.conftest import REFERENCE_DAY, REPO, bearer, token_for

CONTRACTS = load_all(REPO / "contracts")
POLICY = load_policies(REPO / "access_policies", CONTRACTS)
EXPECTED = load_expectations(REPO / "access_policies" / EXPECTED_FILE)
# Every role the policy defines on every dataset: a cell missing from the file fails.
CELLS = [(role, dataset) for dataset in sorted(CONTRACTS) for role in sorted(POLICY.roles)]
PAGE = 1000  # the API's largest page: enough rows that each masked column meets real values

# What the API documents a masked value looks like; spelled out here, not imported from
# the masking code under test.
REDACTED = "[redacted]"
PSEUDONYM = re.compile(r"[0-9a-f]{16}")
BUCKET = re.compile(r"(-?[0-9.e+]+)-(-?[0-9.e+]+)")


def expected_access(role: str, dataset: str) -> Access:
    cells = EXPECTED.datasets.get(dataset, {})
    assert role in cells, f"{EXPECTED_FILE} says nothing of {role} on {dataset}"
    return cells[role]


# The rows each filtered cell may see, written by hand in SQL (not built by the code under
# test) for the attributes of the role's test client (tests/conftest.py CLIENT_ATTRIBUTES).
ROUTED = ("request_type in (select request_type from shared.public_works__request_routing"
          " where department = %s)")
ROW_FILTERS: dict[tuple[str, str], tuple[str, list]] = {
    ("public_works.service_requests", "sanitation_dispatcher"): (ROUTED, ["sanitation"]),
    ("public_works.service_requests", "beautification_dispatcher"):
        (ROUTED, ["community_beautification"]),
    ("public_works.service_requests", "street_lighting_dispatcher"): (ROUTED, ["street_lighting"]),
    ("public_works.service_requests", "water_power_dispatcher"): (ROUTED, ["water_and_power"]),
    ("public_works.service_requests", "service_desk_dispatcher"): (ROUTED, ["service_desk"]),
    ("public_works.service_requests", "council_office"): ("cd = %s", [13]),
}


def stored_page(url: str, contract: Contract, role: str) -> list[dict[str, Any]]:
    """The first page as the warehouse holds it for `role`: the API's default order is the
    key's, and a filtered cell's rows are those its filter allows."""
    key = contract.primary_key[0]
    where, params = ROW_FILTERS.get((contract.dataset_id, role), ("true", []))
    query = sql.SQL("select * from {} where {} order by {} limit %s").format(
        sql.Identifier("shared", contract.relation_name), sql.SQL(where), sql.Identifier(key))
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, [*params, PAGE]).fetchall()


def as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def read_page(app_client, credentials, role: str, dataset: str):
    # Ordered by the key explicitly: the page the default order gives, without the paging
    # cursor (tests/test_api.py checks cursors; here only who sees what is at stake).
    key = CONTRACTS[dataset].primary_key[0]
    token = token_for(app_client, credentials, role)
    return app_client.get(f"/datasets/{dataset}/rows", params={"limit": PAGE, "order": key},
                          headers=bearer(token))


def assert_masked(kind: str, shown: Any, raw: Any) -> None:
    """`shown` is `raw` masked as `kind` says, checked by what each mask promises."""
    if kind == "null" or raw is None:  # a missing value stays missing under every mask
        assert shown is None
    elif kind == "redact":
        assert shown == REDACTED
    elif kind == "hash":
        assert isinstance(shown, str) and PSEUDONYM.fullmatch(shown) and shown != str(raw)
    elif kind == "bucket":
        low, high = map(float, BUCKET.fullmatch(shown).groups())
        assert low <= float(raw) < high and high - low >= 10
    elif kind == "last4":
        text = str(raw)
        assert shown == "*" * max(len(text) - 4, 0) + text[-4:]
    elif kind == "year_only":
        assert shown == raw.year
    else:
        pytest.fail(f"no check for mask {kind!r}: add one")


def assert_row(row: dict[str, Any], original: dict[str, Any], access: Access) -> None:
    for column, view in access.columns.items():
        if view == VISIBLE:
            assert row[column] == as_json(original[column]), column
        elif view != HIDDEN:
            try:
                assert_masked(view.removeprefix(MASKED), row[column], original[column])
            except AssertionError:
                pytest.fail(f"{column}: {row[column]!r} is not {original[column]!r} {view}")


def assert_pseudonyms_link(rows: list[dict], stored: list[dict], column: str) -> None:
    """One pseudonym per value and one value per pseudonym: reports link up, nothing else."""
    pairs = {(s[column], r[column]) for r, s in zip(rows, stored, strict=True)
             if s[column] is not None}
    assert len({raw for raw, _ in pairs}) == len(pairs) == len({token for _, token in pairs})


@pytest.mark.parametrize("role, dataset", CELLS)
def test_the_api_serves_each_role_what_the_truth_table_says(
        app_client, credentials, url, role, dataset):
    access = expected_access(role, dataset)
    response = read_page(app_client, credentials, role, dataset)
    if access.columns is None:
        assert response.status_code == 403, response.text[:500]
        assert "rows" not in response.json()
        return
    assert response.status_code == 200, response.text[:500]
    contract, body = CONTRACTS[dataset], response.json()
    stored = stored_page(url, contract, role)
    assert stored, f"{dataset} has no published rows: this cell would prove nothing"
    shown = [c.name for c in contract.columns if access.columns[c.name] != HIDDEN]
    assert body["columns"] == shown
    # Same order (the key's), same rows: each served row beside its stored original.
    assert len(body["rows"]) == len(stored)
    for row, original in zip(body["rows"], stored, strict=True):
        assert sorted(row) == sorted(shown)  # hidden columns absent, nothing extra
        assert_row(row, original, access)
    masked = [c for c in shown if access.columns[c].startswith(MASKED)]
    for column in masked:  # each mask met real values on this page
        assert any(s[column] is not None for s in stored), column
    for column in (c for c in masked if access.columns[c] == MASKED + "hash"):
        assert_pseudonyms_link(body["rows"], stored, column)
    again = read_page(app_client, credentials, role, dataset).json()
    assert again["rows"] == body["rows"]  # stable: pseudonyms and buckets do not drift


def test_every_filtered_cell_has_its_rows_written_by_hand():
    filtered = {(d, r) for d, roles in EXPECTED.rows.items() for r in roles}
    assert filtered == set(ROW_FILTERS)


def test_the_engine_agrees_with_the_truth_table():
    mismatches = compare(EXPECTED, POLICY, CONTRACTS, REFERENCE_DAY)
    assert mismatches == [], "\n".join(map(str, mismatches))


def test_the_truth_table_covers_every_outcome_and_every_dataset_has_a_reader():
    views = set()
    for dataset, cells in EXPECTED.datasets.items():
        readers = [role for role, access in cells.items() if not access.denied]
        assert readers and len(readers) < len(cells), dataset
        views |= {v for a in cells.values() for v in (a.columns or {DENIED: DENIED}).values()}
    assert {VISIBLE, HIDDEN, DENIED, "masked:hash", "masked:redact", "masked:null",
            "masked:bucket"} <= views
