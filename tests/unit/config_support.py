"""Helpers for the configuration tests: write files, load a project, collect problems."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from fleet.config.problems import ConfigError, Problem
from fleet.config.project import ProjectFiles, read_project
from fleet.config.secret_commands import SecretRunner
from fleet.core.desired import DesiredState, desired_state

INVENTORY = """\
hosts:
  web1: {address: 10.0.0.1, labels: {cloud: aws, region: us-east-1}, vars: {weight: 3}}
  web2: {address: 10.0.0.2, labels: {cloud: aws, region: eu-west-1}}
  db1: {address: 10.0.0.3, labels: {cloud: gcp, region: eu-west-1}}
groups:
  web: {hosts: [web1, web2]}
  db: {hosts: [db1]}
vars: {domain: example.com}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def playbook(directory: Path, services: str, *, header: str = "project: shop\n",
             name: str = "pb.yml") -> Path:
    body = textwrap.indent(textwrap.dedent(services), "  ")
    return write(directory, name, f"{header}services:\n{body}")


def load(directory: Path, *playbooks: Path, inventory: str | None = INVENTORY,
         environ: Mapping[str, str] | None = None, limit: str | None = None,
         secret_runner: SecretRunner | None = None) -> DesiredState:
    inventories = []
    if inventory is not None:
        inventories.append(str(write(directory, "inventory.yml", inventory)))
    files = ProjectFiles([str(p) for p in playbooks], inventories, limit,
                         secret_runner=secret_runner)
    return desired_state(read_project(files, environ=environ if environ is not None else {}))


def problems(directory: Path, *playbooks: Path, **kwargs: object) -> list[Problem]:
    """Every problem (errors and warnings) loading the project gives."""
    try:
        state = load(directory, *playbooks, **kwargs)  # type: ignore[arg-type]
    except ConfigError as exc:
        return list(exc.problems)
    return state.problems


def only_error(directory: Path, *playbooks: Path, **kwargs: object) -> Problem:
    found = [p for p in problems(directory, *playbooks, **kwargs) if p.severity == "error"]
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]
