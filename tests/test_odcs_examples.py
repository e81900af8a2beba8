"""The 18 official ODCS v3 example contracts (tests/data/odcs_examples, Apache-2.0): each is
read unchanged, and where the hub cannot honour it, every problem names its field."""

from __future__ import annotations

import pytest

from contracts import ContractError, load_contract, load_contract_text
from tests.conftest import REPO

EXAMPLES = REPO / "tests" / "data" / "odcs_examples"
# Fields each example cannot have as is: the hub publishes one table per contract, owned by
# a department (domain) and a team, with lowercase names, a primary key and rules it can run.
EXPECTED = {
    "all__full-example.odcs.yaml": ["schema"],
    "all__postgresql-adventureworks-contract.odcs.yaml": ["domain", "schema", "team.name"],
    "data-types__all-data-types.odcs.yaml": [
        "domain", "schema.0.properties", "schema.0.properties.8.logicalType",
        "schema.0.properties.9.logicalType", "team.name"],
    "fundamentals__table-column-description.odcs.yaml": [
        "domain", "schema.0.properties", "team.name"],
    "quality__column-accuracy.odcs.yaml": [
        "domain", "schema.0.name", "schema.0.properties", "schema.0.properties.0.name",
        "team.name"],
    "quality__column-completeness.odcs.yaml": [
        "domain", "schema.0.name", "schema.0.properties.0.name", "team.name"],
    "quality__column-custom.odcs.yaml": [
        "domain", "schema.0.name", "schema.0.properties.0.name", "schema.0.properties.0.quality.0",
        "schema.0.properties.0.quality.1", "team.name"],
    "quality__column-validity.odcs.yaml": [
        "domain", "schema.0.name", "schema.0.properties.0.quality.0", "team.name"],
    "roles__service-and-operational-roles.odcs.yaml": ["domain", "schema", "team.name"],
    "schema__all-schema-types.odcs.yaml": ["domain", "schema", "team.name"],
    "schema__kafka-schema.odcs.yaml": [
        "domain", "schema.0.name", "schema.0.properties", "team.name"],
    "schema__kafka-schemaregistry.odcs.yaml": [
        "domain", "schema.0.name", "schema.0.properties", "team.name"],
    "schema__table-column.odcs.yaml": ["domain", "schema.0.properties", "team.name"],
    "schema__table-columns-with-partition.odcs.yaml": ["domain", "team.name"],
    "server__azure-server.odcs.yaml": ["domain", "schema", "team.name"],
    "server__kafka-server.odcs.yaml": [
        "domain", "schema.0.name", "schema.0.properties", "team.name"],
    "sla__database-table-sla.odcs.yaml": ["domain", "schema", "team.name"],
    "stakeholders__basic-four-dpo.odcs.yaml": ["domain", "schema"],
}


def test_all_eighteen_examples_are_here():
    assert sorted(p.name for p in EXAMPLES.glob("*.odcs.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_gets_a_reason_per_field(name):
    with pytest.raises(ContractError) as caught:
        load_contract(EXAMPLES / name)
    assert sorted({path for path, _ in caught.value.problems}) == EXPECTED[name]
    for _, message in caught.value.problems:  # each says what is wrong and what to do
        assert any(word in message for word in ("write", "give", "express", "list", "mark",
                                                "name the"))


def test_an_example_needing_only_an_owner_registers_once_given_one():
    text = (EXAMPLES / "schema__table-columns-with-partition.odcs.yaml").read_text()
    contract = load_contract_text("domain: sales\nteam: {name: sales-data}\n" + text, "example")
    assert contract.dataset_id.startswith("sales.") and contract.primary_key


def test_sql_quality_rule_of_the_accuracy_example_is_read_and_rewritten():
    text = (EXAMPLES / "quality__column-accuracy.odcs.yaml").read_text()
    with pytest.raises(ContractError) as caught:
        load_contract_text(text, "example")
    # The sql rule itself passes the guard: no problem is reported on its query.
    assert not any("quality" in path for path, _ in caught.value.problems)
