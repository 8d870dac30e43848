"""Reading a project: playbooks, inventory, secrets files and env files -> ProjectInput (the
core compiles it: fleet.core.desired.desired_state), or ConfigError with every problem."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.config.compose_syntax import DotenvError, read_dotenv
from fleet.config.interpolation import Piece, interpolate_doc
from fleet.config.inventory import Inventory, load_inventory_with_problems
from fleet.config.loaded import EnvFileReader, FileReader, ProjectInput
from fleet.config.local_files import LocalFiles, LocalSource
from fleet.config.playbook import LoadedPlaybook, PlaybookSet, load_playbooks
from fleet.config.problems import ConfigError, KeyPath, Problem, errors_in
from fleet.config.secret_commands import SecretCommand, SecretCommands, SecretRunner
from fleet.config.secrets import SecretStore, load_secrets_file
from fleet.config.service import HOST_INDEPENDENT_KEYS
from fleet.config.shards import Shard
from fleet.config.source import SourceDoc, load_yaml, located, read_source
from fleet.config.templating import keep_variables_literal
from fleet.config.vault import VaultDecrypt

DOTENV = ".env"


@dataclass
class ProjectFiles:
    playbooks: Sequence[str]
    inventories: Sequence[str] = ()
    limit: str | None = None
    shard: Shard | None = None  # --shard K/N [--shard-by LABEL]
    env_file: str | None = None  # instead of the .env beside the first playbook
    profiles: Sequence[str] = ()  # --profile (else COMPOSE_PROFILES)
    vault: VaultDecrypt | None = None  # decrypts the inventory's Ansible Vault values
    secret_runner: SecretRunner | None = None  # runs `secret_commands:` (None: refused)


def _inventory_paths(files: ProjectFiles, playbooks: PlaybookSet) -> tuple[list[str],
                                                                          list[Problem]]:
    if files.inventories:
        return list(files.inventories), []
    named = {str((pb.base / pb.header.inventory).resolve()): pb for pb in playbooks.playbooks
             if pb.header.inventory}
    if len(named) > 1:
        pb = list(named.values())[1]
        return [], [pb.doc.problem(("inventory",), "the playbooks name different inventories; "
                                   "pass one with -i")]
    if not named:
        where = files.playbooks[0] if files.playbooks else "playbook"
        return [], [Problem(where, 0, 0, (), "no inventory: pass -i INVENTORY or set "
                            "'inventory:' in the playbook")]
    return list(named), []


def _secret_store(playbooks: PlaybookSet, runner: SecretRunner | None
                  ) -> tuple[SecretStore, list[Problem]]:
    """Secrets files and secret commands of every playbook; a name in two files (or two
    playbooks' `secret_commands`) takes the first one's."""
    values: dict[str, str] = {}
    sources: list[str] = []
    problems: list[Problem] = []
    commands: dict[str, SecretCommand] = {}
    for pb in playbooks.playbooks:
        for name, spec in pb.header.secret_commands.items():
            commands.setdefault(name, SecretCommand(spec, pb.base))
        if pb.header.secrets_file:
            path = pb.base / pb.header.secrets_file
            try:
                for key, value in load_secrets_file(path).items():
                    values.setdefault(key, value)
            except (OSError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                problems.append(pb.doc.problem(("secrets_file",),
                                               f"cannot read secrets file {path}: {reason}"))
                continue
            sources.append(str(path))
    store = SecretStore(playbooks.project, values, ", ".join(sources) or None,
                        commands=SecretCommands(commands, runner))
    return store, problems


def env_file_reader(variables: Mapping[str, str], warnings: list[Problem]) -> EnvFileReader:
    """Reads env files relative to their playbook, each path once, interpolating their
    values from `variables` as Compose does; what it warns of is added to `warnings`."""
    cache: dict[Path, dict[str, str]] = {}

    def read(pb: LoadedPlaybook, name: str) -> dict[str, str]:
        path = pb.base / name
        if path not in cache:
            text, problem = read_source(path)  # bounded, like every config file
            if text is None:
                if not path.exists():
                    raise FileNotFoundError(f"{path}: file not found")
                raise ValueError(located(problem))
            cache[path], found = read_dotenv(text, str(path), variables)
            warnings.extend(found)
        return cache[path]

    return read


def local_file_reader(project_dir: Path) -> FileReader:
    """Reads the project's relative sources (fleet.config.local_files), each once."""
    files = LocalFiles(project_dir)

    def read(pb: LoadedPlaybook, relative: str, written_in: str | None) -> LocalSource:
        origin = Path(written_in).resolve() if written_in and written_in != pb.doc.path \
            else None
        return files.read(pb.base, relative, origin)

    return read


def project_variables(files: ProjectFiles, environ: Mapping[str, str]
                      ) -> tuple[dict[str, str], list[Problem]]:
    """What `${VAR}` is interpolated from: the controller's environment over the values of
    the project's .env file (beside the first playbook, as Compose takes the project
    directory's), or of the `--env-file` given instead, which must exist."""
    if files.env_file is not None:
        path = Path(files.env_file)
    elif files.playbooks:
        path = Path(files.playbooks[0]).parent / DOTENV
        if not path.is_file():
            return dict(environ), []
    else:
        return dict(environ), []
    text, problem = read_source(path)
    if text is None:
        return dict(environ), [problem] if problem else []
    try:
        values, problems = read_dotenv(text, str(path), environ)
    except DotenvError as exc:
        return dict(environ), [Problem(exc.path, exc.line, 1, (), exc.reason)]
    return {**values, **environ}, problems


def _rendered_per_host(path: KeyPath) -> bool:
    """Whether the value at `path` of a playbook is a Jinja2 template (see core.desired):
    a service's keys but placement and rollout, and registry credentials."""
    if path[:1] == ("services",):
        if len(path) > 3 and path[2] == "x-fleet":  # fleet's keys inside Compose's extension
            return path[3] not in HOST_INDEPENDENT_KEYS
        return len(path) > 2 and path[2] not in HOST_INDEPENDENT_KEYS
    return path[:1] == ("registries",)


def _interpolated(path: KeyPath, pieces: Sequence[Piece]) -> str:
    if _rendered_per_host(path):
        return keep_variables_literal(pieces)
    return "".join(p.text for p in pieces)


def interpolating_loader(variables: Mapping[str, str]) -> Callable[[str], SourceDoc]:
    """Loads a playbook with its values interpolated (before validation and templating)."""
    def load(path: str) -> SourceDoc:
        return interpolate_doc(load_yaml(path), variables, _interpolated)

    return load


def read_project(files: ProjectFiles, environ: Mapping[str, str] | None = None
                 ) -> ProjectInput:
    """Read every file of the project; raise ConfigError when the playbooks or the inventory
    are invalid (services are checked against hosts: without them, nothing more is told)."""
    environ = dict(os.environ) if environ is None else environ
    variables, problems = project_variables(files, environ)
    playbooks, found = load_playbooks(files.playbooks, interpolating_loader(variables),
                                      profiles=files.profiles, environ=variables)
    problems += found
    if not playbooks.playbooks:
        raise ConfigError(problems or [Problem("playbook", 0, 0, (), "no playbook given")])
    paths, found = _inventory_paths(files, playbooks)
    inventory, inventory_problems = (
        load_inventory_with_problems(paths, files.vault) if paths else (Inventory((), {}), [])
    )
    found += inventory_problems
    if errors_in(found):
        raise ConfigError(problems + found)
    secrets, secret_problems = _secret_store(playbooks, files.secret_runner)
    secrets.environ = environ
    secrets.vaulted = inventory.secrets
    read = problems + found + secret_problems  # env files add their warnings when read
    project_dir = Path(files.playbooks[0]).resolve().parent
    return ProjectInput(playbooks, inventory, secrets, environ, env_file_reader(variables, read),
                        files.limit, files.shard, read, variables,
                        local_file_reader(project_dir))
