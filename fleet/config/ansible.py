"""Ansible inventories as they are: YAML, INI, and `ansible-inventory --list` JSON.

Each is converted to fleet's native inventory model: groups become groups, variables
become vars, and the connection variables (`ansible_host`, `ansible_user`, ...) become
connection settings. A host var `fleet_labels` (a mapping) gives a host its labels.
`group_vars/` and `host_vars/` directories beside the file are read as Ansible would.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import Any

from fleet.config.inventory_model import GroupEntry, HostEntry, InventoryFile
from fleet.config.problems import Problem
from fleet.config.source import Location, SourceDoc, load_yaml, unprintable_problem

CONNECTION_VARS = {
    "ansible_host": "address", "ansible_ssh_host": "address",
    "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_ssh_private_key_file": "ssh_key", "ansible_private_key_file": "ssh_key",
}
LABELS_VAR = "fleet_labels"
IMPLICIT_GROUPS = ("all", "ungrouped")


def looks_like_ini(path: str, text: str) -> bool:
    if path.endswith((".yml", ".yaml", ".json")):
        return False
    if path.endswith((".ini", ".cfg")):
        return True
    head = text[:4096]
    first = next((ln.strip() for ln in head.splitlines() if ln.strip()
                  and not ln.lstrip().startswith(("#", ";"))), "")
    if first.startswith("[") or ("=" in first and ":" not in first.split("=")[0]):
        return True
    # A YAML mapping's first line has `key:`; an INI host line (`web1`, `web1:2222`) has not.
    return bool(first) and not (first.startswith(("---", "{", "%")) or first.endswith(":")
                                or ": " in first)


def split_host_port(name: str) -> tuple[str, int | None]:
    """`web1:2222` -> ('web1', 2222), Ansible's host:port notation (IPv6 left alone)."""
    head, sep, tail = name.rpartition(":")
    if sep and head and ":" not in head and tail.isdigit():
        return head, int(tail)
    return name, None


