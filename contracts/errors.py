"""The one error type of contract handling: it names the file, the field and the fix."""

from __future__ import annotations

import yaml


class ContractError(ValueError):
    """A contract that cannot be used, with every problem found in it."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems  # (field path, what is wrong and what to write instead)
        lines = [f"{file}: {path}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML parser's complaint on one line, with where it stopped: PyYAML's own spans
    several lines with a caret, which reads as noise among one-line problems."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"not valid YAML{where}: {what}"
