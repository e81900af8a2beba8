"""Where the pipeline reports how far each dataset got, for `hub run`'s progress bars.

A process-wide sink rather than a flow parameter: Prefect records flow parameters, and a
callback is not a value worth recording. Without a sink (deployments, tests) reports go
nowhere.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def stage(self, dataset: str, stage: str) -> None: ...

    def rows(self, dataset: str, count: int) -> None: ...


_sink: Sink | None = None


def use(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def stage(dataset: str, name: str) -> None:
    if _sink is not None:
        _sink.stage(dataset, name)


def rows(dataset: str, count: int) -> None:
    if _sink is not None:
        _sink.rows(dataset, count)
