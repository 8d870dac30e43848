"""The playbook format (`playbooks/*.yml`): a project, its services and their defaults."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from fleet.config.problems import Problem
from fleet.config.service import NAME_PATTERN, Service, Strict, UpdatePolicy
from fleet.config.source import SourceDoc, load_yaml
from fleet.config.validation import validate_model


class RegistryAuth(Strict):
    """Credentials for one registry; values usually come from `secret()`."""

    username: str
    password: str


class NetworkDef(Strict):
    driver: str | None = None
    external: bool = Field(default=False, description="Exists on the hosts; fleet won't create it.")


class PlaybookFile(Strict):
    """One playbook file. `services` are validated per host after rendering."""

    project: str = Field(pattern=NAME_PATTERN, description="Namespaces everything fleet creates.")
    inventory: str | None = Field(
        default=None, description="Default inventory, relative to this file."
    )
    vars: dict[str, Any] = {}
    secrets_file: str | None = Field(
        default=None, description="KEY=VALUE or YAML file of secrets, relative to this file."
    )
    registries: dict[str, RegistryAuth] = {}
    networks: dict[str, NetworkDef | None] = {}
    update: UpdatePolicy | None = None
    services: dict[str, Service] = {}


@dataclass
class LoadedPlaybook:
    doc: SourceDoc
    header: PlaybookFile  # validated with `services` emptied; services are rendered first
    service_names: list[str]

    @property
    def base(self) -> Path:
        return Path(self.doc.path).resolve().parent

    def raw_service(self, name: str) -> dict[str, Any]:
        raw = self.doc.data["services"][name]
        return raw if isinstance(raw, dict) else {}


@dataclass
class PlaybookSet:
    """One or more playbook files that together describe one project."""

    playbooks: list[LoadedPlaybook] = field(default_factory=list)

    @property
    def project(self) -> str:
        return self.playbooks[0].header.project

    def services(self) -> list[tuple[str, LoadedPlaybook]]:
        return [(name, pb) for pb in self.playbooks for name in pb.service_names]


def load_playbooks(paths: Sequence[str]) -> tuple[PlaybookSet, list[Problem]]:
    problems: list[Problem] = []
    result = PlaybookSet()
    owner: dict[str, str] = {}
    for path in paths:
        doc = load_yaml(path)
        problems.extend(doc.problems)
        if doc.data is None and doc.problems:
            continue  # unreadable or not YAML; duplicate keys still let us check the rest
        if not isinstance(doc.data, dict):
            problems.append(doc.problem((), "a playbook must be a mapping with 'project' and "
                                            "'services'"))
            continue
        services = doc.data.get("services", {})
        if services is None:
            services = {}
        if not isinstance(services, dict):
            problems.append(doc.problem(("services",), "'services' must be a mapping of names "
                                        "to service definitions"))
            services = {}
        for name, body in services.items():
            if not isinstance(body, dict):
                problems.append(doc.problem(("services", name), f"service '{name}' must be a "
                                            "mapping with at least 'image'"))
        header, found = validate_model(PlaybookFile, {**doc.data, "services": {}}, doc)
        problems.extend(found)
        if header is None:
            continue
        if result.playbooks and header.project != result.project:
            problems.append(doc.problem(("project",), f"project '{header.project}' differs from "
                                        f"'{result.project}' in {result.playbooks[0].doc.path}"))
            continue
        names = [n for n, body in services.items() if isinstance(body, dict)]
        for name in names:
            if not _valid_name(name):
                problems.append(doc.problem(("services", name), f"bad service name '{name}': use "
                                            "lowercase letters, digits, '-' and '_'", at_key=True))
            if name in owner:
                problems.append(doc.problem(("services", name), f"service '{name}' is defined "
                                            f"twice (also in {owner[name]})", at_key=True))
            owner.setdefault(name, path)
        result.playbooks.append(LoadedPlaybook(doc, header, names))
    return result, problems


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(re.match(NAME_PATTERN, name))
