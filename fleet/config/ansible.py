"""Ansible inventories as they are: YAML, INI, and `ansible-inventory --list` JSON.

Each is read as Ansible 2.14 reads it (its yaml, ini and script inventory plugins) and
converted to fleet's native inventory model: groups become groups, variables become vars,
and the connection variables (`ansible_host`, `ansible_user`, ...) become connection
settings. A host var `fleet_labels` (a mapping) gives a host its labels. `group_vars/` and
`host_vars/` beside the file are read as Ansible's host_group_vars plugin reads them, and
kept apart (`AnsibleLayers`) so that the inventory merges variables in Ansible's order.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path
from typing import Any

from fleet.config.ansible_ranges import (
    MAX_RANGE_HOSTS,
    HostRangeError,
    expand_host_range,
    split_host_port,
)
from fleet.config.ansible_vars import AnsibleLayers, load_layer
from fleet.config.inventory_model import (
    GroupEntry,
    HostEntry,
    InventoryFile,
    address_problem,
    user_problem,
)
from fleet.config.problems import KeyPath, Problem
from fleet.config.source import Location, SourceDoc, unprintable_problem
from fleet.config.vault import VaultSecrets

__all__ = ["MAX_FILE_HOSTS", "MAX_RANGE_HOSTS", "AnsibleLayers", "HostRangeError",
           "expand_host_range", "split_host_port"]

# In the order Ansible's ssh connection plugin reads them: of two set for one setting, the
# later wins (ansible_ssh_host over ansible_host).
CONNECTION_VARS = {
    "ansible_host": "address", "ansible_ssh_host": "address",
    "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_private_key_file": "ssh_key", "ansible_ssh_private_key_file": "ssh_key",
}
LABELS_VAR = "fleet_labels"
PRIORITY_VAR = "ansible_group_priority"  # an inventory group var that orders, not a var
IMPLICIT_GROUPS = ("all", "ungrouped")
MAX_FILE_HOSTS = 10_000  # hosts in one Ansible inventory file

AnsibleRead = tuple[InventoryFile | None, SourceDoc, list[Problem], AnsibleLayers]


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


def _port_number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value.strip()):
        return int(value)
    return None


def file_name_problem(kind: str, name: str) -> str | None:
    """Why a host or group name can't name a file in host_vars/ or group_vars/, if it can't:
    those files are looked up by name, so a name must not lead out of its folder."""
    if not name:
        return f"a {kind} name must not be empty"
    if name in (".", "..") or ".." in name or any(c in name for c in "/\\\0"):
        return (f"{kind} name {name!r} cannot be used: names must not contain '/', '\\' "
                "or '..' (they name files in host_vars/ and group_vars/)")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        return f"{kind} name {name!r} cannot be used: it contains a control character"
    return None


def connection_settings(
    variables: dict[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    """Connection settings from Ansible variables, and messages for the ones that are bad."""
    settings: dict[str, Any] = {}
    errors: list[str] = []
    for key, field in CONNECTION_VARS.items():
        value = variables.get(key)
        if value is None:
            continue
        if field == "port":
            port = _port_number(value)
            if port is None or not 1 <= port <= 65535:
                errors.append(f"{where}: {key} must be a port number from 1 to 65535, "
                              f"got {value!r}")
                continue
            settings[field] = port
            continue
        text = str(value)
        problem = (address_problem(text) if field == "address" else
                   user_problem(text) if field == "user" else None)
        if problem:
            errors.append(f"{where}: {key}: {problem}")
            continue
        settings[field] = text
    return settings, errors


def _priority(value: Any) -> int | None:
    """ansible_group_priority as Ansible's int() takes it: a number or a numeral."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]{1,18}\s*", value):
        return int(value)
    return None


