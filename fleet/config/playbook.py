"""The playbook format (`playbooks/*.yml`): a project, its services and their defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from fleet.config.compose_file import (
    PLACEHOLDER_PROJECT,
    ComposeContext,
    Loader,
    active_profiles,
    prepare,
)
from fleet.config.networks_volumes import NetworkDef, VolumeDef, volume_key_problem
from fleet.config.problems import Problem
from fleet.config.references import parse_image_reference
from fleet.config.secret_commands import SecretCommandEntry
from fleet.config.service import (
    NAME_PATTERN,
    NETWORK_NAME,
    Duration,
    ImageSource,
    ProxySettings,
    Service,
    Strict,
    UpdatePolicy,
)
from fleet.config.source import SourceDoc, load_yaml
from fleet.config.validation import ItemErrors, KeyProblem, problems_from, validate_model

SEED_IMAGE = "registry:2"
SEED_PORT = 5443


class SeedsConfig(Strict):
    """`seeds:`: per group of hosts (a region), one seed host receives each image from the
    controller and serves it to the group's other hosts (fleet.core.seeds)."""

    by: str = Field(default="region", min_length=1, max_length=128,
                    description="The host label whose value groups hosts.")
    labels: dict[str, str] = Field(
        default={}, description="Labels a seed must carry (default: any host); the group's "
                                "first such host by name is its seed.")
    image: str = Field(default=SEED_IMAGE, min_length=1, max_length=512,
                       description="The seed's registry (Distribution, as registry:2), taken "
                                   "from the controller's Docker daemon.")
    port: int = Field(default=SEED_PORT, ge=1, le=65535,
                      description="The host port the seed's registry listens on.")

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        parse_image_reference(value)  # a ValueError names what is wrong
        return value


class RegistryAuth(Strict):
    """Credentials for one registry; values usually come from `secret()`."""

    username: str
    password: str


def _refuse_models(value: Any) -> Any:
    raise ValueError("'models' is not supported: Docker Model Runner models are set up by "
                     "Compose on the machine running it")


_SWARM_OBJECTS = ("external configs and secrets are Docker Swarm objects (made with `docker "
                  "config create` / `docker secret create`), which a Docker Engine without "
                  "Swarm does not have; give it a file, environment or content, and fleet "
                  "delivers it to the hosts as a file")


