"""Results of the build and validation steps, in the contract's own rule names."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Failure:
    rule: str  # the contract rule, e.g. accepted_values(status)
    engine: str  # dbt or great_expectations
    message: str


@dataclass(frozen=True)
class StepResult:
    success: bool
    failures: tuple[Failure, ...] = ()
    details: dict = field(default_factory=dict)
