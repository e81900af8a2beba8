"""The decision engine and masks, on the real policy file and crafted ones."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from pathlib import Path

import pytest

from access_policies import PolicyError, decide, load_policies
from access_policies.masking import MASKS, REDACTED, as_records
from contracts import load_all
from contracts.model import MASK_KINDS
from tests.conftest import REPO

TODAY = date(2026, 11, 23)
KEY = b"k" * 32


@pytest.fixture(scope="module")
def contracts():
    return load_all(REPO / "contracts")


@pytest.fixture(scope="module")
def policy(contracts):
    return load_policies(REPO / "access_policies", contracts)


@pytest.fixture(scope="module")
def contract(contracts):
    return contracts["public_works.service_requests"]


def masks_of(decision) -> dict[str, str | None]:
    return {c.name: c.mask for c in decision.columns}


def test_grant_masks_personal_columns_with_contract_defaults(policy, contract):
    decision = decide(policy, role="transport_analyst", contract=contract, today=TODAY)
    masks = masks_of(decision)
    assert decision.allowed and decision.grant.id == "transport-reads-311"
    assert masks["address"] == "hash"  # the grant's override
    assert masks["latitude"] == "null" and masks["zip_code"] == "redact"  # contract hubMask
    assert masks["status"] is None and masks["request_type"] is None


def test_unmasked_grant_shows_personal_columns(policy, contract):
    decision = decide(policy, role="public_works_engineer", contract=contract, today=TODAY)
    assert masks_of(decision)["address"] is None
    assert masks_of(decision)["mobile_os"] == "redact"  # not in its unmasked list


@pytest.mark.parametrize("role, today, reason", [
    ("health_inspector", TODAY, "no grant of public_works.service_requests"),
    ("nobody", TODAY, "unknown role"),
    ("transport_analyst", date(2028, 1, 1), "is not valid on 2028-01-01"),
    ("transport_analyst", date(2025, 12, 31), "is not valid on 2025-12-31"),
])
def test_denied_by_default(policy, contract, role, today, reason):
    decision = decide(policy, role=role, contract=contract, today=today)
    assert not decision.allowed and reason in decision.reason and decision.columns == ()


def test_personal_column_without_contract_mask_gets_type_default(contracts, policy, contract):
    from dataclasses import replace

    bare = replace(contract, columns=tuple(replace(c, mask=None) for c in contract.columns))
    masks = masks_of(decide(policy, role="transport_analyst", contract=bare, today=TODAY))
    assert masks["latitude"] == "null" and masks["street_name"] == "redact"


@pytest.mark.parametrize("text, message", [
    ("roles: {r: {department: x, scopes: [rows:write]}}", "unknown scope 'rows:write'"),
    ("roles: {r: {scopes: [datasets:read]}}", "roles.r.department: missing"),
    ("roles: {r: {department: x}}\ngrants: [{id: g, dataset: public_works.service_requests,"
     " roles: [ghost], purpose: p}]", "unknown role 'ghost'"),
    ("roles: {r: {department: x}}\ngrants: [{id: g, dataset: health.nope, roles: [r],"
     " purpose: p}]", "unknown dataset 'health.nope'"),
    ("roles: {r: {department: x}}\ngrants: [{id: g, dataset: public_works.service_requests,"
     " roles: [r], purpose: p, columns: [sr_number, ssn]}]", "has no column 'ssn'"),
    ("roles: {r: {department: x}}\ngrants: [{id: g, dataset: public_works.service_requests,"
     " roles: [r], purpose: p, masks: {address: blur}}]", "unknown mask 'blur'"),
    ("roles: {r: {department: x}}\ngrants: [{id: g, dataset: public_works.service_requests,"
     " roles: [r]}]", "grants.0.purpose: missing"),
])
def test_policy_mistakes_fail_at_load_time(tmp_path: Path, contracts, text, message):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(PolicyError, match=message):
        load_policies(tmp_path, contracts)


def test_every_mask_kind_a_contract_may_name_is_implemented():
    assert set(MASKS) == MASK_KINDS


@pytest.mark.parametrize("kind, value, expected", [
    ("redact", "2111 W BELLEVUE AVE", REDACTED),
    ("redact", None, None),
    ("null", 34.07, None),
    ("last4", "90026", "*0026"),
    ("year_only", datetime(2017, 12, 31, 23, 59), 2017),
    ("year_only", date(2018, 1, 5), 2018),
    ("bucket", 34.07, "30-40"),
    ("bucket", None, None),
])
def test_mask_functions(kind, value, expected):
    assert MASKS[kind](value, KEY) == expected


def test_pseudonym_is_keyed_and_stable():
    a1, a2 = MASKS["hash"]("2111 W BELLEVUE AVE", KEY), MASKS["hash"]("2111 W BELLEVUE AVE", KEY)
    other_key = MASKS["hash"]("2111 W BELLEVUE AVE", b"x" * 32)
    assert a1 == a2 and a1 != other_key and len(a1) == 16


@pytest.mark.parametrize("key", [KEY, b"", b"k" * 64, b"long key " * 20])  # <, =, > a block
@pytest.mark.parametrize("value", ["2111 W BELLEVUE AVE", 1234, "", "Größe ☃"])
def test_pseudonym_is_hmac_sha256_so_published_pseudonyms_never_change(key, value):
    expected = hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:16]
    assert MASKS["hash"](value, key) == expected


def test_as_records_masks_per_column_and_drops_trailing_values():
    names = ["sr_number", "address", "latitude"]
    rows = [("1-1", "2111 W BELLEVUE AVE", 34.0, 7), ("1-2", None, None, 7)]  # 7: a version
    assert as_records(names, rows, [None, "redact", "null"], KEY) == [
        {"sr_number": "1-1", "address": REDACTED, "latitude": None},
        {"sr_number": "1-2", "address": None, "latitude": None}]
    assert as_records(names, rows, [None, None, None], KEY)[0] == {
        "sr_number": "1-1", "address": "2111 W BELLEVUE AVE", "latitude": 34.0}
