"""Lint refuses a public release (customProperties.hubPublicRelease) that breaks the
release rules, with the reason: one case per error path, on the 311 contract with its
release changed. And `hub contracts lint` prints those reasons, one line each."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import yaml

from contracts import ContractError, load_contract_text
from contracts.release import parse_release
from tests.conftest import REPO
from tests.test_cli import hub

FILE = REPO / "contracts" / "public_works" / "service_requests.odcs.yaml"
DOC = yaml.safe_load(FILE.read_text())
WHERE = "customProperties.hubPublicRelease"
SHIPPED = load_contract_text(FILE.read_text(), FILE.name)


def with_release(release: Any, free_text: str | None = None) -> str:
    """The 311 contract's text with `release` as its hubPublicRelease (and `free_text`
    marked hubFreeText)."""
    doc = copy.deepcopy(DOC)
    props = [p for p in doc["customProperties"] if p["property"] != "hubPublicRelease"]
    doc["customProperties"] = props + [{"property": "hubPublicRelease", "value": release}]
    for column in doc["schema"][0]["properties"]:
        if column["name"] == free_text:
            column["customProperties"] = [{"property": "hubFreeText", "value": True}]
    return yaml.safe_dump(doc, sort_keys=False)


def dims(*dimensions: dict) -> dict:
    return {"k": 10, "dimensions": list(dimensions)}


AREA = {"column": "nc_name"}
CASES = {
    "k under 5": ({"k": 3, "dimensions": [AREA]}, None, f"{WHERE}.k", "write k: 5 or more"),
    "k not a number": ({"k": "ten", "dimensions": [AREA]}, None, f"{WHERE}.k",
                       "expected a valid integer"),
    "no dimensions": ({"k": 10, "dimensions": []}, None, f"{WHERE}.dimensions",
                      "list the columns to group by"),
    "unknown key": ({"k": 10, "dimensions": [AREA], "cells": 1}, None, f"{WHERE}.cells",
                    "unknown key 'cells'"),
    "unknown column": (dims({"column": "nc_nmae"}), None, f"{WHERE}.dimensions[0].column",
                       "did you mean nc_name?"),
    "personal dimension": (dims({"column": "zip_code"}), None,
                           f"{WHERE}.dimensions[0].column", "personal column is never a "
                           "dimension"),
    "free-text dimension": (dims({"column": "action_taken"}), "action_taken",
                            f"{WHERE}.dimensions[0].column", "free text is never published"),
    "key dimension": (dims({"column": "sr_number"}), None, f"{WHERE}.dimensions[0].column",
                      "every cell would be one record"),
    "exact timestamp": (dims({"column": "created_date"}), None, f"{WHERE}.dimensions[0].by",
                        "write by: day, week, month or year"),
    "by on a category": (dims({"column": "nc_name", "by": "month"}), None,
                         f"{WHERE}.dimensions[0].by", "remove by"),
    "two generalisations": (dims({"column": "cd", "bands": [1, 5], "grid": 2}), None,
                            f"{WHERE}.dimensions[0]", "generalised one way"),
    "bands out of order": (dims({"column": "cd", "bands": [5, 1]}), None,
                           f"{WHERE}.dimensions[0]", "ascending order"),
    "bands on text": (dims({"column": "nc_name", "bands": [1, 5]}), None,
                      f"{WHERE}.dimensions[0]", "apply to integer or number columns"),
    "published twice": (dims(AREA, {"column": "request_type", "label": "nc_name"}), None,
                        WHERE, "'nc_name' is published twice"),
    "unknown aggregate": ({**dims(AREA), "measures": [{"name": "m", "aggregate": "mode",
                                                       "column": "cd"}]}, None,
                          f"{WHERE}.measures[0].aggregate", "write one of count"),
    "aggregate without column": ({**dims(AREA), "measures": [{"name": "m",
                                                              "aggregate": "mean"}]}, None,
                                 f"{WHERE}.measures[0].column", "name the column"),
    "personal measure": ({**dims(AREA), "measures": [{"name": "m", "aggregate": "mean",
                                                      "column": "latitude"}]}, None,
                         f"{WHERE}.measures[0].column", "aggregates no personal column"),
    "count of a column": ({**dims(AREA), "measures": [{"name": "m", "aggregate": "count",
                                                       "column": "action_taken"}]},
                          "action_taken", f"{WHERE}.measures[0]", "remove column"),
    "percentile of text": ({**dims(AREA), "measures": [{"name": "m", "aggregate": "p90",
                                                  "column": "status"}]}, None,
                     f"{WHERE}.measures[0].column", "needs an integer or number column"),
    "since on numbers": ({**dims(AREA), "measures": [{"name": "m", "aggregate": "median",
                                                      "column": "cd", "since": "nc"}]}, None,
                         f"{WHERE}.measures[0].since", "name two of them"),
    "free text summed": ({**dims(AREA), "measures": [{"name": "m", "aggregate": "sum",
                                                      "column": "tbm_page"}]}, "tbm_page",
                         f"{WHERE}.measures[0].column", "free text is never published"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lint_refuses_a_release_breaking_the_rules(case: str) -> None:
    """The lint's release step on the 311 contract's columns (parsed once: a whole contract
    takes a fifth of a second to read, the step a millisecond)."""
    release, free_text, path, reason = CASES[case]
    columns = {c.name: dataclasses.replace(c, free_text=c.name == free_text)
               for c in SHIPPED.columns}
    problems: list[tuple[str, str]] = []
    assert parse_release(release, columns, SHIPPED.primary_key, problems) is None
    assert any(p == path and reason in m for p, m in problems), problems


def test_a_broken_release_fails_the_whole_contract() -> None:
    with pytest.raises(ContractError) as raised:
        load_contract_text(with_release(dims({"column": "action_taken"}), "action_taken"),
                           "service_requests.odcs.yaml")
    assert raised.value.problems == [(f"{WHERE}.dimensions[0].column", "'action_taken' is "
                                      "free text: free text is never published; group by a "
                                      "category column instead")]


def test_the_shipped_release_lints_and_free_text_needs_true_or_false() -> None:
    assert SHIPPED.release is not None and SHIPPED.release.k == 10
    assert SHIPPED.release.columns == ("neighbourhood_council", "request_type", "month",
                                        "records", "median_days_to_close")
    doc = copy.deepcopy(DOC)
    doc["schema"][0]["properties"][3]["customProperties"] = [
        {"property": "hubFreeText", "value": "yes"}]
    with pytest.raises(ContractError, match="hubFreeText: got 'yes'; write true or false"):
        load_contract_text(yaml.safe_dump(doc), FILE.name)


def test_hub_contracts_lint_prints_each_reason(tmp_path) -> None:
    personal = tmp_path / "personal.odcs.yaml"
    personal.write_text(with_release(dims({"column": "address"})))
    small = tmp_path / "small.odcs.yaml"
    small.write_text(with_release({"k": 2, "dimensions": [AREA]}))
    result = hub("contracts", "lint", str(personal), str(small), str(FILE))
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"personal.odcs.yaml: {WHERE}.dimensions[0].column: 'address' is personal "
            "(personal): a personal column is never a dimension") in result.stderr
    assert f"small.odcs.yaml: {WHERE}.k: got 2;" in result.stderr
    assert "Traceback" not in result.stderr
    assert "service_requests.odcs.yaml: ok" in result.stdout
