"""Row filters without a server: parsing, binding to a caller's attributes (role's win, a
missing one refuses), the words, and the SQL: identifiers composed, every value bound."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from access_policies import decide, load_policies
from access_policies.row_filter import describe, parse
from contracts import load_all
from hub.row_filters import clause
from tests.conftest import REPO

CONTRACTS = load_all(REPO / "contracts")
DATASET = "public_works.service_requests"
TODAY = date(2026, 12, 3)


def policy_with(tmp_path: Path, row_filter: str, attributes: str = "{}"):
    (tmp_path / "p.yaml").write_text(
        f"roles: {{r: {{department: x, scopes: [datasets:read], attributes: {attributes}}}}}\n"
        f"grants:\n  - {{id: g, dataset: {DATASET}, roles: [r], purpose: p,"
        f" row_filter: {row_filter}}}\n")
    return load_policies(tmp_path, CONTRACTS)


def test_conditions_are_anded_and_every_value_is_a_bound_parameter(tmp_path):
    hostile = "x'); drop table hub.clients; --"
    policy = policy_with(tmp_path, "{cd: {claim: district}, request_type: [Bulky Items, Other],"
                                   " status: Open}")
    decision = decide(policy, role="r", contract=CONTRACTS[DATASET], today=TODAY,
                      attributes={"district": hostile})
    condition, params = clause(decision.rows)
    text = condition.as_string(None)
    assert text == ('"cd" = %s::integer and "request_type" = any(%s::text[]) and '
                    '"status" = %s::text')
    assert params == [hostile, ["Bulky Items", "Other"], "Open"]


def test_in_dataset_reads_the_reference_table_with_its_where_bound(tmp_path):
    policy = policy_with(tmp_path, "{request_type: {in_dataset: public_works.request_routing,"
                                   " column: request_type, where: {department: {claim: d}}}}",
                         "{d: sanitation}")
    decision = decide(policy, role="r", contract=CONTRACTS[DATASET], today=TODAY)
    condition, params = clause(decision.rows)
    assert condition.as_string(None) == (
        '"request_type" in (select "ref"."request_type" from '
        '"shared"."public_works__request_routing" as ref where "ref"."department" = %s::text)')
    assert params == ["sanitation"]


def test_the_roles_attribute_wins_over_the_callers(tmp_path):
    policy = policy_with(tmp_path, "{cd: {claim: district}}", "{district: 7}")
    decision = decide(policy, role="r", contract=CONTRACTS[DATASET], today=TODAY,
                      attributes={"district": "1"})
    assert clause(decision.rows)[1] == ["7"]


def test_a_missing_attribute_refuses_and_names_it(tmp_path):
    policy = policy_with(tmp_path, "{cd: {claim: district}}")
    decision = decide(policy, role="r", contract=CONTRACTS[DATASET], today=TODAY)
    assert not decision.allowed and decision.rows is None
    assert decision.missing_attribute == "district"
    assert decision.reason == "grant g filters rows by the attribute 'district', which the " \
                              "caller lacks"


def test_a_grant_without_a_filter_reads_every_row(tmp_path):
    policy = policy_with(tmp_path, "null")
    decision = decide(policy, role="r", contract=CONTRACTS[DATASET], today=TODAY)
    assert decision.allowed and decision.rows is None
    assert clause(None)[0].as_string(None) == "true"


@pytest.mark.parametrize("raw, words", [
    ({"status": "Open"}, "rows where status equals Open"),
    ({"cd": [1, 2]}, "rows where cd is one of 1, 2"),
    ({"cd": {"claim": "district"}}, "rows where cd equals the caller's attribute district"),
])
def test_a_filter_in_words(raw, words):
    assert describe(parse(raw, DATASET, CONTRACTS)) == words
    assert describe(None) == "every row"


def test_a_filtered_grant_without_its_bound_filter_is_refused_not_served_whole(tmp_path):
    from api.errors import ApiError
    from api.rows import filter_of

    policy = policy_with(tmp_path, "{cd: {claim: district}}")
    decision = decide(policy, role="r", contract=CONTRACTS[DATASET], today=TODAY,
                      attributes={"district": "1"})
    unbound = dataclasses.replace(decision, rows=None)  # as if a path forgot to bind it
    with pytest.raises(ApiError) as caught:
        filter_of(unbound)
    assert caught.value.status == 403
    assert filter_of(decision) is decision.rows


def test_routes_go_to_departments_whose_roles_fill_the_filter_in():
    from flows.routing import routes_for

    policy = load_policies(REPO / "access_policies", CONTRACTS)
    routes = routes_for(policy, CONTRACTS[DATASET])
    # The dispatchers' roles carry their department; the council office needs a client's
    # district, so no department is told through its grant.
    assert sorted(r.department for r in routes) == [
        "community_beautification", "sanitation", "service_desk", "street_lighting",
        "water_and_power"]
    assert {r.grant_id for r in routes} == {"departments-read-routed-311"}
    assert routes_for(policy, CONTRACTS["transport.bike_counts"]) == []


def test_the_notice_links_to_the_change_feed_or_on_a_first_publish_to_the_rows():
    from flows.routing import change_link

    assert change_link(DATASET, 5) == f"/datasets/{DATASET}/changes?since_version=4"
    assert change_link(DATASET, 1) == f"/datasets/{DATASET}/rows"
