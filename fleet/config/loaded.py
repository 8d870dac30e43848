"""A project as read from its files: what the pure core compiles into the desired state.

Reading happens in fleet.config.project; this is only the value it hands over."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fleet.config.inventory import Inventory
from fleet.config.local_files import LocalFileError, LocalSource
from fleet.config.playbook import LoadedPlaybook, PlaybookSet
from fleet.config.problems import Problem
from fleet.config.secrets import SecretStore
from fleet.config.shards import Shard

# The contents of a service's env_file, named relative to its playbook (raises OSError or
# ValueError). A callback, not a mapping: env_file may be a template, so its path is known
# only once rendered for a host. Its warnings (an unset variable) join ProjectInput.problems.
EnvFileReader = Callable[[LoadedPlaybook, str], dict[str, str]]

# What a relative path (a bind source, a config's or secret's `file:`) names on the
# controller, relative to its playbook, and the file it was written in when another (an
# `extends` base): fleet.config.local_files (raises LocalFileError). A callback for the same
# reason: a bind source may be a template.
FileReader = Callable[[LoadedPlaybook, str, str | None], LocalSource]


def no_local_files(pb: LoadedPlaybook, relative: str, written_in: str | None) -> LocalSource:
    raise LocalFileError(f"{relative}: this project reads no files next to its playbooks")


@dataclass
class ProjectInput:
    playbooks: PlaybookSet
    inventory: Inventory
    secrets: SecretStore
    environ: Mapping[str, str]  # the controller's environment (bare env keys, interpolation)
    env_files: EnvFileReader
    limit: str | None = None
    shard: Shard | None = None  # --shard K/N: only this part of the targeted hosts
    problems: list[Problem] = field(default_factory=list)  # found while reading
    # Compose's project environment: the controller's over the .env file's (interpolation
    # and bare `KEY` entries of `environment` take their values from it)
    variables: Mapping[str, str] = field(default_factory=dict)
    local_files: FileReader = no_local_files
