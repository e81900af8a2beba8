"""`hub run`'s progress: one bar per dataset, with its stage and the rows loaded so far.

Drawn on stderr only when it is a terminal; piped or captured output stays plain, with
the summary table on stdout either way.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class ProgressBars:
    def __init__(self) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.fields[dataset]:<34}"),
            TextColumn("{task.description:<14}"), TextColumn("{task.completed:>9,.0f} rows"),
            TimeElapsedColumn(), console=console, disable=not sys.stderr.isatty())
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressBars:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for dataset in self._tasks:
            self.stage(dataset, "done")
        self._progress.stop()

    def stage(self, dataset: str, stage: str) -> None:
        if dataset not in self._tasks:
            self._tasks[dataset] = self._progress.add_task(stage, total=None, dataset=dataset)
        self._progress.update(self._tasks[dataset], description=stage)

    def rows(self, dataset: str, count: int) -> None:
        self.stage(dataset, "ingest")
        self._progress.advance(self._tasks[dataset], count)