class _Builder:
    """Accumulates Ansible hosts, groups and vars, then builds the native model."""

    def __init__(self, doc: SourceDoc, vault: VaultSecrets) -> None:
        self.doc = doc
        self.vault = vault
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.group_paths: dict[str, KeyPath] = {}
        self.members: dict[str, set[str]] = {}
        self.problems: list[Problem] = []
        self.layers = AnsibleLayers(secrets=vault.values)
        self.too_many = False

    def group(self, name: str, path: KeyPath | None = None) -> dict[str, Any]:
        if name not in self.groups:
            problem = file_name_problem("group", name)
            if problem:
                self.problems.append(self.doc.problem(path or ("groups", name), problem,
                                                      at_key=True))
            self.group_paths[name] = path or ("groups", name)
        return self.groups.setdefault(name, {"hosts": [], "children": [], "vars": {}})

    def add_host(self, name: str, group: str | None, variables: dict[str, Any],
                 path: tuple[str | int, ...] | None = None, *, with_port: bool = True) -> None:
        name, port = split_host_port(name) if with_port else (name, None)
        if port is not None:
            variables = {"ansible_port": port, **variables}
        if name not in self.host_vars:
            if len(self.host_vars) >= MAX_FILE_HOSTS:
                if not self.too_many:
                    self.too_many = True
                    self.problems.append(self.doc.problem(
                        path or ("hosts", name), f"more than {MAX_FILE_HOSTS:,} hosts in one "
                        "inventory file", at_key=True))
                return
            if self.too_many:
                return
            if path is not None and ("hosts", name) not in self.doc.key_locations:
                self.doc.key_locations[("hosts", name)] = self.doc.locate(path, at_key=True)
            problem = file_name_problem("host", name)
            if problem:
                self.problems.append(self.doc.problem(("hosts", name), problem, at_key=True))
        self.host_vars.setdefault(name, {}).update(variables)
        if group and group not in IMPLICIT_GROUPS:
            members = self.members.setdefault(group, set())
            if name not in members:  # a set: large groups stay linear to build
                members.add(name)
                self.group(group)["hosts"].append(name)

    def load_var_dirs(self, base: Path) -> None:
        for kind, targets, layer in (
                ("group_vars", [*IMPLICIT_GROUPS, *self.groups], self.layers.group_files),
                ("host_vars", list(self.host_vars), self.layers.host_files)):
            if not (base / kind).is_dir():
                continue
            for target in dict.fromkeys(targets):
                if file_name_problem(kind, target):
                    continue  # reported where the name is
                merged, problems = load_layer(base, kind, target, self.vault)
                self.problems.extend(problems)
                if merged:
                    layer[target] = merged

    def _group_vars(self, name: str, variables: dict[str, Any]) -> dict[str, Any]:
        """A group's inventory vars; ansible_group_priority is taken out as its priority."""
        if PRIORITY_VAR not in variables:
            return variables
        rest = dict(variables)
        value = rest.pop(PRIORITY_VAR)
        priority = _priority(value)
        if priority is None:
            self.problems.append(self.doc.problem(
                self.group_paths.get(name, ("groups", name)),
                f"group '{name}': {PRIORITY_VAR} must be a whole number, got {value!r}",
                at_key=True))
        else:
            self.layers.priorities[name] = priority
        return rest

    def build(self) -> InventoryFile:
        # Host entries keep every variable as written: connection settings and labels are
        # taken from the merged variables, where group vars and vars files count as well.
        hosts: dict[str, HostEntry | None] = {
            name: HostEntry(vars=variables) for name, variables in self.host_vars.items()}
        groups: dict[str, GroupEntry] = {}
        for name, g in self.groups.items():
            variables = self._group_vars(name, g["vars"])
            if name in IMPLICIT_GROUPS:
                self.layers.implicit_vars[name] = variables
                continue
            groups[name] = GroupEntry(hosts=g["hosts"], vars=variables, children=[
                c for c in g["children"] if c not in IMPLICIT_GROUPS])
        return InventoryFile(hosts=hosts, groups=groups,
                             vars=self.layers.implicit_vars.pop("all", {}))


_SECTIONS = ("hosts", "children", "vars")