def connection_settings(
    variables: dict[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    """Connection settings from Ansible variables, and messages for the ones that are bad."""
    settings: dict[str, Any] = {}
    errors: list[str] = []
    for key, value in variables.items():
        field = CONNECTION_VARS.get(key)
        if field is None or value is None:
            continue
        if field == "port":
            port = value if isinstance(value, int) and not isinstance(value, bool) else (
                int(value) if isinstance(value, str) and value.strip().isdigit() else None)
            if port is None or not 1 <= port <= 65535:
                errors.append(f"{where}: {key} must be a port number from 1 to 65535, "
                              f"got {value!r}")
                continue
            settings[field] = port
        else:
            settings[field] = str(value)
    return settings, errors


class _Builder:
    """Accumulates Ansible hosts, groups and vars, then builds the native model."""

    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.problems: list[Problem] = []

    def group(self, name: str) -> dict[str, Any]:
        return self.groups.setdefault(name, {"hosts": [], "children": [], "vars": {}})

    def add_host(self, name: str, group: str | None, variables: dict[str, Any],
                 path: tuple[str | int, ...] | None = None) -> None:
        name, port = split_host_port(name)
        if port is not None:
            variables = {"ansible_port": port, **variables}
        if path is not None and ("hosts", name) not in self.doc.key_locations:
            self.doc.key_locations[("hosts", name)] = self.doc.locate(path, at_key=True)
        self.host_vars.setdefault(name, {}).update(variables)
        if group and group not in IMPLICIT_GROUPS:
            hosts = self.group(group)["hosts"]
            if name not in hosts:
                hosts.append(name)

    def load_var_dirs(self, base: Path) -> None:
        for kind, targets in (("group_vars", [*self.groups, "all"]),
                              ("host_vars", list(self.host_vars))):
            for target in targets:
                for file in _var_files(base / kind, target):
                    sub = load_yaml(file)
                    self.problems.extend(sub.problems)
                    if sub.data is not None and not isinstance(sub.data, dict):
                        self.problems.append(sub.problem((), f"{kind} must be a mapping of "
                                                             "variable names to values"))
                    elif isinstance(sub.data, dict):
                        if kind == "host_vars":
                            self.host_vars[target].update(sub.data)
                        else:
                            self.group(target)["vars"].update(sub.data)

    def build(self) -> InventoryFile:
        hosts: dict[str, HostEntry | None] = {}
        for name, variables in self.host_vars.items():
            settings, errors = connection_settings(variables, f"host '{name}'")
            self.problems.extend(self.doc.problem(("hosts", name), e, at_key=True)
                                 for e in errors)
            rest = {k: v for k, v in variables.items()
                    if k not in CONNECTION_VARS and k != LABELS_VAR}
            labels = variables.get(LABELS_VAR)
            if isinstance(labels, dict):
                settings["labels"] = {str(k): str(v) for k, v in labels.items()}
            elif labels is not None:
                self.problems.append(self.doc.problem(
                    ("hosts", name), f"host '{name}': {LABELS_VAR} must be a mapping",
                    at_key=True))
            hosts[name] = HostEntry(**settings, vars=rest)
        all_vars = self.groups.get("all", {}).get("vars", {})
        groups = {
            name: GroupEntry(hosts=g["hosts"], children=[c for c in g["children"]
                                                         if c not in IMPLICIT_GROUPS],
                             vars=g["vars"])
            for name, g in self.groups.items() if name not in IMPLICIT_GROUPS
        }
        return InventoryFile(hosts=hosts, groups=groups, vars=all_vars)


def _var_files(directory: Path, name: str) -> list[Path]:
    found = [directory / f"{name}{ext}" for ext in ("", ".yml", ".yaml", ".json")]
    files = [f for f in found if f.is_file()]
    folder = directory / name
    if folder.is_dir():
        files += sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml", ".json"))
    return files


def _walk_yaml_group(builder: _Builder, name: str, body: Any, path: tuple[str, ...]) -> None:
    if body is None:
        builder.group(name)
        return
    if not isinstance(body, dict):
        builder.problems.append(builder.doc.problem(path, f"group '{name}' must be a mapping"))
        return
    group = builder.group(name)
    for key in body:
        if key not in ("hosts", "children", "vars"):
            builder.problems.append(builder.doc.problem(
                (*path, key), f"unknown key '{key}' in Ansible group (hosts, children, vars)",
                at_key=True))
    for key in ("hosts", "children", "vars"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            builder.problems.append(builder.doc.problem(
                (*path, key), f"'{key}' of an Ansible group must be a mapping, "
                              f"e.g. {key}: {{name: ...}}"))
    hosts = body.get("hosts")
    for host, variables in (hosts if isinstance(hosts, dict) else {}).items():
        if variables is not None and not isinstance(variables, dict):
            builder.problems.append(builder.doc.problem(
                (*path, "hosts", host), f"host '{host}' must map to its variables (or nothing)"))
            variables = None
        builder.add_host(str(host), name, dict(variables or {}), (*path, "hosts", host))
    if isinstance(body.get("vars"), dict):
        group["vars"].update(body["vars"])
    children = body.get("children")
    for child, child_body in (children if isinstance(children, dict) else {}).items():
        if child not in group["children"]:
            group["children"].append(child)
        _walk_yaml_group(builder, str(child), child_body, (*path, "children", str(child)))


def from_ansible_data(doc: SourceDoc) -> tuple[InventoryFile | None, SourceDoc, list[Problem]]:
    builder = _Builder(doc)
    data: dict[str, Any] = doc.data
    if "_meta" in data or doc.path.endswith(".json"):  # `ansible-inventory --list`
        hostvars = (data.get("_meta") or {}).get("hostvars") or {}
        for name, body in data.items():
            if isinstance(body, list):  # the short form: a group is a list of hosts
                body = {"hosts": body}
            if name == "_meta" or not isinstance(body, dict):
                continue
            group = builder.group(name)
            for host in body.get("hosts") or []:
                builder.add_host(str(host), name, {})
            group["children"].extend(str(c) for c in body.get("children") or [])
            if isinstance(body.get("vars"), dict):
                group["vars"].update(body["vars"])
        for name, variables in hostvars.items():
            builder.add_host(str(name), None,
                             dict(variables) if isinstance(variables, dict) else {})
    else:
        for name, body in data.items():
            _walk_yaml_group(builder, str(name), body, (str(name),))
    builder.load_var_dirs(Path(doc.path).parent)
    return builder.build(), doc, builder.problems


_RANGE = re.compile(r"\[([0-9a-z]+):([0-9a-z]+)\]")


def expand_host_range(name: str) -> list[str]:
    """`web[01:03]` -> web01, web02, web03 (Ansible's numeric and alphabetic ranges)."""
    match = _RANGE.search(name)
    if not match:
        return [name]
    start, end = match.groups()
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1)]
    else:
        values = [chr(c) for c in range(ord(start), ord(end) + 1)]
    head, tail = name[: match.start()], name[match.end():]
    return [full for v in values for full in expand_host_range(f"{head}{v}{tail}")]


def _ini_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_ini(path: str, text: str) -> tuple[InventoryFile | None, SourceDoc, list[Problem]]:
    doc = SourceDoc(path=path, data=None)
    unprintable = unprintable_problem(text, path)
    if unprintable is not None:
        return None, doc, [unprintable]
    builder = _Builder(doc)
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            header = line.strip("[]")
            section, _, kind = header.partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                builder.problems.append(Problem(path, number, 1, (header,),
                                                f"unknown section kind ':{kind}'"))
            builder.group(section)
            doc.key_locations.setdefault(("groups", section), Location(number, 1))
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            builder.problems.append(Problem(path, number, 1, (section,), f"cannot parse: {exc}"))
            continue
        if kind == "vars":
            key, found, value = line.partition("=")
            if not found:
                builder.problems.append(Problem(path, number, 1, (section,),
                                                "expected NAME=VALUE in a :vars section"))
                continue
            builder.group(section)["vars"][key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            builder.group(section)["children"].append(words[0])
            builder.group(words[0])
        else:
            variables: dict[str, Any] = {}
            for word in words[1:]:
                key, found, value = word.partition("=")
                if not found:
                    builder.problems.append(Problem(path, number, 1, (section, words[0]),
                                                    f"expected NAME=VALUE, got {word!r}"))
                    continue
                variables[key] = _ini_value(value)
            for name in expand_host_range(words[0]):
                bare = split_host_port(name)[0]
                doc.key_locations.setdefault(("hosts", bare), Location(number, 1))
                builder.add_host(name, section, variables)
    builder.load_var_dirs(Path(path).parent)
    return builder.build(), doc, builder.problems
