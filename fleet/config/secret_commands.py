"""Secrets whose value a command prints on the controller (a password manager's CLI).

`secret_commands:` in a playbook names, for each secret, an argv run without a shell. A
command runs at most once per fleet invocation, when the first template (or Compose secret)
needs its value, which is while the desired state is rendered: before any host is
contacted. Its output becomes the value and is never printed or stored; a failure is the
secret's error, at the key that asked for it, and nothing reaches a host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from fleet.config.units import parse_duration

DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 600.0


def _argv(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError("give the command as a list of arguments (it runs without a shell; "
                         "for a pipeline write [sh, -c, '...'])")
    return value


def _shorthand(value: Any) -> Any:
    return {"command": value} if isinstance(value, list) else _argv(value)


Argv = Annotated[list[Annotated[str, Field(max_length=4096)]],
                 BeforeValidator(_argv), Field(min_length=1, max_length=256)]


class SecretCommandSpec(BaseModel):
    """One entry of `secret_commands:` (a list is the command alone)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    command: Argv = Field(description="The program and its arguments (no shell): its output, "
                                      "less one final newline, is the secret's value.")
    timeout: Annotated[float, BeforeValidator(parse_duration)] = Field(
        default=DEFAULT_TIMEOUT, gt=0, le=MAX_TIMEOUT,
        description="How long it may take (default 60s, at most 10m).")


SecretCommandEntry = Annotated[SecretCommandSpec, BeforeValidator(_shorthand)]


SecretRunner = Callable[["SecretCommand"], str]


class SecretCommandFailed(Exception):
    """Why a secret's command gave no value (its message never holds the output)."""


@dataclass(frozen=True)
class SecretCommand:
    """A declared command, with the folder it runs in (its playbook's)."""

    spec: SecretCommandSpec
    cwd: Path


@dataclass
class SecretCommands:
    """The declared commands and what each gave, so each runs once per invocation."""

    declared: Mapping[str, SecretCommand] = field(default_factory=dict)
    # Runs one (fleet.cli.secret_runner's; None: where commands may not run, say so).
    runner: SecretRunner | None = None
    _results: dict[str, str | SecretCommandFailed] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.declared

    def value(self, name: str) -> str:
        """The value of secret `name`; raises SecretCommandFailed (again on every call)."""
        if name not in self._results:
            try:
                if self.runner is None:
                    raise SecretCommandFailed("secret commands are not run here")
                self._results[name] = self.runner(self.declared[name])
            except SecretCommandFailed as exc:
                self._results[name] = exc
        result = self._results[name]
        if isinstance(result, SecretCommandFailed):
            raise result
        return result
