"""Inventories: load native or Ansible files, resolve groups, labels and variables per host.

Variable precedence, lowest to highest: playbook vars, inventory vars, group vars (parents
before children, then by name), host vars. This module merges the inventory part; the
playbook's vars go underneath at render time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.config import ansible
from fleet.config.inventory_model import (
    HostEntry,
    HostKeyChecking,
    InventoryFile,
    address_problem,
)
from fleet.config.patterns import PatternError, select_hosts
from fleet.config.problems import ConfigError, Problem, errors_in
from fleet.config.source import SourceDoc, parse_yaml, read_source
from fleet.config.validation import validate_model

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_STATE_DIR = ".fleet"  # relative: under the SSH user's home, writable without root
NATIVE_SECTIONS = frozenset({"defaults", "hosts", "groups"})


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


def read_inventory_file(path: str) -> tuple[InventoryFile | None, SourceDoc, list[Problem]]:
    """Parse one file in any supported format into the native model."""
    text, problem = read_source(path)
    if text is None:
        return None, SourceDoc(path, None), [problem] if problem else []
    if ansible.looks_like_ini(path, text):
        return ansible.read_ini(path, text)
    if path.endswith(".json"):
        problem = ansible.json_problem(text, path)
        if problem is not None:
            return None, SourceDoc(path, None), [problem]
    doc = parse_yaml(text, path)
    if doc.data is None and doc.problems:
        return None, doc, list(doc.problems)
    if doc.data is None:
        return InventoryFile(), doc, [doc.problem((), "inventory is empty", severity="warning")]
    if not isinstance(doc.data, dict):
        return None, doc, [doc.problem((), "an inventory must be a mapping")]
    if _is_native(doc.data, path):
        model, problems = validate_model(InventoryFile, doc.data, doc)
        return model, doc, doc.problems + problems
    model, doc, problems = ansible.from_ansible_data(doc)
    return model, doc, doc.problems + problems


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


def _is_native_doc(item: _Loaded) -> bool:
    return _is_native(item.doc.data, item.doc.path)


def resolve(loaded: Sequence[_Loaded]) -> tuple[Inventory, list[Problem]]:
    problems: list[Problem] = []
    entries: dict[str, tuple[HostEntry, _Loaded]] = {}
    for item in loaded:
        for name, entry in item.model.hosts.items():
            if name in entries:
                problems.append(item.doc.problem(
                    ("hosts", name),
                    f"duplicate host name '{name}' (also in {entries[name][1].doc.path})",
                    at_key=True))
                continue
            entries[name] = (entry or HostEntry(), item)

    base_hosts: list[Host] = []
    for name, (entry, item) in entries.items():
        d = item.model.defaults
        base_hosts.append(Host(
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
            labels={**d.labels, **entry.labels},
            source=item.doc.path,
        ))

    seen_addresses: dict[tuple[str, int], str] = {}
    for host in base_hosts:
        key = (host.address, host.port)
        if key in seen_addresses:
            item = entries[host.name][1]
            problems.append(item.doc.problem(
                ("hosts", host.name, "address"),
                f"duplicate address {host.address}:{host.port} (also host "
                f"'{seen_addresses[key]}')"))
        else:
            seen_addresses[key] = host.name

    # Groups: direct hosts, pattern matches, then children (transitively).
    group_defs: dict[str, tuple[Any, _Loaded]] = {}
    for item in loaded:
        for gname, group in item.model.groups.items():
            if gname in group_defs:
                problems.append(item.doc.problem(("groups", gname),
                                                 f"group '{gname}' is defined twice", at_key=True))
                continue
            group_defs[gname] = (group, item)
    direct: dict[str, set[str]] = {}
    for gname, (group, item) in group_defs.items():
        members = set()
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
        direct[gname] = members & set(entries)
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

    groups = {g: frozenset(members_of(g)) for g in group_defs}
    depths = _group_depths(children)

    hosts: list[Host] = []
    for host in base_hosts:
        entry, item = entries[host.name]
        host_groups = sorted((g for g, m in groups.items() if host.name in m),
                             key=lambda g: (depths.get(g, 0), g))
        merged: dict[str, Any] = {}
        for other in loaded:
            merged.update(other.model.vars)
        for gname in host_groups:
            merged.update(group_defs[gname][0].vars)
        merged.update(entry.vars)
        # Ansible connection variables set for a group (or `all`) apply to its hosts, unless
        # the host sets its own.
        settings, errors = ansible.connection_settings(merged, f"host '{host.name}'")
        problems.extend(item.doc.problem(("hosts", host.name), e, at_key=True) for e in errors)
        inherited: dict[str, Any] = {k: v for k, v in settings.items()
                                     if getattr(entry, k) is None}
        if "ssh_key" in inherited:
            inherited["ssh_key"] = _expand_path(inherited["ssh_key"], item.base)
        if entry.address is None and "address" not in inherited:
            problem = address_problem(host.name)
            if problem:
                setting = "address" if _is_native_doc(item) else "ansible_host"
                problems.append(item.doc.problem(
                    ("hosts", host.name), f"host '{host.name}' has no address and its name "
                    f"is not one: {problem}; set {setting}", at_key=True))
        hosts.append(Host(**{**host.__dict__, **inherited, "vars": merged,
                             "groups": tuple(host_groups)}))
    return Inventory(tuple(hosts), groups, tuple(i.doc.path for i in loaded)), problems


def load_inventory_with_problems(paths: Sequence[str]) -> tuple[Inventory, list[Problem]]:
    problems: list[Problem] = []
    loaded: list[_Loaded] = []
    for path in paths:
        model, doc, found = read_inventory_file(path)
        problems.extend(found)
        if model is not None:
            loaded.append(_Loaded(model, doc, Path(path).resolve().parent))
    inventory, found = resolve(loaded)
    return inventory, problems + found


def load_inventory(paths: Sequence[str]) -> Inventory:
    inventory, problems = load_inventory_with_problems(paths)
    if errors_in(problems):
        raise ConfigError(problems)
    return inventory
