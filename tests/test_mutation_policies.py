"""The decision engine and the masks, on crafted grants and contracts: pure, no files read.

These pin what the mutation check (docs/mutation.md, `make mutation`) found the broader
tests in test_access_policies.py left open: expiry boundaries, which grant decides,
client grants, the exact mask per column and the corners of each mask function.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime

import pytest

from access_policies import Grant, Policy, Role, decide
from access_policies.masking import MASKS, REDACTED, as_records
from access_policies.row_filter import Bound, Claim, Condition, RowFilter
from contracts import Column, Contract

DAY = date(2026, 6, 15)
KEY = b"key" * 11


def contract(*columns: Column) -> Contract:
    return Contract("works.requests", "1.0.0", "Requests", "works", "o", "d", columns)


COLUMNS = (
    Column("id", "string", "text"),
    Column("address", "string", "text", classification="personal", mask="hash"),
    Column("lat", "number", "double precision", classification="pii"),
    Column("count", "integer", "integer", classification="sensitive"),
    Column("born", "date", "date", classification="personal"),
    Column("seen_at", "timestamp", "timestamptz", classification="personal"),
    Column("note", "string", "text", classification="personal"),
    Column("status", "string", "text", classification="internal"),
)
CONTRACT = contract(*COLUMNS)


def grant(gid: str = "g", **fields) -> Grant:
    base = {"dataset": "works.requests", "roles": frozenset({"analyst"}), "purpose": "planning",
            "columns": None}
    return Grant(gid, **(base | fields))


def policy(*grants: Grant) -> Policy:
    roles = {name: Role(name, "works", frozenset({"datasets:read"}))
             for name in ("analyst", "clerk")}
    return Policy(roles, grants)


def masks_of(decision) -> dict[str, str | None]:
    return {c.name: c.mask for c in decision.columns}


# ---------- who may read


def test_an_allowed_decision_names_its_grant_and_purpose():
    g = grant("works-reads")
    decision = decide(policy(g), role="analyst", contract=CONTRACT, today=DAY)
    assert decision.allowed and decision.grant is g
    assert decision.reason == "grant works-reads: planning"


def test_unknown_role_is_denied_by_name():
    decision = decide(policy(grant()), role="ghost", contract=CONTRACT, today=DAY)
    assert (decision.allowed, decision.reason, decision.grant) == (False, "unknown role 'ghost'",
                                                                   None)


def test_a_role_without_a_grant_of_this_dataset_is_denied():
    other = grant(dataset="health.visits")
    decision = decide(policy(other, grant(roles=frozenset({"clerk"}))), role="analyst",
                      contract=CONTRACT, today=DAY)
    assert decision.allowed is False
    assert decision.reason == "no grant of works.requests to role analyst"


@pytest.mark.parametrize("valid_from, valid_until, allowed", [
    (DAY, None, True),                  # the first day is inside the window
    (None, DAY, True),                  # so is the last: valid_until is inclusive
    (DAY, DAY, True),
    (date(2026, 6, 16), None, False),   # starts tomorrow
    (None, date(2026, 6, 14), False),   # ended yesterday
    (None, None, True),
    (date(2026, 1, 1), date(2026, 12, 31), True),
])
def test_grant_window_is_inclusive_at_both_ends(valid_from, valid_until, allowed):
    g = grant(valid_from=valid_from, valid_until=valid_until)
    assert decide(policy(g), role="analyst", contract=CONTRACT, today=DAY).allowed is allowed


def test_an_expired_grant_is_denied_naming_it_and_the_day():
    g = grant("old", valid_until=date(2026, 6, 14))
    decision = decide(policy(g), role="analyst", contract=CONTRACT, today=DAY)
    assert decision.allowed is False
    assert decision.reason == "grant old is not valid on 2026-06-15"
    assert decision.columns == () and decision.grant is None


def test_the_first_valid_grant_decides():
    expired = grant("expired", valid_until=date(2026, 1, 1), columns=frozenset({"id"}))
    first = grant("first", columns=frozenset({"id", "status"}))
    second = grant("second")
    decision = decide(policy(expired, first, second), role="analyst", contract=CONTRACT,
                      today=DAY)
    assert decision.grant is first and list(masks_of(decision)) == ["id", "status"]


def test_a_client_grant_from_an_approved_request_admits_that_client_only():
    request = grant("request-7", roles=frozenset(), clients=frozenset({"planner"}))
    mine = decide(policy(), role="clerk", contract=CONTRACT, today=DAY, client_id="planner",
                  extra=(request,))
    theirs = decide(policy(), role="clerk", contract=CONTRACT, today=DAY, client_id="other",
                    extra=(request,))
    anonymous = decide(policy(), role="clerk", contract=CONTRACT, today=DAY, extra=(request,))
    assert mine.allowed and mine.grant is request
    assert not theirs.allowed and not anonymous.allowed


def test_a_policy_grant_comes_before_a_request_grant():
    role_grant = grant("by-role", columns=frozenset({"id"}))
    request = grant("request-7", roles=frozenset(), clients=frozenset({"planner"}))
    decision = decide(policy(role_grant), role="analyst", contract=CONTRACT, today=DAY,
                      client_id="planner", extra=(request,))
    assert decision.grant is role_grant


# ---------- which rows: a grant's row filter bound to the caller's attributes

BY_DISTRICT = RowFilter((Condition("count", "integer", Claim("district")),
                         Condition("status", "text", "Open")))


def filtered_policy(role_attributes: dict[str, str]) -> Policy:
    roles = {"analyst": Role("analyst", "works", frozenset({"datasets:read"}),
                             role_attributes)}
    return Policy(roles, (grant("by-district", row_filter=BY_DISTRICT),))


def test_a_filtered_grant_binds_the_callers_attribute_and_keeps_every_column():
    decision = decide(filtered_policy({}), role="analyst", contract=CONTRACT, today=DAY,
                      attributes={"district": "7"})
    assert (decision.allowed, decision.reason, decision.grant.id) == (
        True, "grant by-district: planning", "by-district")
    assert decision.rows == Bound((("count", "integer", "eq"), ("status", "text", "eq")),
                                  ("7", "Open"))
    assert [c.name for c in decision.columns] == [c.name for c in COLUMNS]
    assert decision.missing_attribute is None
    assert dict(decision.attributes) == {"district": "7"}


def test_the_roles_attributes_win_and_the_callers_fill_in_the_rest():
    decision = decide(filtered_policy({"district": "3", "zone": "n"}), role="analyst",
                      contract=CONTRACT, today=DAY, attributes={"district": "7", "team": "a"})
    assert decision.rows.params == ("3", "Open")
    assert dict(decision.attributes) == {"district": "3", "zone": "n", "team": "a"}


def test_without_caller_attributes_the_roles_alone_bind_the_filter():
    decision = decide(filtered_policy({"district": "3"}), role="analyst", contract=CONTRACT,
                      today=DAY)
    assert decision.allowed and decision.rows.params == ("3", "Open")
    assert dict(decision.attributes) == {"district": "3"}


def test_a_missing_attribute_refuses_naming_it_and_the_grant():
    decision = decide(filtered_policy({"zone": "n"}), role="analyst", contract=CONTRACT,
                      today=DAY, attributes={"team": "a"})
    assert (decision.allowed, decision.rows, decision.columns) == (False, None, ())
    assert decision.reason == ("grant by-district filters rows by the attribute 'district', "
                               "which the caller lacks")
    assert decision.grant.id == "by-district" and decision.missing_attribute == "district"
    assert dict(decision.attributes) == {"zone": "n", "team": "a"}


def test_an_unfiltered_grant_reads_every_row_and_still_carries_the_attributes():
    roles = {"analyst": Role("analyst", "works", frozenset({"datasets:read"}), {"zone": "n"})}
    decision = decide(Policy(roles, (grant(),)), role="analyst", contract=CONTRACT, today=DAY,
                      attributes={"team": "a"})
    assert decision.allowed and decision.rows is None and decision.missing_attribute is None
    assert dict(decision.attributes) == {"zone": "n", "team": "a"}


# ---------- which columns, masked how


def test_every_column_masked_by_its_contract_or_its_type_default():
    decision = decide(policy(grant()), role="analyst", contract=CONTRACT, today=DAY)
    assert masks_of(decision) == {
        "id": None, "address": "hash", "lat": "null", "count": "null", "born": "year_only",
        "seen_at": "year_only", "note": "redact", "status": None}


def test_grant_masks_override_everything_and_unmasked_shows_personal_columns():
    g = grant(masks={"status": "redact", "address": "last4", "note": "bucket"},
              unmasked=frozenset({"address", "lat", "id"}))
    masks = masks_of(decide(policy(g), role="analyst", contract=CONTRACT, today=DAY))
    assert masks["status"] == "redact"  # an override masks even a non-personal column
    assert masks["address"] == "last4"  # and wins over unmasked
    assert masks["note"] == "bucket"
    assert masks["lat"] is None and masks["id"] is None
    assert masks["count"] == "null"  # personal, not unmasked: still masked


def test_a_column_list_keeps_contract_order_and_leaves_the_rest_out():
    g = grant(columns=frozenset({"status", "address"}))
    decision = decide(policy(g), role="analyst", contract=CONTRACT, today=DAY)
    assert [c.name for c in decision.columns] == ["address", "status"]
    assert decision.column("address").mask == "hash"
    assert decision.column("status").mask is None
    assert decision.column("lat") is None


# ---------- the mask functions


@pytest.mark.parametrize("value, expected", [
    ("90026", "*0026"), ("1234", "1234"), ("123", "123"), ("", ""), (1234567, "***4567"),
    (None, None),
])
def test_last4_shows_only_the_last_four_characters(value, expected):
    assert MASKS["last4"](value, KEY) == expected


@pytest.mark.parametrize("value, expected", [
    (0, "0-10"), (5, "0-10"), (9.99, "0-10"), (10, "10-20"), (14, "10-20"), (99, "90-100"),
    (100, "100-200"), (97974, "90000-100000"), (0.5, "0-10"), (-14, "-20--10"),
    ("250", "200-300"), (None, None),
])
def test_bucket_is_one_significant_digit_wide_and_at_least_ten(value, expected):
    assert MASKS["bucket"](value, KEY) == expected


@pytest.mark.parametrize("value", [0, "", False, "x"])
def test_redact_hides_every_value_even_a_falsy_one(value):
    assert MASKS["redact"](value, KEY) == REDACTED


@pytest.mark.parametrize("value, expected", [
    (date(1990, 2, 3), 1990), (datetime(2001, 1, 1, 0, 0), 2001), ("1990-02-03", None),
    (1990, None), (None, None),
])
def test_year_only_keeps_the_year_of_a_date_and_nothing_else(value, expected):
    assert MASKS["year_only"](value, KEY) == expected


@pytest.mark.parametrize("value", ["x", 0, None])
def test_null_drops_any_value(value):
    assert MASKS["null"](value, KEY) is None


def test_pseudonym_of_nothing_is_nothing_and_of_anything_an_hmac():
    assert MASKS["hash"](None, KEY) is None
    assert MASKS["hash"](0, KEY) == hmac.new(KEY, b"0", hashlib.sha256).hexdigest()[:16]


def test_as_records_applies_each_columns_own_mask_with_the_key():
    rows = [("a", "1 Main St", 12, 7), ("b", "2 Side Rd", None, 7)]
    records = as_records(["id", "address", "count"], rows, [None, "hash", "bucket"], KEY)
    assert records == [
        {"id": "a", "address": MASKS["hash"]("1 Main St", KEY), "count": "10-20"},
        {"id": "b", "address": MASKS["hash"]("2 Side Rd", KEY), "count": None}]


def test_as_records_refuses_masks_that_do_not_match_the_columns():
    with pytest.raises(ValueError):
        as_records(["id", "address"], [("a", "x")], [None], KEY)