def _walk_yaml_group(builder: _Builder, name: str, body: Any, path: tuple[str, ...]) -> None:
    """One group of a YAML inventory, its keys in their order (as Ansible's yaml plugin)."""
    group = builder.group(name, path)
    if body is None:
        return
    if not isinstance(body, dict):
        builder.problems.append(builder.doc.problem(path, f"group '{name}' must be a mapping"))
        return
    for key, value in body.items():
        if key not in _SECTIONS:
            builder.problems.append(builder.doc.problem(
                (*path, key), f"unknown key '{key}' in Ansible group (hosts, children, vars)",
                at_key=True))
            continue
        if isinstance(value, str):
            value = {value: None}  # Ansible: a single name
        if value is None:
            continue
        if not isinstance(value, dict):
            builder.problems.append(builder.doc.problem(
                (*path, key), f"'{key}' of an Ansible group must be a mapping, "
                              f"e.g. {key}: {{name: ...}}"))
            continue
        if key == "vars":
            group["vars"].update(value)
        elif key == "children":
            for child, child_body in value.items():
                if child not in group["children"]:
                    group["children"].append(child)
                _walk_yaml_group(builder, str(child), child_body, (*path, "children", child))
        else:
            for pattern, variables in value.items():
                _yaml_hosts(builder, name, str(pattern), variables, (*path, "hosts", pattern))


def _yaml_hosts(builder: _Builder, group: str, pattern: str, variables: Any,
                path: KeyPath) -> None:
    if variables is not None and not isinstance(variables, dict):
        builder.problems.append(builder.doc.problem(
            path, f"host '{pattern}' must map to its variables (or nothing)"))
        variables = None
    try:
        names = expand_host_range(pattern)
    except HostRangeError as exc:
        builder.problems.append(builder.doc.problem(path, str(exc), at_key=True))
        return
    for name in names:
        if builder.too_many:
            break  # reported once; the rest of the file's hosts are not expanded
        builder.add_host(name, group, dict(variables or {}), path)


def _expect(builder: _Builder, value: Any, kind: type, path: KeyPath, what: str) -> bool:
    if value is None or isinstance(value, kind):
        return value is not None
    builder.problems.append(builder.doc.problem(path, f"{what} must be a "
                                                f"{'list' if kind is list else 'mapping'}"))
    return False


def _is_list_json(data: dict[str, Any], is_json: bool) -> bool:
    """The JSON an inventory script (or `ansible-inventory --list`) prints, rather than a
    YAML inventory (perhaps written in JSON): `_meta`, or JSON with groups made of lists."""
    return "_meta" in data or (is_json and any(
        isinstance(body, list) or (isinstance(body, dict) and any(
            isinstance(body.get(key), list) for key in ("hosts", "children")))
        for body in data.values()))


def _walk_list_json(builder: _Builder, data: dict[str, Any]) -> None:
    """As Ansible's script plugin reads it: hosts are those the groups list, each with its
    `_meta.hostvars`; a group named only as a child is an (empty) group all the same."""
    for name, body in data.items():
        if name == "_meta":
            continue
        group = builder.group(name, (name,))
        if isinstance(body, list):  # the short form: a group is a list of hosts
            body = {"hosts": body}
        elif not _expect(builder, body, dict, (name,), f"group '{name}'"):
            continue
        elif not any(key in body for key in _SECTIONS):  # Ansible: a host of its own name
            body = {"hosts": [name], "vars": body}
        if _expect(builder, body.get("hosts"), list, (name, "hosts"), "'hosts'"):
            for index, host in enumerate(body["hosts"]):
                if isinstance(host, str | int) and not isinstance(host, bool):
                    builder.add_host(str(host), name, {}, (name, "hosts", index),
                                     with_port=False)
                else:
                    builder.problems.append(builder.doc.problem(
                        (name, "hosts", index), "a host must be named by a string"))
        if _expect(builder, body.get("vars"), dict, (name, "vars"), "'vars'"):
            group["vars"].update(body["vars"])
        if _expect(builder, body.get("children"), list, (name, "children"), "'children'"):
            for index, child in enumerate(body["children"]):
                builder.group(str(child), (name, "children", index))
                if str(child) not in group["children"]:
                    group["children"].append(str(child))
    meta: Any = data.get("_meta")
    if not (_expect(builder, meta, dict, ("_meta",), "'_meta'") and _expect(
            builder, meta.get("hostvars"), dict, ("_meta", "hostvars"), "'_meta.hostvars'")):
        return
    for name, variables in meta["hostvars"].items():
        path: KeyPath = ("_meta", "hostvars", name)
        if not _expect(builder, variables, dict, path, f"host '{name}'"):
            continue
        if name in builder.host_vars:
            builder.add_host(name, None, dict(variables), path, with_port=False)
        else:
            builder.problems.append(builder.doc.problem(
                path, f"host '{name}' is in no group: not read (Ansible ignores it too)",
                at_key=True, severity="warning"))


