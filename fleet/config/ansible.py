"""Ansible inventories as they are: YAML, INI, and `ansible-inventory --list` JSON.

Each is converted to fleet's native inventory model: groups become groups, variables
become vars, and the connection variables (`ansible_host`, `ansible_user`, ...) become
connection settings. A host var `fleet_labels` (a mapping) gives a host its labels.
`group_vars/` and `host_vars/` directories beside the file are read as Ansible would.
"""

from __future__ import annotations

import ast
import ipaddress
import itertools
import json
import os
import re
import shlex
import string
from pathlib import Path
from typing import Any

from fleet.config.inventory_model import (
    GroupEntry,
    HostEntry,
    InventoryFile,
    address_problem,
    user_problem,
)
from fleet.config.problems import KeyPath, Problem
from fleet.config.source import Location, SourceDoc, load_yaml, unprintable_problem

CONNECTION_VARS = {
    "ansible_host": "address", "ansible_ssh_host": "address",
    "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_ssh_private_key_file": "ssh_key", "ansible_private_key_file": "ssh_key",
}
LABELS_VAR = "fleet_labels"
IMPLICIT_GROUPS = ("all", "ungrouped")
MAX_RANGE_HOSTS = 10_000  # hosts one pattern like web[1:100] may expand to
MAX_FILE_HOSTS = 10_000  # hosts in one Ansible inventory file


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


_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?")


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def split_host_port(name: str) -> tuple[str, int | None]:
    """`web1:2222` -> ('web1', 2222), `[2001:db8::1]:2222` -> ('2001:db8::1', 2222): Ansible's
    host:port notation (a bare IPv6 address is left alone)."""
    bracketed = _BRACKETED.fullmatch(name)
    if bracketed and _is_ipv6(bracketed[1]):
        return bracketed[1], int(bracketed[2]) if bracketed[2] else None
    head, sep, tail = name.rpartition(":")
    if sep and head and ":" not in head and re.fullmatch(r"[0-9]{1,5}", tail):
        return head, int(tail)
    return name, None


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
    for key, value in variables.items():
        field = CONNECTION_VARS.get(key)
        if field is None or value is None:
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


class _Builder:
    """Accumulates Ansible hosts, groups and vars, then builds the native model."""

    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.group_paths: dict[str, KeyPath] = {}
        self.members: dict[str, set[str]] = {}
        self.problems: list[Problem] = []
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
                 path: tuple[str | int, ...] | None = None) -> None:
        name, port = split_host_port(name)
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
        for kind, targets in (("group_vars", [*self.groups, "all"]),
                              ("host_vars", list(self.host_vars))):
            if not (base / kind).is_dir():
                continue
            for target in targets:
                if file_name_problem(kind, target):
                    continue  # reported where the name is
                for file in _var_files(base, kind, target):
                    if isinstance(file, Problem):
                        self.problems.append(file)
                        continue
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


def _var_files(base: Path, kind: str, name: str) -> list[Path | Problem]:
    """The files of host_vars/NAME or group_vars/NAME, each checked to be inside the
    inventory's folder (so a symbolic link can't make fleet read other files)."""
    directory = base / kind
    found = [directory / f"{name}{ext}" for ext in ("", ".yml", ".yaml", ".json")]
    files: list[Path] = [f for f in found if f.is_file()]
    folder = directory / name
    if folder.is_dir():
        files += sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml", ".json"))
    inside = os.path.realpath(base)
    checked: list[Path | Problem] = []
    for file in files:
        real = os.path.realpath(file)
        if os.path.commonpath([inside, real]) != inside:
            checked.append(Problem(str(file), 0, 0, (), f"not read: {kind} files must be inside "
                                   f"the inventory's folder {base}, this one is {real}"))
        else:
            checked.append(file)
    return checked


def _walk_yaml_group(builder: _Builder, name: str, body: Any, path: tuple[str, ...]) -> None:
    if body is None:
        builder.group(name, path)
        return
    if not isinstance(body, dict):
        builder.problems.append(builder.doc.problem(path, f"group '{name}' must be a mapping"))
        return
    group = builder.group(name, path)
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


def _expect(builder: _Builder, value: Any, kind: type, path: KeyPath, what: str) -> bool:
    if value is None or isinstance(value, kind):
        return value is not None
    builder.problems.append(builder.doc.problem(path, f"{what} must be a "
                                                f"{'list' if kind is list else 'mapping'}"))
    return False