class FileSource(Strict):
    """A top-level `configs:` entry: where its content comes from (a file next to the compose
    file, an environment variable of the controller, or the text itself)."""

    file: str | None = Field(default=None, min_length=1,
                             description="Relative to this file (or absolute).")
    environment: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    content: str | None = None
    external: bool = Field(default=False, description=f"Refused: {_SWARM_OBJECTS}.")
    name: str | None = Field(default=None, description="Accepted, without effect (it names a "
                             "Swarm object).")
    labels: Annotated[Any, BeforeValidator(lambda v: _refuse_swarm("labels"))] = None
    driver: Annotated[Any, BeforeValidator(lambda v: _refuse_swarm("driver"))] = None
    driver_opts: Annotated[Any, BeforeValidator(lambda v: _refuse_swarm("driver_opts"))] = None
    template_driver: Annotated[Any, BeforeValidator(
        lambda v: _refuse_swarm("template_driver"))] = None

    @field_validator("external", mode="before")
    @classmethod
    def _external(cls, value: Any) -> Any:
        if value is True or isinstance(value, dict):
            raise ValueError(_SWARM_OBJECTS)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FileSource:
        sources = [k for k in self.sources() if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(f"give exactly one of {', '.join(self.sources())}")
        return self

    @classmethod
    def sources(cls) -> tuple[str, ...]:
        return ("file", "environment", "content")


class SecretSource(FileSource):
    """A top-level `secrets:` entry: a file next to the compose file or an environment
    variable of the controller (Compose's two sources for a secret)."""

    content: Annotated[Any, BeforeValidator(lambda v: _refuse_content())] = None

    @classmethod
    def sources(cls) -> tuple[str, ...]:
        return ("file", "environment")


def _refuse_content() -> Any:
    raise ValueError("a secret has no 'content' in the Compose specification (it would be a "
                     "secret written in clear in the compose file): give a file or an "
                     "environment variable")


def _refuse_swarm(key: str) -> Any:
    raise ValueError(f"'{key}' is for Swarm's config and secret objects, which fleet does not "
                     "create; files are delivered as files")


_FILE_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")  # a config's or secret's name (Compose's rule)
# What secret('NAME') may name (fleet.config.secrets' tokens carry it).
SecretName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", max_length=256)]


class Hook(Strict):
    """A command run once per rollout, on one host, in a service's new image."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63,
                      description="Names its container and its journal entries.")
    service: str = Field(description="Whose image, environment, volumes and networks it runs "
                                     "with (as that service's new revision); it runs when a "
                                     "rollout changes this service.")
    command: Annotated[list[Annotated[str, Field(max_length=65536)]],
                       Field(min_length=1, max_length=1024)] = Field(
        description="The argv (no shell), instead of the service's command (its "
                    "entrypoint is kept, as `docker compose run` does).")
    entrypoint: Annotated[list[Annotated[str, Field(max_length=65536)]],
                          Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description="Instead of the service's entrypoint, e.g. [sh, -c].")
    timeout: Duration = Field(default=300.0, gt=0, description="How long it may run "
                              "(default 5m); past it, it is killed and fails.")
    host: str | None = Field(default=None, max_length=4096, description=(
        "A host pattern narrowing where it may run (default: any host of the service); the "
        "first such host by name is chosen."))


class Hooks(Strict):
    pre_deploy: list[Hook] = Field(default=[], max_length=100, description=(
        "Before any host changes: a failure stops the rollout with nothing changed."))
    post_deploy: list[Hook] = Field(default=[], max_length=100, description=(
        "After the rollout succeeded: a failure is reported (the rollout stays)."))


class PlaybookFile(Strict):
    """One playbook file. `services` are validated per host after rendering."""

    project: str = Field(pattern=NAME_PATTERN, description="Namespaces everything fleet "
                         "creates (Compose's `name:`; default: the directory's name).")
    inventory: str | None = Field(
        default=None, description="Default inventory, relative to this file."
    )
    vars: dict[str, Any] = {}
    secrets_file: str | None = Field(
        default=None, description="KEY=VALUE or YAML file of secrets, relative to this file."
    )
    secret_commands: dict[SecretName, SecretCommandEntry] = Field(
        default={}, description="Secrets whose value a command prints on the controller "
                                "(a password manager's CLI), run once per invocation, "
                                "without a shell.")
    registries: dict[str, RegistryAuth] = {}
    networks: dict[str, NetworkDef | None] = {}
    volumes: dict[str, VolumeDef | None] = {}
    update: UpdatePolicy | None = None
    configs: dict[str, FileSource] = Field(
        default={}, description="Compose's top-level configs: delivered to the hosts of the "
                                "services they are granted to, as files.")
    secrets: dict[str, SecretSource] = Field(
        default={}, description="Compose's top-level secrets: delivered to the hosts of the "
                                "services they are granted to, as files readable by their "
                                "owner only.")
    proxy: ProxySettings | None = Field(
        default=None, description="The per-host proxy of the services with `proxy:`.")
    hooks: Hooks | None = Field(
        default=None, description="One-off jobs around a rollout (migrations).")
    image_source: ImageSource | None = Field(
        default=None, description="The default of every service's `image_source`.")
    seeds: SeedsConfig | None = Field(
        default=None, description="Images delivered from the controller cross its link once "
                                  "per group of hosts (a region).")
    models: Annotated[Any, BeforeValidator(_refuse_models)] = None
    services: dict[str, Service] = {}

    @field_validator("registries")
    @classmethod
    def _registry_names(cls, value: dict[str, RegistryAuth]) -> dict[str, RegistryAuth]:
        bad = [(name, KeyProblem(problem)) for name in value
               if (problem := _registry_name_problem(name))]
        if bad:
            raise ItemErrors(bad)
        return value

    @field_validator("configs", "secrets")
    @classmethod
    def _file_names(cls, value: dict[str, FileSource]) -> dict[str, FileSource]:
        bad: list[tuple[int | str, Exception]] = [
            (name, KeyProblem(f"bad name '{name}': use letters, digits, '.', '_' and '-'"))
            for name in value if not _FILE_NAME.match(name)]
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
    # Top-level keys refused (and so left out of `header`): what refers to them is not
    # reported again as undeclared.
    refused: frozenset[str] = frozenset()

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
    inactive: set[str] = field(default_factory=set)  # services whose profiles are off

    @property
    def project(self) -> str:
        return self.playbooks[0].header.project

    def services(self) -> list[tuple[str, LoadedPlaybook]]:
        return [(name, pb) for pb in self.playbooks for name in pb.service_names]




def load_playbooks(paths: Sequence[str], load: Loader = load_yaml, *,
                   profiles: Sequence[str] = (), environ: Mapping[str, str] | None = None
                   ) -> tuple[PlaybookSet, list[Problem]]:
    """The playbooks (Compose files) and what they include, each read as Compose reads it
    (fleet.config.compose_file); every problem found, top-level ones included."""
    environ = environ if environ is not None else {}
    ctx = ComposeContext(active_profiles(profiles, environ), environ, load)
    result = PlaybookSet()
    owner: dict[str, str] = {}
    for path in paths:
        doc = load(path)
        ctx.reported.add(Path(path).resolve())
        ctx.problems.extend(doc.problems)
        doc.problems = []
        if doc.data is None and ctx.problems:
            continue  # unreadable or not YAML; duplicate keys still let us check the rest
        if not isinstance(doc.data, dict):
            ctx.problems.append(doc.problem((), "a playbook must be a mapping with 'services'"))
            continue
        for loaded in prepare(doc, ctx):
            ctx.problems.extend(loaded.problems)
            loaded.problems = []
            playbook = _playbook(loaded, result, owner, ctx.problems)
            if playbook is not None:
                result.playbooks.append(playbook)
    result.inactive = ctx.inactive - set(owner)
    return result, ctx.problems


def _playbook(doc: SourceDoc, result: PlaybookSet, owner: dict[str, str],
              problems: list[Problem]) -> LoadedPlaybook | None:
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
    refused: set[str] = set()
    header = _header(doc, result, problems, refused)
    if header is None:
        return None
    if result.playbooks and header.project not in (result.project, PLACEHOLDER_PROJECT):
        problems.append(doc.problem(("project",), f"project '{header.project}' differs from "
                                    f"'{result.project}' in {result.playbooks[0].doc.path}"))
        return None
    names = [n for n, body in services.items() if isinstance(body, dict)]
    for name in names:
        if not _valid_name(name):
            problems.append(doc.problem(("services", name), f"bad service name '{name}': use "
                                        "lowercase letters, digits, '-' and '_'", at_key=True))
        if name in owner:
            problems.append(doc.problem(("services", name), f"service '{name}' is defined "
                                        f"twice (also in {owner[name]})", at_key=True))
        owner.setdefault(name, doc.path)
    return LoadedPlaybook(doc, header, names, frozenset(refused))


def _header(doc: SourceDoc, result: PlaybookSet, problems: list[Problem], refused: set[str]
            ) -> PlaybookFile | None:
    """The file's top level, validated without its services. When some top-level key is
    refused (added to `refused`), it is validated again without them, so that the services
    are still checked."""
    data = {**doc.data, "services": {}}
    try:
        return PlaybookFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_from(exc, PlaybookFile, data, doc))
        refused.update(str(error["loc"][0]) for error in exc.errors() if error["loc"])
    kept = {k: v for k, v in data.items() if k not in refused}
    kept.setdefault("project", result.project if result.playbooks else PLACEHOLDER_PROJECT)
    header, _ = validate_model(PlaybookFile, kept, doc)
    return header


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(re.match(NAME_PATTERN, name))
