"""Great Expectations step: validate the candidate table against the contract's suite.

The whole suite runs with `BOOLEAN_ONLY` (cheap), slow expectations replaced by their
screens (contracts.mapping.GX_SCREENS); only expectations that failed there are run again,
in their exact form with `SUMMARY`, to decide and to count and show the offending values.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from contracts import Contract
from contracts.mapping import GX_SCREENS
from contracts.targets import to_gx_suite
from flows.checks import Failure, StepResult
from hub.warehouse import sqlalchemy_url

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def validate(warehouse_url: str, contract: Contract, schema: str = "candidate") -> StepResult:
    """Run the contract's expectations on `schema.<relation>`."""
    import great_expectations as gx

    # GX modules pin their own loggers to INFO on import; those lines are noise here.
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_postgres(
        name="warehouse", connection_string=sqlalchemy_url(warehouse_url, "psycopg2"))
    try:
        return _check(gx, context, source, contract, schema)
    finally:
        _close(source)


def _check(gx: Any, context: Any, source: Any, contract: Contract, schema: str) -> StepResult:
    asset = source.add_table_asset(name=contract.relation_name, schema_name=schema,
                                   table_name=contract.relation_name)
    batch = asset.add_batch_definition_whole_table("whole table")
    expectations = to_gx_suite(contract)["expectations"]
    quick = _run(gx, context, batch, "all rules", [_screen(e) for e in expectations],
                 "BOOLEAN_ONLY")
    failed = [e for e, ok in zip(expectations, quick, strict=True) if not ok.success]
    if not failed:
        return StepResult(True, (), {"expectations": len(expectations)})
    detailed = _run(gx, context, batch, "failed rules", failed, "SUMMARY")
    failures = tuple(_failure(e, r) for e, r in zip(failed, detailed, strict=True)
                     if not r.success)  # a screen's false alarm is cleared by the exact check
    return StepResult(not failures, failures, {"expectations": len(expectations)})


def _close(source: Any) -> None:
    """Close the data source's two SQLAlchemy engines (its own, and its execution
    engine's). GX leaves them to the garbage collector with their pooled connections
    open: a pass over 50 datasets kept dozens of idle connections and met the server's
    max_connections ("too many clients"), failing the last datasets."""
    for engine in (source.get_engine(), source.get_execution_engine().engine):
        engine.dispose()


def _screen(spec: dict) -> dict:
    """The cheap form of an expectation for the first pass, where the mapping has one."""
    screen = GX_SCREENS.get(spec["type"])
    return {**screen(spec["kwargs"]), "meta": spec["meta"]} if screen else spec


def _run(gx: Any, context: Any, batch: Any, name: str, expectations: list[dict],
         result_format: str) -> list[Any]:
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for spec in expectations:
        suite.add_expectation(_expectation(gx, spec))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite))
    results = definition.run(result_format=result_format).results
    by_rule = {r.expectation_config.meta["rule"]: r for r in results}
    return [by_rule[spec["meta"]["rule"]] for spec in expectations]  # suite order is not kept


def _expectation(gx: Any, spec: dict) -> Any:
    class_name = "".join(part.title() for part in spec["type"].split("_"))
    return getattr(gx.expectations, class_name)(**spec["kwargs"], meta=spec["meta"])


def _failure(spec: dict, result: Any) -> Failure:
    details = result.result or {}
    count = details.get("unexpected_count")
    sample = details.get("partial_unexpected_list") or []
    observed = details.get("observed_value")
    if count is not None:
        message = f"{count} row(s) break it, e.g. {sample[:3]!r}"
    else:
        message = f"observed {observed!r}"
    return Failure(spec["meta"]["rule"], "great_expectations", message)
