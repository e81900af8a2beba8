"""The one error type of contract handling: it names the file, the field and the fix."""

from __future__ import annotations


class ContractError(ValueError):
    """A contract that cannot be used, with every problem found in it."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems  # (field path, what is wrong and what to write instead)
        lines = [f"{file}: {path}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))
