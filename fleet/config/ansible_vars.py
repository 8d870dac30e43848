"""`group_vars/` and `host_vars/` beside an Ansible inventory, found and read as Ansible 2.14's
host_group_vars plugin does, and the layers of variables Ansible merges per host.

For a name, the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json` that exists is used;
if it is a directory, every file in it (and in its subdirectories without an extension)
with no extension or one of those extensions, in sorted order, hidden files and `~`
backups left out. Files are read as YAML (JSON is YAML), vault-encrypted ones decrypted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.config.problems import Problem
from fleet.config.source import parse_yaml, read_source
from fleet.config.vault import VaultSecrets, decode_ansible_json, is_vault_file

VARS_EXTENSIONS = (".yml", ".yaml", ".json")  # Ansible's default yaml_valid_extensions
MAX_VARS_FILES = 1000  # files for one host or group (a directory tree is walked)
MAX_VARS_DEPTH = 16  # subdirectories inside group_vars/NAME/


@dataclass
class AnsibleLayers:
    """What an Ansible inventory file adds to the native model: the layers Ansible keeps
    apart to order them (`group_vars/` files come after every inventory group var), group
    priorities, and the values decrypted from its vault values."""

    priorities: dict[str, int] = field(default_factory=dict)  # ansible_group_priority
    group_files: dict[str, dict[str, Any]] = field(default_factory=dict)  # incl. all, ungrouped
    host_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    implicit_vars: dict[str, dict[str, Any]] = field(default_factory=dict)  # [ungrouped:vars]
    secrets: dict[str, str] = field(default_factory=dict)


def _directory_files(folder: Path, inside: str, depth: int, found: list[Path]) -> bool:
    """Ansible's _get_dir_vars_files; False when the tree is larger than fleet reads. A
    folder that leads out of the inventory's is not walked: it is reported as its files."""
    if depth > MAX_VARS_DEPTH:
        return False
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or name.endswith("~"):
            continue
        path = folder / name
        extension = os.path.splitext(name)[1]
        if path.is_dir() and not extension:
            if not _inside(inside, path):
                found.append(path)
            elif not _directory_files(path, inside, depth + 1, found):
                return False
        elif path.is_file() and (not extension or extension in VARS_EXTENSIONS):
            found.append(path)
        if len(found) > MAX_VARS_FILES:
            return False
    return True


def _inside(folder: str, path: Path) -> bool:
    return os.path.commonpath([folder, os.path.realpath(path)]) == folder


def vars_files(base: Path, kind: str, name: str) -> list[Path | Problem]:
    """The files of host_vars/NAME or group_vars/NAME, each checked to be inside the
    inventory's folder (so a symbolic link can't make fleet read other files)."""
    directory = base / kind
    if not directory.is_dir():
        return []
    inside = os.path.realpath(base)
    files: list[Path] = []
    for extension in ("", *VARS_EXTENSIONS):
        candidate = directory / f"{name}{extension}"
        if not candidate.exists():
            continue
        if candidate.is_dir() and _inside(inside, candidate):
            try:
                complete = _directory_files(candidate, inside, 0, files)
            except OSError as exc:
                return [Problem(str(candidate), 0, 0, (), f"cannot read: "
                                f"{exc.strerror or exc}")]
            if not complete:
                return [Problem(str(candidate), 0, 0, (), f"not read: more than "
                                f"{MAX_VARS_FILES} files or {MAX_VARS_DEPTH} levels of folders")]
        else:
            files.append(candidate)
        break  # Ansible reads the first that exists, a directory before a file
    checked: list[Path | Problem] = []
    for file in files:
        if not _inside(inside, file):
            checked.append(Problem(str(file), 0, 0, (), f"not read: {kind} files must be inside "
                                   f"the inventory's folder {base}, this one is "
                                   f"{os.path.realpath(file)}"))
        else:
            checked.append(file)
    return checked


def _is_json(text: str) -> bool:
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def read_vars_file(file: Path, kind: str, vault: VaultSecrets) -> tuple[dict[str, Any] | None,
                                                                       list[Problem]]:
    """One vars file's mapping (None when empty), and its problems."""
    text, problem = read_source(file)
    if text is None:
        return None, [problem] if problem else []
    vaulted = is_vault_file(text)
    if vaulted:
        plaintext, problem = vault.vault_file(text, str(file))
        if plaintext is None:
            return None, [problem] if problem else []
        doc = parse_yaml(plaintext, str(file), ansible_tags=True)
        # No problem quotes the decrypted text: positions and what is wrong, not values.
        doc.problems = [Problem(p.file, p.line, p.column, p.path,
                                "in the decrypted file: " + (
                                    "a value cannot be read as its tag says"
                                    if p.message.startswith("cannot read") else p.message))
                        for p in doc.problems]
    else:
        doc = parse_yaml(text, str(file), ansible_tags=True)
        if _is_json(text):
            doc.data = decode_ansible_json(doc.data)
    if doc.data is None:
        return None, doc.problems
    if not isinstance(doc.data, dict):
        return None, [*doc.problems, doc.problem((), f"{kind} must be a mapping of variable "
                                                     "names to values")]
    if vaulted:
        doc.data = vault.all_secret(doc.data, (), text)
    vault.reveal_in(doc)
    return doc.data, doc.problems


def load_layer(base: Path, kind: str, name: str, vault: VaultSecrets
               ) -> tuple[dict[str, Any], list[Problem]]:
    """The variables of group_vars/NAME or host_vars/NAME, merged in file order."""
    merged: dict[str, Any] = {}
    problems: list[Problem] = []
    for file in vars_files(base, kind, name):
        if isinstance(file, Problem):
            problems.append(file)
            continue
        data, found = read_vars_file(file, kind, vault)
        problems += found
        merged.update(data or {})
    return merged, problems