def _walk_list_json(builder: _Builder, data: dict[str, Any]) -> None:
    meta: Any = data.get("_meta")
    hostvars: dict[str, Any] = {}
    if _expect(builder, meta, dict, ("_meta",), "'_meta'") and _expect(
            builder, meta.get("hostvars"), dict, ("_meta", "hostvars"), "'_meta.hostvars'"):
        hostvars = meta["hostvars"]
    for name, body in data.items():
        if isinstance(body, list):  # the short form: a group is a list of hosts
            body = {"hosts": body}
        if name == "_meta" or not _expect(builder, body, dict, (name,), f"group '{name}'"):
            continue
        group = builder.group(name, (name,))
        if _expect(builder, body.get("hosts"), list, (name, "hosts"), "'hosts'"):
            for index, host in enumerate(body["hosts"]):
                if isinstance(host, str | int):
                    builder.add_host(str(host), name, {}, (name, "hosts", index))
                else:
                    builder.problems.append(builder.doc.problem(
                        (name, "hosts", index), "a host must be named by a string"))
        if _expect(builder, body.get("children"), list, (name, "children"), "'children'"):
            for child in body["children"]:
                group["children"].append(str(child))
        if _expect(builder, body.get("vars"), dict, (name, "vars"), "'vars'"):
            group["vars"].update(body["vars"])
    for name, variables in hostvars.items():
        if _expect(builder, variables, dict, ("_meta", "hostvars", name), f"host '{name}'"):
            builder.add_host(str(name), None, dict(variables), ("_meta", "hostvars", name))


def json_problem(text: str, path: str) -> Problem | None:
    """A JSON file is read as YAML (for positions), but its syntax is checked as JSON."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(path, exc.lineno, exc.colno, (), f"invalid JSON: {exc.msg}")
    except RecursionError:
        return None  # the YAML reader reports the depth
    return None


def from_ansible_data(doc: SourceDoc) -> tuple[InventoryFile | None, SourceDoc, list[Problem]]:
    builder = _Builder(doc)
    data: dict[str, Any] = doc.data
    if "_meta" in data or doc.path.endswith(".json"):  # `ansible-inventory --list`
        _walk_list_json(builder, data)
    else:
        for name, body in data.items():
            _walk_yaml_group(builder, str(name), body, (str(name),))
    builder.load_var_dirs(Path(doc.path).parent)
    return builder.build(), doc, builder.problems


class HostRangeError(ValueError):
    pass


_RANGE = re.compile(r"\[([^\[\]]*)\]")


def _range_values(spec: str) -> list[str]:
    """The values of one `[begin:end]` or `[begin:end:step]`, as Ansible expands them, but
    an empty range (`[5:1]`) and a multi-letter one (`[aa:zz]`) are errors."""
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise HostRangeError(f"host range [{spec}] must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise HostRangeError(f"host range [{spec}] must specify an end value")
    if not re.fullmatch(r"[0-9]{1,9}", step_text) or int(step_text) == 0:
        raise HostRangeError(f"host range [{spec}]: the step must be a whole number from 1")
    step = int(step_text)
    letters = string.ascii_letters  # Ansible's order: a-z, then A-Z
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise HostRangeError(f"host range [{spec}] must have begin <= end")
        return list(letters[first:last + 1:step])
    if not (re.fullmatch(r"[0-9]{1,18}", begin) and re.fullmatch(r"[0-9]{1,18}", end)):
        raise HostRangeError(f"host range [{spec}] must be of numbers ([1:9], [01:10]) or of "
                             "single letters ([a:f])")
    width = 0
    if begin.startswith("0") and len(begin) > 1:
        if len(begin) != len(end):
            raise HostRangeError(f"host range [{spec}] must specify equal-length begin and "
                                 "end formats")
        width = len(begin)
    numbers = range(int(begin), int(end) + 1, step)
    if not numbers:
        raise HostRangeError(f"host range [{spec}] must have begin <= end")
    if len(numbers) > MAX_RANGE_HOSTS:
        raise HostRangeError(f"host range [{spec}] expands to {len(numbers):,} hosts, more "
                             f"than the limit of {MAX_RANGE_HOSTS:,}")
    return [str(n).zfill(width) for n in numbers]


def expand_host_range(name: str) -> list[str]:
    """`web[01:03]` -> web01, web02, web03: Ansible's numeric ranges (zero-padded, with a
    step, from 0 when begin is left out) and single-letter ranges, several in one name.
    Raises HostRangeError for a range Ansible rejects, an empty one, or one too large."""
    if _BRACKETED.fullmatch(name) and _is_ipv6(name[1:].partition("]")[0]):
        return [name]  # [2001:db8::1]:2222
    parts = _RANGE.split(name)  # text, range, text, range, ..., text
    if len(parts) == 1:
        return [name]
    choices = [[p] if i % 2 == 0 else _range_values(p) for i, p in enumerate(parts)]
    total = 1
    for options in choices:
        total *= len(options)
    if total > MAX_RANGE_HOSTS:
        raise HostRangeError(f"host pattern {name!r} expands to {total:,} hosts, more than the "
                             f"limit of {MAX_RANGE_HOSTS:,}")
    return ["".join(combination) for combination in itertools.product(*choices)]


def _ini_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text  # MemoryError, RecursionError: Python's parser on deeply nested input


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
            doc.key_locations.setdefault(("groups", section), Location(number, 1))
            builder.group(section)
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
                continue
            for name in names:
                if builder.too_many:
                    break  # reported once; the rest of the file's hosts are not expanded
                bare = split_host_port(name)[0]
                doc.key_locations.setdefault(("hosts", bare), Location(number, 1))
                builder.add_host(name, section, variables)
    builder.load_var_dirs(Path(path).parent)
    return builder.build(), doc, builder.problems
