"""The playbook format (`playbooks/*.yml`): a project, its services and their defaults."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from fleet.config.networks_volumes import NetworkDef, VolumeDef, volume_key_problem
from fleet.config.problems import Problem
from fleet.config.references import parse_image_reference
from fleet.config.service import NAME_PATTERN, NETWORK_NAME, Service, Strict, UpdatePolicy
from fleet.config.source import SourceDoc, load_yaml
from fleet.config.validation import ItemErrors, KeyProblem, validate_model


class RegistryAuth(Strict):
    """Credentials for one registry; values usually come from `secret()`."""

    username: str
    password: str


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
    volumes: dict[str, VolumeDef | None] = {}
    update: UpdatePolicy | None = None
    services: dict[str, Service] = {}

    @field_validator("registries")
    @classmethod
    def _registry_names(cls, value: dict[str, RegistryAuth]) -> dict[str, RegistryAuth]:
        bad = [(name, KeyProblem(problem)) for name in value
               if (problem := _registry_name_problem(name))]
        if bad:
            raise ItemErrors(bad)
        return value

    @field_validator("networks")
    @classmethod
    def _network_names(cls, value: dict[str, NetworkDef | None]
                       ) -> dict[str, NetworkDef | None]:
        bad: list[tuple[int | str, Exception]] = [
            (name, KeyProblem(f"bad network name '{name}': Docker's rule is a letter or digit, "
                              "then letters, digits, '_', '.' or '-'"))
            for name in value if not NETWORK_NAME.match(name)]
        if bad:
            raise ItemErrors(bad)
        return value

    @field_validator("volumes", mode="before")
    @classmethod
    def _volume_names(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        bad: list[tuple[int | str, Exception]] = [
            (name, KeyProblem(problem)) for name in value
            if (problem := volume_key_problem(name))]
        if bad:
            raise ItemErrors(bad)
        return value


def _registry_name_problem(name: str) -> str | None:
    """A `registries:` key is matched against each image's registry, so it must be one."""
    if name in ("index.docker.io", "registry-1.docker.io"):
        return f"registry '{name}': Docker Hub's images are matched as 'docker.io'"
    try:
        found = parse_image_reference(f"{name}/image").registry
    except ValueError:
        found = None
    if found != name:
        return (f"bad registry '{name}': use the registry as images name it, e.g. "
                "registry.example.com, localhost:5000 or docker.io (no scheme or path)")
    return None


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
