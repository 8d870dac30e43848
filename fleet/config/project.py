"""Reading a project: playbooks, inventory, secrets files and env files -> ProjectInput (the
core compiles it: fleet.core.desired.desired_state), or ConfigError with every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.config.compose_syntax import parse_env_file
from fleet.config.inventory import Inventory, load_inventory_with_problems
from fleet.config.loaded import EnvFileReader, ProjectInput
from fleet.config.playbook import LoadedPlaybook, PlaybookSet, load_playbooks
from fleet.config.problems import ConfigError, Problem, errors_in
from fleet.config.secrets import SecretStore, load_secrets_file
from fleet.config.source import located, read_source
from fleet.config.vault import VaultDecrypt


@dataclass
class ProjectFiles:
    playbooks: Sequence[str]
    inventories: Sequence[str] = ()
    limit: str | None = None
    vault: VaultDecrypt | None = None  # decrypts the inventory's Ansible Vault values


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


def _secret_store(playbooks: PlaybookSet) -> tuple[SecretStore, list[Problem]]:
    """Secrets files of every playbook; a name in two files takes the first file's value."""
    values: dict[str, str] = {}
    sources: list[str] = []
    problems: list[Problem] = []
    for pb in playbooks.playbooks:
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
    return SecretStore(playbooks.project, values, ", ".join(sources) or None), problems


def env_file_reader() -> EnvFileReader:
    """Reads env files relative to their playbook, each path once."""
    cache: dict[Path, dict[str, str]] = {}

    def read(pb: LoadedPlaybook, name: str) -> dict[str, str]:
        path = pb.base / name
        if path not in cache:
            text, problem = read_source(path)  # bounded, like every config file
            if text is None:
                raise ValueError(located(problem))
            cache[path] = parse_env_file(text, str(path))
        return cache[path]

    return read


def read_project(files: ProjectFiles, environ: Mapping[str, str] | None = None
                 ) -> ProjectInput:
    """Read every file of the project; raise ConfigError when the playbooks or the inventory
    are invalid (services are checked against hosts: without them, nothing more is told)."""
    playbooks, problems = load_playbooks(files.playbooks)
    if not playbooks.playbooks:
        raise ConfigError(problems or [Problem("playbook", 0, 0, (), "no playbook given")])
    paths, found = _inventory_paths(files, playbooks)
    inventory, inventory_problems = (
        load_inventory_with_problems(paths, files.vault) if paths else (Inventory((), {}), [])
    )
    found += inventory_problems
    if errors_in(found):
        raise ConfigError(problems + found)
    environ = dict(os.environ) if environ is None else environ
    secrets, secret_problems = _secret_store(playbooks)
    secrets.environ = environ
    secrets.vaulted = inventory.secrets
    return ProjectInput(playbooks, inventory, secrets, environ, env_file_reader(), files.limit,
                        problems + found + secret_problems)