def json_problem(text: str, path: str) -> Problem | None:
    """A JSON file is read as YAML (for positions), but its syntax is checked as JSON."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(path, exc.lineno, exc.colno, (), f"invalid JSON: {exc.msg}")
    except RecursionError:
        return None  # the YAML reader reports the depth
    return None


def from_ansible_data(doc: SourceDoc, vault: VaultSecrets, *, is_json: bool = False,
                      vars_dir: Path | None = None) -> AnsibleRead:
    """`vars_dir` holds group_vars/ and host_vars/: the directory given as the inventory
    source, else the file's own."""
    builder = _Builder(doc, vault)
    data: dict[str, Any] = doc.data
    if isinstance(data.get("plugin"), str):
        return None, doc, [doc.problem(
            ("plugin",), f"this configures the inventory plugin '{data['plugin']}', which "
            "fleet cannot run: give fleet what `ansible-inventory -i FILE --list` prints "
            "(saved as a .json file)", at_key=True)], builder.layers
    if _is_list_json(data, is_json):
        _walk_list_json(builder, data)
    else:
        for name, body in data.items():
            _walk_yaml_group(builder, str(name), body, (str(name),))
    builder.load_var_dirs(vars_dir or Path(doc.path).parent)
    return builder.build(), doc, builder.problems, builder.layers


def _ini_value(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text  # MemoryError, RecursionError: Python's parser on deeply nested input
    # Ansible's to_text: bytes become text; other values are kept as they are.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# `[name]`, `[name:kind]`, then only spaces or a comment (Ansible's section pattern).
_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?")


def read_ini(path: str, text: str, vault: VaultSecrets, vars_dir: Path | None = None
             ) -> AnsibleRead:
    doc = SourceDoc(path=path, data=None)
    builder = _Builder(doc, vault)
    unprintable = unprintable_problem(text, path)
    if unprintable is not None:
        return None, doc, [unprintable], builder.layers
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = _SECTION.fullmatch(line) if line.startswith("[") else None
        if header:
            section, kind = header[1], header[2] or "hosts"
            if kind not in ("hosts", "vars", "children"):
                builder.problems.append(Problem(path, number, 1, (f"{section}:{kind}",),
                                                f"unknown section kind ':{kind}'"))
            doc.key_locations.setdefault(("groups", section), Location(number, 1))
            builder.group(section)
            continue
        if line.startswith("[") and line.endswith("]"):
            builder.problems.append(Problem(path, number, 1, (), f"invalid section {line!r}: "
                                            "write [name] or [name:vars|children], no spaces"))
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            builder.problems.append(Problem(path, number, 1, (section,), f"cannot parse: {exc}"))
            continue
        if not words:
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
            doc.key_locations.setdefault(("groups", words[0]), Location(number, 1))
            builder.group(words[0])
        else:
            _ini_hosts(builder, doc, section, words, number)
    builder.load_var_dirs(vars_dir or Path(path).parent)
    return builder.build(), doc, builder.problems, builder.layers


def _ini_hosts(builder: _Builder, doc: SourceDoc, section: str, words: list[str],
               number: int) -> None:
    path = doc.path
    variables: dict[str, Any] = {}
    for word in words[1:]:
        key, found, value = word.partition("=")
        if not found:
            builder.problems.append(Problem(path, number, 1, (section, words[0]),
                                            f"expected NAME=VALUE, got {word!r}"))
            continue
        variables[key] = _ini_value(value)
    try:
        names = expand_host_range(words[0])
    except HostRangeError as exc:
        builder.problems.append(Problem(path, number, 1, (section, words[0]), str(exc)))
        return
    for name in names:
        if builder.too_many:
            break  # reported once; the rest of the file's hosts are not expanded
        bare = split_host_port(name)[0]
        doc.key_locations.setdefault(("hosts", bare), Location(number, 1))
        builder.add_host(name, section, variables)
