"""The decision engine and masks, on the real policy file and crafted ones."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
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
     " roles: [r]}]", r"grants\[0\]\.purpose: missing; write why the roles read the dataset "
     r"\(every grant states it\)"),
    ("roles: {r: {department: x, scopes: rows}}", r"roles\.r\.scopes: got 'rows'; expected "
     "a valid list"),
    ("roles: {r: {department: x, title: Analyst}}", r"roles\.r\.title: unknown key 'title' "
     r"\(allowed: attributes, department, description, scopes\)"),
    ("roles: {r: {department: x}}\ngrants: [{id: g, dataset: public_works.service_requests,"
     " roles: [r], purpose: p, columns: [sr_numbr]}]", r"grants\[0\]\.columns: dataset "
     r"public_works.service_requests has no column 'sr_numbr'; did you mean sr_number\?"),
    ("roles: {r: {department: x}}\ngrants: [{id: g, dataset: public_works.service_requests,"
     " roles: [r], purpose: p, columns: some}]", r"grants\[0\]\.columns: got 'some'; write "
     "all, or a list"),
    ("grants: {g: {id: g}}", r"grants: got \{'g': \{'id': 'g'\}\}; expected a valid list"),
    ("- roles\n- grants\n", r"\(file\): got \['roles', 'grants'\]; write a mapping"),
    ("roles: [unclosed\n", r"\(file\): not valid YAML at line 2, column 1: expected ',' or ']'"),
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


GRANT = ("roles: {r: {department: x}}\n"
         "grants:\n"
         "  - {id: ok, dataset: public_works.service_requests, roles: [r], purpose: p}\n"
         "  - {id: g, dataset: public_works.service_requests, roles: [r], purpose: p, %s}\n")


@pytest.mark.parametrize("entry, path, message", [
    # A misspelt key used to load without a word: the grant then never expired.
    ("valid_untill: 2027-12-31", "grants[1].valid_untill",
     "unknown key 'valid_untill'; did you mean valid_until? (allowed: columns, dataset, id, "
     "masks, purpose, roles, row_filter, unmasked, valid_from, valid_until)"),
    # A misspelt row filter is refused, rather than served as every row.
    ("row_filtr: {status: Open}", "grants[1].row_filtr", "unknown key 'row_filtr'; did you "
     "mean row_filter?"),
    ("row_filter: {stauts: Open}", "grants[1].row_filter", "grant g: dataset "
     "public_works.service_requests has no column 'stauts'; did you mean status?"),
    ("row_filter: {status: []}", "grants[1].row_filter", "grant g: status: write a non-empty "
     "list of plain values"),
    ("row_filter: {status: {sql: 'true or 1=1'}}", "grants[1].row_filter", "grant g: status: got "
     "{'sql': 'true or 1=1'}; write a value, a list of values, {claim: <attribute>} or"),
    ("row_filter: {cd: {claim: 7}}", "grants[1].row_filter", "grant g: cd: got {'claim': 7}"),
    ("row_filter: x", "grants[1].row_filter", "got 'x'; write a mapping"),
    ("row_filter: {request_type: {in_dataset: public_works.routing, column: request_type}}",
     "grants[1].row_filter", "grant g: request_type: in_dataset: unknown dataset "
     "'public_works.routing'; known: "),
    ("row_filter: {request_type: {in_dataset: public_works.request_routing, column: kind}}",
     "grants[1].row_filter", "grant g: request_type: in_dataset public_works.request_routing "
     "has no column 'kind'"),
    ("row_filter: {request_type: {in_dataset: public_works.request_routing, column: "
     "request_type, where: {dept: x}}}", "grants[1].row_filter",
     "grant g: dataset public_works.request_routing has no column 'dept'"),
    ("row_filter: {request_type: {in_dataset: public_works.request_routing, column: "
     "request_type, where: {owner: {in_dataset: public_works.request_routing, column: owner}}}}",
     "grants[1].row_filter", "grant g: owner: the where of an in_dataset takes values, lists "
     "or claims, not another in_dataset"),
    ("row_filter: {request_type: {in_dataset: public_works.request_routing, column: "
     "request_type, join: x}}", "grants[1].row_filter", "grant g: request_type: write "
     "{in_dataset: <dataset>, column: <its column>, where: {...}}; unknown key 'join'"),
    ("valid_until: tomorrow", "grants[1].valid_until",
     "got 'tomorrow'; expected a valid date; write the last day the grant is valid as "
     "YYYY-MM-DD, unquoted"),
    # Read as a number, 2027 would be a Unix time: a day in 1970.
    ("valid_from: 2027", "grants[1].valid_from", "got 2027; expected a valid date"),
    ("valid_until: '2027-12-31'", "grants[1].valid_until", "got '2027-12-31'; expected a valid "
     "date; write the last day the grant is valid as YYYY-MM-DD, unquoted"),
    ("valid_from: 2027-01-01, valid_until: 2026-12-31", "grants[1]",
     "valid_until 2026-12-31 is before valid_from 2027-01-01: the grant would never be valid"),
    ("masks: {adress: hash}", "grants[1].masks", "dataset public_works.service_requests has no "
     "column 'adress'; did you mean address?"),
    ("masks: {address: blur}", "grants[1].masks.address", "unknown mask 'blur'; use one of"),
    ("id: 7", "grants[1].id", "got 7; expected a valid string; write a unique id, e.g. "
     "transport-reads-311 (every grant states it)"),
    ("roles: []", "grants[1].roles", "got []; expected at least 1 item(s); write a list of roles"),
    ("purpose: ''", "grants[1].purpose", "got ''; expected at least 1 character(s); write why"),
])
def test_a_grant_mistake_names_file_path_and_fix(tmp_path: Path, contracts, entry, path,
                                                  message):
    policy_file = tmp_path / "city.yaml"
    policy_file.write_text(GRANT % entry)
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path, contracts)
    assert f"{policy_file}: {path}: {message}" in str(caught.value), caught.value


def test_every_mistake_in_a_file_is_reported_at_once(tmp_path: Path, contracts):
    (tmp_path / "p.yaml").write_text(GRANT % "valid_untill: 2027-12-31, row_filtr: x")
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path, contracts)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "grants[1].valid_untill", "grants[1].row_filtr"]


def test_the_city_policy_loads_with_typed_dates_and_column_lists(policy):
    grants = {g.id: g for g in policy.grants}
    assert grants["transport-reads-311"].valid_until == date(2027, 12, 31)
    assert grants["transport-reads-311"].valid_from == date(2026, 1, 1)
    assert grants["transport-reads-311"].columns is None  # columns: all
    assert grants["budget-reads-salaries"].columns == frozenset({
        "employee_id", "name", "job_title", "department_name", "salary_or_hourly",
        "annual_salary", "hourly_rate"})
    assert policy.roles["auditor"].scopes == frozenset({"audit:read"})


def test_a_bad_policy_file_gets_one_line_per_problem_from_the_cli(tmp_path: Path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "city.yaml").write_text(GRANT % "valid_untill: 2027-12-31, row_filtr: x")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PREFECT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "hub_cli", "clients", "add", "planner", "--role", "r"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=clean | {"HUB_HOME": str(tmp_path / "home"), "HUB_POLICIES_DIR": str(policies)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {policies / 'city.yaml'}: grants[1].valid_untill: unknown key 'valid_untill'; "
        "did you mean valid_until? (allowed: columns, dataset, id, masks, purpose, roles, "
        "row_filter, unmasked, valid_from, valid_until)",
        f"{policies / 'city.yaml'}: grants[1].row_filtr: unknown key 'row_filtr'; did you "
        "mean row_filter? (allowed: columns, dataset, id, masks, purpose, roles, row_filter, "
        "unmasked, valid_from, valid_until)"]
