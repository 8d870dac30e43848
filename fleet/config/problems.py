"""Problems found in input files, each with its file, line, column and key path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from fleet.errors import FleetError

KeyPath = tuple[str | int, ...]
Severity = Literal["error", "warning"]


def format_key_path(path: KeyPath) -> str:
    """`services.web.ports[0]`: the path as a user would write it."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part or not part.isprintable() or any(c.isspace() for c in part):
            text += f"[{part!r}]"  # an empty key, or one whose line breaks would forge output
        else:
            text += f".{part}" if text else str(part)
    return text


def _one_line(text: str) -> str:
    """Control characters escaped: a name or value quoted from a file cannot forge lines."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: KeyPath
    message: str
    severity: Severity = "error"
    # The value at `path` could not even be read (interpolation failed): other errors at or
    # under the key are its consequences, and only this one is reported.
    root_cause: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        key = f" {format_key_path(self.path)}:" if self.path else ""
        label = "" if self.severity == "error" else "warning: "
        return _one_line(f"{where}:{key} {label}{self.message}")

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "key": format_key_path(self.path),
            "severity": self.severity,
            "message": self.message,
        }


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


class ConfigError(FleetError):
    """The input is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(set(_without_consequences(problems)), key=_sort_key)
        errors = errors_in(self.problems)
        lines = [str(p) for p in self.problems]
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        super().__init__("\n".join([*lines, f"{count}; nothing was changed on any host."]))


def _sort_key(problem: Problem) -> tuple[str, int, int, str]:
    return (problem.file, problem.line, problem.column, problem.message)


def _without_consequences(problems: Sequence[Problem]) -> list[Problem]:
    roots = {(p.file, p.path) for p in problems if p.root_cause}
    if not roots:
        return list(problems)

    def follows(problem: Problem) -> bool:
        return problem.severity == "error" and not problem.root_cause and any(
            (problem.file, problem.path[:n]) in roots for n in range(len(problem.path) + 1))

    return [p for p in problems if not follows(p)]
