"""Inventories: load native or Ansible files, resolve groups, labels and variables per host.

Variable precedence, lowest to highest: playbook vars, then the inventory's, merged as
Ansible merges them (`merged_vars`): inventory vars, group vars (parents before children,
then by ansible_group_priority, then by name), group_vars/ files in the same order, host
vars, host_vars/ files. This module merges the inventory part; the playbook's vars go
underneath at render time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.config import ansible
from fleet.config.inventory_model import (
    GroupEntry,
    HostEntry,
    HostKeyChecking,
    InventoryFile,
    address_problem,
)
from fleet.config.patterns import PatternError, select_hosts
from fleet.config.problems import ConfigError, Problem, errors_in
from fleet.config.secrets import token
from fleet.config.source import SourceDoc, parse_yaml, read_source
from fleet.config.validation import validate_model
from fleet.config.vault import VaultDecrypt, VaultSecrets, decode_ansible_json

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_STATE_DIR = ".fleet"  # relative: under the SSH user's home, writable without root
NATIVE_SECTIONS = frozenset({"defaults", "hosts", "groups"})
# Ansible's default INVENTORY_IGNORE_EXTS: files a directory source leaves out.
IGNORED_EXTENSIONS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst",
                      ".orig", ".ini", ".cfg", ".retry")
MAX_DIRECTORY_FILES = 1000  # files and directories one inventory directory may hold
MAX_DIRECTORY_DEPTH = 16  # folders inside an inventory directory (a symlink loop ends here)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int = 22
    user: str | None = None
    ssh_key: str | None = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    host_key_checking: HostKeyChecking = "strict"
    jump: str | None = None
    docker_socket: str = DEFAULT_DOCKER_SOCKET
    state_dir: str = DEFAULT_STATE_DIR
    labels: Mapping[str, str] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Inventory:
    hosts: tuple[Host, ...]
    groups: Mapping[str, frozenset[str]]
    sources: tuple[str, ...] = ()
    # Values decrypted from Ansible Vault, by the secret names their tokens in vars carry.
    secrets: Mapping[str, str] = field(default_factory=dict)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def select(self, pattern: str) -> list[Host]:
        names = set(select_hosts(pattern, self.hosts, self.groups).hosts)
        return [h for h in self.hosts if h.name in names]


def _expand_path(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    expanded = Path(os.path.expanduser(value))
    return str(expanded if expanded.is_absolute() else (base / expanded))


def _is_native(data: Any, path: str) -> bool:
    """Native unless it looks like Ansible's (an `all:` group, or groups at the top level).

    A native file with a misspelt top-level key is still native, so the typo is reported
    as one (with "did you mean"), not as a strange Ansible group.
    """
    if path.endswith(".json") or not isinstance(data, dict) or "all" in data:
        return False
    return bool(set(data) & NATIVE_SECTIONS)


def read_inventory_file(path: str, vault: VaultSecrets | None = None,
                        vars_dir: Path | None = None) -> ansible.AnsibleRead:
    """Parse one file in any supported format into the native model (and, for Ansible's,
    the layers of variables it keeps apart, from group_vars/ and host_vars/ in `vars_dir`,
    by default the file's directory)."""
    vault = vault or VaultSecrets()
    layers = ansible.AnsibleLayers(secrets=vault.values)
    text, problem = read_source(path)
    if text is None:
        return None, SourceDoc(path, None), [problem] if problem else [], layers
    if ansible.looks_like_ini(path, text):
        return ansible.read_ini(path, text, vault, vars_dir)
    if path.endswith(".json"):
        problem = ansible.json_problem(text, path)
        if problem is not None:
            return None, SourceDoc(path, None), [problem], layers
    doc = parse_yaml(text, path, ansible_tags=True)
    if doc.data is None and doc.problems:
        return None, doc, list(doc.problems), layers
    if doc.data is None:
        return InventoryFile(), doc, [doc.problem((), "inventory is empty", severity="warning")
                                      ], layers
    if not isinstance(doc.data, dict):
        return None, doc, [doc.problem((), "an inventory must be a mapping")], layers
    is_json = path.endswith(".json") or text.lstrip().startswith("{")
    if is_json:
        doc.data = decode_ansible_json(doc.data)  # as Ansible's JSON reader decodes it
    vault.reveal_in(doc)
    if _is_native(doc.data, path):
        model, problems = validate_model(InventoryFile, doc.data, doc)
        return model, doc, doc.problems + problems, layers
    model, doc, problems, layers = ansible.from_ansible_data(doc, vault, is_json=is_json,
                                                             vars_dir=vars_dir)
    return model, doc, doc.problems + problems, layers


def _group_depths(groups: Mapping[str, Sequence[str]]) -> dict[str, int]:
    parents: dict[str, list[str]] = {name: [] for name in groups}
    for name, children in groups.items():
        for child in children:
            parents.setdefault(child, []).append(name)
    depths: dict[str, int] = {}

    def depth(name: str, trail: tuple[str, ...]) -> int:
        if name in depths:
            return depths[name]
        if name in trail:
            return 0  # cycles are reported elsewhere
        result = max((depth(p, (*trail, name)) + 1 for p in parents.get(name, [])), default=0)
        depths[name] = result
        return result

    for name in groups:
        depth(name, ())
    return depths


def _find_cycle(children: Mapping[str, Sequence[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if state.get(name) == 1:
            return [*trail[trail.index(name):], name]
        if state.get(name) == 2:
            return None
        state[name] = 1
        for child in children.get(name, []):
            found = visit(child, [*trail, name])
            if found:
                return found
        state[name] = 2
        return None

    for name in sorted(children):
        cycle = visit(name, [])
        if cycle:
            return cycle
    return None


@dataclass
class _Loaded:
    model: InventoryFile
    doc: SourceDoc
    base: Path
    layers: ansible.AnsibleLayers = field(default_factory=ansible.AnsibleLayers)

    @property
    def native(self) -> bool:
        return _is_native(self.doc.data, self.doc.path)


def _labels(variables: Mapping[str, Any]) -> dict[str, str] | None:
    labels = variables.get(ansible.LABELS_VAR)
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else None


def _base_host(name: str, entry: HostEntry, item: _Loaded) -> Host:
    d = item.model.defaults
    return Host(
        name=name,
        address=entry.address or name,
        port=entry.port or d.port or 22,
        user=entry.user or d.user,
        ssh_key=_expand_path(entry.ssh_key or d.ssh_key, item.base),
        known_hosts=_expand_path(entry.known_hosts or d.known_hosts or DEFAULT_KNOWN_HOSTS,
                                 item.base) or DEFAULT_KNOWN_HOSTS,
        host_key_checking=entry.host_key_checking or d.host_key_checking or "strict",
        jump=entry.jump or d.jump,
        docker_socket=entry.docker_socket or d.docker_socket or DEFAULT_DOCKER_SOCKET,
        state_dir=entry.state_dir or d.state_dir or DEFAULT_STATE_DIR,
        # An Ansible host's own fleet_labels, for `match:` patterns; its groups' come later.
        labels={**d.labels, **entry.labels,
                **((None if item.native else _labels(entry.vars)) or {})},
        source=item.doc.path,
    )


@dataclass
class _Groups:
    defs: dict[str, tuple[GroupEntry, _Loaded]]
    members: dict[str, frozenset[str]]
    depths: dict[str, int]
    priorities: dict[str, int]  # ansible_group_priority, the last file's that sets it

    def priority(self, name: str) -> int:
        return self.priorities.get(name, 1)

    def of(self, host: str) -> list[str]:
        """A host's groups in Ansible's order of precedence: by depth (parents first), then
        ansible_group_priority, then name."""
        return sorted((g for g, m in self.members.items() if host in m),
                      key=lambda g: (self.depths.get(g, 0), self.priority(g), g))


def _merged_group(first: GroupEntry, second: GroupEntry) -> GroupEntry:
    """A group two Ansible inventory files define, as Ansible merges it: every member and
    child of both, the later file's vars over the earlier's."""
    return GroupEntry(hosts=list(dict.fromkeys([*first.hosts, *second.hosts])),
                      children=list(dict.fromkeys([*first.children, *second.children])),
                      vars={**first.vars, **second.vars})


def _resolve_groups(loaded: Sequence[_Loaded], entries: Mapping[str, Any],
                    base_hosts: Sequence[Host], problems: list[Problem]) -> _Groups:
    """Groups: direct hosts, pattern matches, then children (transitively)."""
    group_defs: dict[str, tuple[GroupEntry, _Loaded]] = {}
    every_def: list[tuple[str, GroupEntry, _Loaded]] = []
    priorities: dict[str, int] = {}
    for item in loaded:
        for gname, group in item.model.groups.items():
            if gname in group_defs:
                earlier, first_item = group_defs[gname]
                if item.native or first_item.native:
                    problems.append(item.doc.problem(
                        ("groups", gname), f"group '{gname}' is defined twice (also in "
                        f"{first_item.doc.path})", at_key=True))
                    continue
                group_defs[gname] = (_merged_group(earlier, group), first_item)
            else:
                group_defs[gname] = (group, item)
            every_def.append((gname, group, item))
            if gname in item.layers.priorities:
                priorities[gname] = item.layers.priorities[gname]
    direct: dict[str, set[str]] = {}
    for gname, group, item in every_def:
        members = direct.setdefault(gname, set())
        for index, hname in enumerate(group.hosts):
            if hname not in entries:
                problems.append(item.doc.problem(("groups", gname, "hosts", index),
                                                 f"unknown host '{hname}'"))
            members.add(hname)
        if group.match:
            try:
                result = select_hosts(group.match, base_hosts)
                members.update(result.hosts)
                if not result.hosts:
                    problems.append(item.doc.problem(
                        ("groups", gname, "match"),
                        f"pattern '{group.match}' matches no host", severity="warning"))
            except PatternError as exc:
                problems.append(item.doc.problem(("groups", gname, "match"), str(exc)))
        for index, child in enumerate(group.children):
            if child not in group_defs:
                problems.append(item.doc.problem(("groups", gname, "children", index),
                                                 f"unknown group '{child}'"))
    direct = {gname: members & set(entries) for gname, members in direct.items()}
    children = {g: [c for c in d.children if c in group_defs] for g, (d, _) in group_defs.items()}
    cycle = _find_cycle(children)
    if cycle:
        item = group_defs[cycle[0]][1]
        problems.append(item.doc.problem(("groups", cycle[0], "children"),
                                         "groups contain each other: " + " -> ".join(cycle)))
        children = {g: [] for g in children}

    def members_of(gname: str, trail: frozenset[str] = frozenset()) -> set[str]:
        result = set(direct.get(gname, set()))
        for child in children.get(gname, []):
            if child not in trail:
                result |= members_of(child, trail | {gname})
        return result

    return _Groups(group_defs, {g: frozenset(members_of(g)) for g in group_defs},
                   _group_depths(children), priorities)


def merged_vars(name: str, entry: HostEntry, host_groups: Sequence[str], groups: _Groups,
                loaded: Sequence[_Loaded]) -> dict[str, Any]:
    """A host's variables in Ansible's order (its default VARIABLE_PRECEDENCE), lowest
    first: `all`'s inventory vars, its groups' inventory vars, group_vars/all files, its
    groups' group_vars files, its own inventory vars, its host_vars files. A host in no
    group is in Ansible's `ungrouped`. Each inventory file's vars files follow the files'
    order; groups are in `_Groups.of` order."""
    in_groups = list(host_groups) or ["ungrouped"]
    merged: dict[str, Any] = {}
    for item in loaded:
        merged.update(item.model.vars)
    for gname in in_groups:
        if gname in groups.defs:
            merged.update(groups.defs[gname][0].vars)
        for item in loaded:
            merged.update(item.layers.implicit_vars.get(gname, {}))
    for item in loaded:
        merged.update(item.layers.group_files.get("all", {}))
    for item in loaded:
        for gname in in_groups:
            merged.update(item.layers.group_files.get(gname, {}))
    merged.update(entry.vars)
    for item in loaded:
        merged.update(item.layers.host_files.get(name, {}))
    return merged


def _connection_values(merged: Mapping[str, Any], secrets: Mapping[str, str]
                       ) -> dict[str, Any]:
    """The connection variables, a !vault one decrypted: fleet connects with it."""
    return {k: secrets.get(v, v) if isinstance(v, str) else v for k, v in merged.items()
            if k in ansible.CONNECTION_VARS}


def _check_addresses(hosts: Sequence[Host], entries: Mapping[str, tuple[HostEntry, _Loaded]],
                     problems: list[Problem]) -> None:
    seen_addresses: dict[tuple[str, int], str] = {}
    for host in hosts:
        key = (host.address, host.port)
        if key in seen_addresses:
            item = entries[host.name][1]
            problems.append(item.doc.problem(
                ("hosts", host.name, "address"),
                f"duplicate address {host.address}:{host.port} (also host "
                f"'{seen_addresses[key]}')"))
        else:
            seen_addresses[key] = host.name


def resolve(loaded: Sequence[_Loaded]) -> tuple[Inventory, list[Problem]]:
    problems: list[Problem] = []
    entries: dict[str, tuple[HostEntry, _Loaded]] = {}
    for item in loaded:
        for name, entry in item.model.hosts.items():
            if name in entries:
                earlier, first_item = entries[name]
                if item.native or first_item.native:
                    problems.append(item.doc.problem(
                        ("hosts", name),
                        f"duplicate host name '{name}' (also in {first_item.doc.path})",
                        at_key=True))
                    continue
                # Ansible merges a host several files name: the later file's vars win.
                merged = {**earlier.vars, **(entry.vars if entry else {})}
                entries[name] = (earlier.model_copy(update={"vars": merged}), first_item)
                continue
            entries[name] = (entry or HostEntry(), item)
    base_hosts = [_base_host(name, entry, item) for name, (entry, item) in entries.items()]
    groups = _resolve_groups(loaded, entries, base_hosts, problems)
    secrets = {k: v for item in loaded for k, v in item.layers.secrets.items()}
    by_token = {token(name): value for name, value in secrets.items()}

    hosts: list[Host] = []
    for host in base_hosts:
        entry, item = entries[host.name]
        host_groups = groups.of(host.name)
        merged = merged_vars(host.name, entry, host_groups, groups, loaded)
        # Connection variables, from wherever they are set, apply unless a native host
        # sets the setting itself (an Ansible host entry sets none: they are its vars).
        settings, errors = ansible.connection_settings(_connection_values(merged, by_token),
                                                       f"host '{host.name}'")
        problems.extend(item.doc.problem(("hosts", host.name), e, at_key=True) for e in errors)
        inherited: dict[str, Any] = {k: v for k, v in settings.items()
                                     if getattr(entry, k) is None}
        if "ssh_key" in inherited and item.native:
            inherited["ssh_key"] = _expand_path(inherited["ssh_key"], item.base)
        # (an Ansible key file is kept as written: `~` and a relative path are read when
        # connecting, from where fleet runs, as Ansible's ssh does)
        if not item.native:
            labels = _labels(merged)
            if labels is not None:
                inherited["labels"] = labels  # a var like any: the winning value, whole
            elif merged.get(ansible.LABELS_VAR) is not None:
                problems.append(item.doc.problem(
                    ("hosts", host.name), f"host '{host.name}': {ansible.LABELS_VAR} must be "
                    "a mapping", at_key=True))
        if entry.address is None and "address" not in inherited:
            problem = address_problem(host.name)
            if problem:
                setting = "address" if item.native else "ansible_host"
                problems.append(item.doc.problem(
                    ("hosts", host.name), f"host '{host.name}' has no address and its name "
                    f"is not one: {problem}; set {setting}", at_key=True))
        variables = {k: v for k, v in merged.items()
                     if k not in ansible.CONNECTION_VARS and k != ansible.LABELS_VAR}
        hosts.append(Host(**{**host.__dict__, **inherited, "vars": variables,
                             "groups": tuple(host_groups)}))
    _check_addresses(hosts, entries, problems)
    return Inventory(tuple(hosts), groups.members, tuple(i.doc.path for i in loaded),
                     secrets), problems


def inventory_files(path: str) -> tuple[list[str], list[Problem]]:
    """The files of one inventory source: a file itself, or a directory's files as Ansible
    reads them, in name order and into subdirectories, leaving out hidden files,
    group_vars/ and host_vars/ (vars of the files beside them) and Ansible's default
    INVENTORY_IGNORE_EXTS."""
    if not os.path.isdir(path):
        return [path], []
    found: list[str] = []
    pending = [(Path(path), 0)]
    while pending:
        directory, depth = pending.pop(0)
        if depth > MAX_DIRECTORY_DEPTH:
            return [], [Problem(str(directory), 0, 0, (), "inventory directory nests more "
                                f"than {MAX_DIRECTORY_DEPTH} levels of folders")]
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            return [], [Problem(str(directory), 0, 0, (),
                                f"cannot read inventory directory: {exc.strerror}")]
        nested: list[tuple[Path, int]] = []
        for name in names:
            entry = directory / name
            if name.startswith(".") or name.endswith(IGNORED_EXTENSIONS):
                continue
            if entry.is_dir():
                if name not in ("group_vars", "host_vars"):
                    nested.append((entry, depth + 1))
            elif entry.is_file():
                found.append(str(entry))
            if len(found) + len(nested) + len(pending) > MAX_DIRECTORY_FILES:
                return [], [Problem(path, 0, 0, (), "inventory directory holds more than "
                                    f"{MAX_DIRECTORY_FILES} files and directories")]
        pending[:0] = nested  # depth first, as Ansible walks a directory source
    return found, []


def load_inventory_with_problems(paths: Sequence[str], vault: VaultDecrypt | None = None
                                 ) -> tuple[Inventory, list[Problem]]:
    """Every inventory file (a directory: its files), with the problems found; `vault`
    decrypts Ansible Vault values (without it, each is a problem)."""
    problems: list[Problem] = []
    loaded: list[_Loaded] = []
    secrets = VaultSecrets(vault) if vault else VaultSecrets()
    files: list[tuple[str, Path | None]] = []
    for source in paths:
        in_source, trouble = inventory_files(source)
        vars_dir = Path(source) if os.path.isdir(source) else None
        files += [(path, vars_dir) for path in in_source]
        problems += trouble
    for path, vars_dir in files:
        model, doc, found, layers = read_inventory_file(path, secrets, vars_dir)
        problems.extend(found)
        if model is not None:
            loaded.append(_Loaded(model, doc, Path(path).resolve().parent, layers))
    inventory, found = resolve(loaded)
    return inventory, problems + found


def load_inventory(paths: Sequence[str]) -> Inventory:
    inventory, problems = load_inventory_with_problems(paths)
    if errors_in(problems):
        raise ConfigError(problems)
    return inventory
