"""A Compose file read as a playbook: its project name, `x-fleet:`, `include`, `extends` and
`profiles`, resolved at load time into the data fleet's models validate.

Every playbook goes through here (a fleet playbook is a Compose file that uses fleet's own
keys natively). What this does to a file's data, in order:

- `version` is dropped with a warning, as Compose does; the project is fleet's `project:`, else
  Compose's `name:`, else `COMPOSE_PROJECT_NAME`, else the file's directory name normalised as
  Compose normalises it.
- `x-fleet:` (at the top and in each service) holds fleet's own keys, so that the file still
  runs with `docker compose up`: they are moved to where fleet reads them natively.
- `include:` loads each file as another playbook of the same project (relative paths in it are
  its own), recursively; `extends:` merges a service over the one it names, by Compose's merge
  rules, from this file or another; `profiles` leaves out the services of inactive profiles.
- Other `x-*` keys are dropped wherever the specification allows extensions.

Values moved or merged keep the location they were written at (SourceDoc.origins), so a
problem in an extended service names the file and line of the base service.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.config.problems import KeyPath, Problem
from fleet.config.service import BUILD_ONLY
from fleet.config.source import Location, SourceDoc, load_yaml
from fleet.config.validation import lookup

MAX_INCLUDE_DEPTH = 10  # files including files
MAX_EXTENDS_DEPTH = 10  # services extending services
MAX_FILES = 100  # files read for one playbook (includes and extends)

Loader = Callable[[Path], SourceDoc]
PLACEHOLDER_PROJECT = "invalid"  # a file's project when it has none (the problem is told)

# fleet's own keys, as `x-fleet:` may hold them.
TOP_KEYS = ("project", "inventory", "vars", "secrets_file", "registries", "update")
SERVICE_KEYS = ("hosts", "replicas", "update", "rollback")
RESERVED_KEYS = ("proxy", "image_source")  # later versions of fleet; refused as not yet supported

_PROFILE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

# Where the specification allows `x-*` keys: in a service, and at the top level.
_SERVICE_EXTENSIBLE: tuple[KeyPath, ...] = (
    (), ("build",), ("credential_spec",), ("depends_on", "*"), ("devices", "*"), ("logging",),
    ("networks", "*"), ("ports", "*"), ("volumes", "*"), ("volumes", "*", "bind"),
    ("volumes", "*", "volume"), ("volumes", "*", "tmpfs"), ("volumes", "*", "image"),
    ("healthcheck",), ("deploy",), ("deploy", "rollback_config"), ("deploy", "update_config"),
    ("deploy", "resources"), ("deploy", "resources", "limits"),
    ("deploy", "resources", "reservations"), ("deploy", "resources", "reservations", "devices",
                                              "*"),
    ("deploy", "restart_policy"), ("deploy", "placement"), ("ulimits", "*"), ("configs", "*"),
    ("secrets", "*"), ("gpus", "*"), ("develop",), ("provider",),
)
_TOP_EXTENSIBLE: tuple[KeyPath, ...] = (
    (), ("networks", "*"), ("networks", "*", "ipam"), ("networks", "*", "ipam", "config", "*"),
    ("networks", "*", "external"), ("volumes", "*"), ("volumes", "*", "external"),
    ("configs", "*"), ("secrets", "*"),
)


def normalise_project_name(text: str) -> str:
    """Compose's rule for a name taken from a directory: lowercase, only [a-z0-9_-], and no
    leading '_' or '-'."""
    kept = "".join(c for c in text.lower() if c in "abcdefghijklmnopqrstuvwxyz0123456789_-")
    return kept.lstrip("_-")


def active_profiles(flags: Sequence[str], environ: Mapping[str, str]) -> frozenset[str]:
    """`--profile` values, or else COMPOSE_PROFILES (comma-separated), as Compose takes them."""
    if flags:
        return frozenset(flags)
    return frozenset(p.strip() for p in environ.get("COMPOSE_PROFILES", "").split(",")
                     if p.strip())


@dataclass
class ComposeContext:
    """What loading one project's playbooks shares."""

    profiles: frozenset[str] = frozenset()
    environ: Mapping[str, str] = field(default_factory=dict)
    load: Loader = load_yaml
    project: str | None = None  # the first file's; files after it default to it
    inactive: set[str] = field(default_factory=set)  # services whose profiles are not active
    problems: list[Problem] = field(default_factory=list)
    files_read: int = 0
    reported: set[Path] = field(default_factory=set)  # files whose reading problems are told
    _raw: dict[Path, SourceDoc | None] = field(default_factory=dict)  # for `extends`

    def read(self, path: Path, by: SourceDoc, where: KeyPath) -> SourceDoc | None:
        """Another file (for include or extends), counted against MAX_FILES."""
        self.files_read += 1
        if self.files_read > MAX_FILES:
            self.problems.append(by.problem(where, f"more than {MAX_FILES} files are included "
                                                   "or extended"))
            return None
        doc = self.load(path)
        told = path.resolve() in self.reported
        self.reported.add(path.resolve())
        if not told:
            for problem in doc.problems:  # an unreadable file is told where it is named
                self.problems.append(problem if problem.line else by.problem(
                    where, f"cannot read {path}: {problem.message}"))
        if doc.data is None and doc.problems:
            return None
        if not isinstance(doc.data, dict):
            if not told:
                self.problems.append(doc.problem((), "a Compose file must be a mapping"))
            return None
        doc.problems = []  # told here, once
        return doc

    def raw(self, path: Path, by: SourceDoc, where: KeyPath) -> SourceDoc | None:
        """A file as written, for `extends` (read once; never changed)."""
        key = path.resolve()
        if key not in self._raw:
            self._raw[key] = self.read(path, by, where)
        return self._raw[key]

    def remember(self, doc: SourceDoc) -> None:
        """This file's services as written, before anything here changes them."""
        key = Path(doc.path).resolve()
        if key not in self._raw:
            self._raw[key] = snapshot(doc)


def snapshot(doc: SourceDoc) -> SourceDoc:
    return SourceDoc(doc.path, copy.deepcopy(doc.data), dict(doc.value_locations),
                     dict(doc.key_locations), [], dict(doc.origins))


def _is_extension(key: object) -> bool:
    return isinstance(key, str) and key.startswith("x-")


# -- moving values and their locations --------------------------------------------------------


def _subtree(table: Mapping[KeyPath, Location], path: KeyPath) -> list[tuple[KeyPath, Location]]:
    size = len(path)
    return [(p, loc) for p, loc in table.items() if p[:size] == path]


def graft(target: SourceDoc, to: KeyPath, source: SourceDoc, at: KeyPath) -> None:
    """The locations of `source`'s value at `at` become those of `target`'s value at `to`,
    and problems there name where it was written."""
    size = len(at)
    for mine, theirs in ((target.value_locations, source.value_locations),
                         (target.key_locations, source.key_locations)):
        for path, loc in _subtree(theirs, at):
            mine[(*to, *path[size:])] = loc
    for path, origin in list(source.origins.items()):
        if path[:size] == at:
            target.origins[(*to, *path[size:])] = origin
    written = source.origin(at)
    if written != (target.path, to):
        target.origins[to] = written


def _forget(doc: SourceDoc, prefix: KeyPath) -> None:
    """Drop what is known about the value at `prefix` (the key's own location stays)."""
    size = len(prefix)
    for table in (doc.value_locations, doc.key_locations, doc.origins):
        for path in [p for p in table if p[:size] == prefix and (len(p) > size or
                                                                table is not doc.key_locations)]:
            del table[path]


# -- the top level ----------------------------------------------------------------------------


def prepare(doc: SourceDoc, ctx: ComposeContext, *, included_by: str | None = None,
            chain: tuple[Path, ...] = ()) -> list[SourceDoc]:
    """Resolve `doc` (a mapping) in place; returns it and the files it includes, in order."""
    data: dict[str, Any] = doc.data
    if "version" in data:
        ctx.problems.append(doc.problem(("version",), "the top-level 'version' is obsolete and "
                                        "ignored (as Compose ignores it)", at_key=True,
                                        severity="warning"))
        del data["version"]
    _move_fleet_keys(doc, (), TOP_KEYS)
    _project(doc, ctx, included_by)
    included = _includes(doc, ctx, (*chain, Path(doc.path).resolve()))
    services = data.get("services")
    if isinstance(services, dict):
        _extends(doc, ctx)
        for name in list(services):
            if isinstance(services[name], dict):
                _service(doc, ctx, name)
    _strip(data, _TOP_EXTENSIBLE)
    return [doc, *included]


def _move_fleet_keys(doc: SourceDoc, base: KeyPath, allowed: Sequence[str]) -> None:
    """`x-fleet:` at `base` (the top, or a service): its keys move to `base`."""
    holder = lookup(doc.data, base)
    fleet = holder.get("x-fleet") if isinstance(holder, dict) else None
    if fleet is None:
        return
    where: KeyPath = (*base, "x-fleet")
    if not isinstance(fleet, dict):
        doc.problems.append(doc.problem(where, "x-fleet must be a mapping of fleet's keys: "
                                        + ", ".join((*allowed, *RESERVED_KEYS))))
        return
    for key, value in fleet.items():
        if key not in allowed and key not in RESERVED_KEYS:
            close = difflib.get_close_matches(key, [*allowed, *RESERVED_KEYS], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            doc.problems.append(doc.problem((*where, key), f"unknown key '{key}' in x-fleet"
                                            f"{hint}; fleet's keys are {', '.join(allowed)}",
                                            at_key=True))
            continue
        if key in holder:
            doc.problems.append(doc.problem((*where, key), f"'{key}' is given both here and "
                                            "outside x-fleet; give it once", at_key=True))
            continue
        holder[key] = value
        graft(doc, (*base, key), doc, (*where, key))
    del holder["x-fleet"]


def _project(doc: SourceDoc, ctx: ComposeContext, included_by: str | None) -> None:
    """`project` (fleet's), `name` (Compose's), COMPOSE_PROJECT_NAME, or the directory."""
    data = doc.data
    name = data.pop("name", None)
    if included_by is not None:  # an included file is part of the including project
        if "project" not in data:
            data["project"] = ctx.project
        return
    if "project" in data:
        if name is not None and name != data["project"]:
            doc.problems.append(doc.problem(("name",), f"name {name!r} differs from project "
                                            f"{data['project']!r}; give one", at_key=True))
    elif name is not None:
        data["project"] = name
        graft(doc, ("project",), doc, ("name",))
    elif ctx.project is not None:
        data["project"] = ctx.project  # a second file of the same project
    elif ctx.environ.get("COMPOSE_PROJECT_NAME"):
        data["project"] = ctx.environ["COMPOSE_PROJECT_NAME"]
    else:
        directory = Path(doc.path).resolve().parent.name
        derived = normalise_project_name(directory)
        if not derived:
            doc.problems.append(doc.problem((), f"no project name: the directory name "
                                            f"{directory!r} has no letter or digit Compose "
                                            "would keep; set 'name:' (or fleet's 'project:')"))
        data["project"] = derived or PLACEHOLDER_PROJECT
    env_name = ctx.environ.get("COMPOSE_PROJECT_NAME")
    if env_name and (name is not None or "project" in data) and env_name != data["project"]:
        doc.problems.append(doc.problem(("project",), f"COMPOSE_PROJECT_NAME={env_name!r} is "
                                        "ignored: the file names its project "
                                        f"{data['project']!r}", severity="warning"))
    if ctx.project is None and isinstance(data["project"], str):
        ctx.project = data["project"]


def _includes(doc: SourceDoc, ctx: ComposeContext, chain: tuple[Path, ...]) -> list[SourceDoc]:
    entries = doc.data.pop("include", None)
    if entries is None:
        return []
    if not isinstance(entries, list):
        doc.problems.append(doc.problem(("include",), "include must be a list of files"))
        return []
    found: list[SourceDoc] = []
    for index, entry in enumerate(entries):
        where: KeyPath = ("include", index)
        path = _include_path(doc, entry, where)
        if path is None:
            continue
        target = (Path(doc.path).resolve().parent / path).resolve()
        if target in chain:
            shown = " -> ".join(p.name for p in (*chain[chain.index(target):], target))
            doc.problems.append(doc.problem(where, f"include cycle: {shown}"))
            continue
        if len(chain) > MAX_INCLUDE_DEPTH:
            doc.problems.append(doc.problem(where, f"files include each other more than "
                                            f"{MAX_INCLUDE_DEPTH} levels deep"))
            continue
        included = ctx.read(target, doc, where)
        if included is not None:
            found += prepare(included, ctx, included_by=doc.path, chain=chain)
    return found


def _include_path(doc: SourceDoc, entry: Any, where: KeyPath) -> str | None:
    if isinstance(entry, str) and entry:
        return entry
    if not isinstance(entry, dict):
        doc.problems.append(doc.problem(where, "an include entry is a path or {path: ...}"))
        return None
    for key in entry:
        if key in ("project_directory", "env_file"):
            why = ("relative paths in an included file are its own (its directory)"
                   if key == "project_directory" else
                   "an included file's variables come from the project's environment")
            doc.problems.append(doc.problem((*where, key), f"include {key} is not supported: "
                                            f"{why}", at_key=True))
        elif key != "path":
            doc.problems.append(doc.problem((*where, key), f"unknown key '{key}' (include "
                                            "takes path)", at_key=True))
    path = entry.get("path")
    if isinstance(path, list) and len(path) == 1:
        path = path[0]
    if isinstance(path, list):
        doc.problems.append(doc.problem((*where, "path"), "including several files merged "
                                        "into one is not supported: include them one by one"))
        return None
    if not isinstance(path, str) or not path:
        doc.problems.append(doc.problem(where, "an include entry needs a 'path'"))
        return None
    return path


# -- services ---------------------------------------------------------------------------------


def _service(doc: SourceDoc, ctx: ComposeContext, name: str) -> None:
    base: KeyPath = ("services", name)
    service: dict[str, Any] = doc.data["services"][name]
    _move_fleet_keys(doc, base, SERVICE_KEYS)
    if not _enabled(doc, ctx, name, service):
        del doc.data["services"][name]
        ctx.inactive.add(name)
        return
    _notes(doc, base, service)
    _strip(service, _SERVICE_EXTENSIBLE)


def _enabled(doc: SourceDoc, ctx: ComposeContext, name: str, service: dict[str, Any]) -> bool:
    """A service without `profiles` is always on; one with them, when one is active."""
    profiles = service.pop("profiles", None)
    if profiles is None:
        return True
    where: KeyPath = ("services", name, "profiles")
    if not isinstance(profiles, list) or not all(
            isinstance(p, str) and _PROFILE.match(p) for p in profiles):
        doc.problems.append(doc.problem(where, "profiles must be a list of names (letters, "
                                        "digits, '_', '.' and '-')"))
        return True
    return not profiles or "*" in ctx.profiles or bool(ctx.profiles & set(profiles))


def _notes(doc: SourceDoc, base: KeyPath, service: dict[str, Any]) -> None:
    """What fleet ignores is said (a warning), never silently dropped; `build` alone is
    refused where it is written."""
    def warn(path: KeyPath, message: str) -> None:
        doc.problems.append(doc.problem((*base, *path), message, at_key=True,
                                        severity="warning"))

    if "build" in service:
        if "image" in service:
            warn(("build",), f"'build' is ignored: fleet deploys the image "
                             f"{service['image']!r} (build and push it first)")
        else:
            service["image"] = BUILD_ONLY
            graft(doc, (*base, "image"), doc, (*base, "build"))
            doc.key_locations[(*base, "image")] = doc.locate((*base, "build"), at_key=True)
            doc.value_locations[(*base, "image")] = doc.locate((*base, "build"), at_key=True)
        del service["build"]
    if "develop" in service:
        warn(("develop",), "'develop' is for 'docker compose watch' on a workstation; fleet "
                           "ignores it")
        del service["develop"]
    deploy = service.get("deploy")
    if not isinstance(deploy, dict):
        return
    if "labels" in deploy:
        warn(("deploy", "labels"), "deploy.labels label a Swarm service, which Docker Engine "
                                   "does not have; ignored (container labels go in 'labels')")
    restart = deploy.get("restart_policy")
    for key in ("delay", "window"):
        if isinstance(restart, dict) and key in restart:
            warn(("deploy", "restart_policy", key), f"deploy.restart_policy.{key} is Swarm's; "
                 "Docker Engine restarts with its own back-off: ignored")
    resources = deploy.get("resources")
    reservations = resources.get("reservations") if isinstance(resources, dict) else None
    if isinstance(reservations, dict) and "cpus" in reservations:
        warn(("deploy", "resources", "reservations", "cpus"), "Docker Engine has no CPU "
             "reservation (Swarm schedules by it): ignored")


def _strip(value: Any, places: Sequence[KeyPath]) -> None:
    """Drop `x-*` keys wherever the specification allows extensions."""
    for place in places:
        for holder in _matching(value, place):
            for key in [k for k in holder if _is_extension(k)]:
                del holder[key]


def _matching(value: Any, pattern: KeyPath) -> list[dict[str, Any]]:
    nodes = [value]
    for part in pattern:
        following: list[Any] = []
        for node in nodes:
            if part == "*":
                following += list(node.values()) if isinstance(node, dict) else (
                    node if isinstance(node, list) else [])
            elif isinstance(node, dict) and part in node:
                following.append(node[part])
        nodes = following
    return [n for n in nodes if isinstance(n, dict)]


# -- extends ----------------------------------------------------------------------------------

Graft = tuple[KeyPath, SourceDoc, KeyPath]  # (path below the service, source file, its path)


def _extends(doc: SourceDoc, ctx: ComposeContext) -> None:
    services: dict[str, Any] = doc.data["services"]
    extending = [n for n, s in services.items() if isinstance(s, dict) and "extends" in s]
    if not extending:
        return
    ctx.remember(doc)
    resolver = _Resolver(ctx)
    source = ctx.raw(Path(doc.path), doc, ())
    assert source is not None
    results = {name: resolver.resolve(source, name, ()) for name in extending}
    for name, result in results.items():
        if result is None:
            del services[name]["extends"]  # reported; the rest of the service is still checked
            continue
        merged, grafts = result
        base: KeyPath = ("services", name)
        _forget(doc, base)
        for below, origin, at in grafts:
            graft(doc, (*base, *below), origin, at)
        services[name] = merged
    doc.problems.extend(resolver.problems)


class _Resolver:
    def __init__(self, ctx: ComposeContext) -> None:
        self.ctx = ctx
        self.problems: list[Problem] = []
        self.done: dict[tuple[str, str], tuple[dict[str, Any], list[Graft]] | None] = {}

    def resolve(self, doc: SourceDoc, name: str, chain: tuple[tuple[str, str], ...]
                ) -> tuple[dict[str, Any], list[Graft]] | None:
        """Service `name` of `doc` with what it extends merged in, and where each part of it
        was written."""
        key = (doc.path, name)
        if key in self.done:
            return self.done[key]
        path: KeyPath = ("services", name)
        service: dict[str, Any] = doc.data["services"][name]
        own: list[Graft] = [((), doc, path)]
        if "extends" not in service:
            return service, own
        where: KeyPath = (*path, "extends")
        target = self._target(doc, service["extends"], where)
        result: tuple[dict[str, Any], list[Graft]] | None = None
        if target is not None:
            base_doc, base_name = target
            link = (base_doc.path, base_name)
            if link in chain or link == key:
                names = " -> ".join(n for _, n in (*chain, key, link))
                self.problems.append(doc.problem(where, f"extends cycle: {names}"))
            elif len(chain) >= MAX_EXTENDS_DEPTH:
                self.problems.append(doc.problem(where, f"services extend each other more "
                                                 f"than {MAX_EXTENDS_DEPTH} levels deep"))
            else:
                found = self.resolve(base_doc, base_name, (*chain, key))
                if found is not None:
                    below = {k: v for k, v in service.items() if k != "extends"}
                    inherited = _rebased(found[0], base_doc, doc)
                    result = merge_service(inherited, found[1], below, doc, path)
        self.done[key] = result
        return result

    def _target(self, doc: SourceDoc, extends: Any, where: KeyPath
                ) -> tuple[SourceDoc, str] | None:
        if isinstance(extends, str):
            extends = {"service": extends}
        if not isinstance(extends, dict) or not isinstance(extends.get("service"), str):
            self.problems.append(doc.problem(where, "extends is a service name or "
                                             "{service: NAME, file: PATH}"))
            return None
        unknown = sorted(set(extends) - {"service", "file"})
        if unknown:
            self.problems.append(doc.problem((*where, unknown[0]), f"unknown key "
                                             f"'{unknown[0]}' (extends takes service and "
                                             "file)", at_key=True))
            return None
        name, file = extends["service"], extends.get("file")
        base_doc: SourceDoc | None = doc
        if file is not None:
            if not isinstance(file, str) or not file:
                self.problems.append(doc.problem((*where, "file"), "file must be a path"))
                return None
            path = Path(doc.path).resolve().parent / file
            base_doc = self.ctx.raw(path, doc, (*where, "file"))
            if base_doc is None:
                return None
        assert base_doc is not None
        services = base_doc.data.get("services")
        if not isinstance(services, dict) or not isinstance(services.get(name), dict):
            in_file = f" in {base_doc.path}" if file is not None else ""
            self.problems.append(doc.problem((*where, "service"), f"extends service '{name}'"
                                             f"{in_file}, which is not defined there"))
            return None
        return base_doc, name


# Compose's merge rules for `extends` (05-services.md, "Merging service definitions").
_MAPPINGS = frozenset({"annotations", "build", "deploy", "environment", "healthcheck", "labels",
                       "logging", "sysctls", "storage_opt", "extra_hosts", "ulimits",
                       "depends_on", "networks", "x-fleet", "blkio_config"})
_UNIQUE_SEQUENCES = frozenset({"cap_add", "cap_drop", "configs", "device_cgroup_rules",
                               "expose", "external_links", "ports", "secrets", "security_opt",
                               "links", "volumes_from", "group_add", "dns_opt"})
_SEQUENCES = frozenset({"dns", "dns_search", "env_file", "tmpfs"})
_BY_TARGET = frozenset({"volumes", "devices"})
_LIST_MERGED = _UNIQUE_SEQUENCES | _SEQUENCES | _BY_TARGET


def merge_service(base: dict[str, Any], base_grafts: list[Graft], own: dict[str, Any],
                  doc: SourceDoc, path: KeyPath) -> tuple[dict[str, Any], list[Graft]]:
    """`own` over `base` (the service it extends); with where each part of the result was
    written: `base_grafts` for what comes from the base, `doc` at `path` for `own`."""
    merger = _Merger(base_grafts, doc, path)
    merged = merger.mapping((), base, own, top=True)
    return merged, [((), doc, path), *merger.grafts]


class _Merger:
    def __init__(self, base_grafts: list[Graft], doc: SourceDoc, path: KeyPath) -> None:
        self.base_grafts = base_grafts
        self.doc = doc
        self.path = path
        self.grafts: list[Graft] = []

    def from_base(self, to: KeyPath, at: KeyPath) -> None:
        """The value at `to` is the base's at `at` (both below the service)."""
        best = max((g for g in self.base_grafts if at[:len(g[0])] == g[0]),
                   key=lambda g: len(g[0]))
        self.grafts.append((to, best[1], (*best[2], *at[len(best[0]):])))

    def from_own(self, to: KeyPath, at: KeyPath) -> None:
        self.grafts.append((to, self.doc, (*self.path, *at)))

    def mapping(self, at: KeyPath, base: dict[str, Any], own: dict[str, Any], *,
                top: bool = False, base_at: dict[str, KeyPath] | None = None,
                own_at: dict[str, KeyPath] | None = None) -> dict[str, Any]:
        """Keys of `own` override those of `base`; mappings on both sides are merged."""
        result: dict[str, Any] = {}
        for key in [*base, *(k for k in own if k not in base)]:
            to = (*at, key)
            from_base = (base_at or {}).get(key, to)
            from_own = (own_at or {}).get(key, to)
            if key not in own:
                result[key] = base[key]
                self.from_base(to, from_base)
            elif key not in base:
                result[key] = own[key]
                self.from_own(to, from_own)
            else:
                result[key] = self.value(key if top else None, to, base[key], own[key],
                                         from_base, from_own)
        return result

    def value(self, field: str | None, to: KeyPath, base: Any, own: Any, base_at: KeyPath,
              own_at: KeyPath) -> Any:
        if field in _MAPPINGS or field is None:
            left, left_at = _as_mapping(field, base, base_at)
            right, right_at = _as_mapping(field, own, own_at)
            if left is not None and right is not None:
                self.from_own(to, own_at)
                return self.mapping(to, left, right, base_at=left_at, own_at=right_at)
        if isinstance(base, list) and isinstance(own, list) and field in _LIST_MERGED:
            return self.sequence(str(field), to, base, own, base_at, own_at)
        self.from_own(to, own_at)
        return own

    def sequence(self, field: str, to: KeyPath, base: list[Any], own: list[Any],
                 base_at: KeyPath, own_at: KeyPath) -> list[Any]:
        items: list[tuple[Any, bool, int]] = []  # value, from the base, index there
        if field in _BY_TARGET:
            replaced = {_target_of(field, item) for item in own}
            items += [(v, True, i) for i, v in enumerate(base)
                      if _target_of(field, v) not in replaced]
        else:
            items += [(v, True, i) for i, v in enumerate(base)]
        items += [(v, False, i) for i, v in enumerate(own)]
        if field in _UNIQUE_SEQUENCES:
            unique: list[tuple[Any, bool, int]] = []
            for item in items:
                if all(item[0] != kept[0] for kept in unique):
                    unique.append(item)
            items = unique
        self.from_own(to, own_at)
        for index, (_, in_base, source) in enumerate(items):
            if in_base:
                self.from_base((*to, index), (*base_at, source))
            else:
                self.from_own((*to, index), (*own_at, source))
        return [value for value, _, _ in items]


_LIST_MAPPINGS = {"environment": "=", "labels": "=", "annotations": "=", "sysctls": "=",
                  "storage_opt": "="}


def _as_mapping(field: str | None, value: Any, at: KeyPath
                ) -> tuple[dict[str, Any] | None, dict[str, KeyPath]]:
    """A map-or-list field as a mapping, and where each of its keys was written."""
    if isinstance(value, dict):
        return value, {k: (*at, k) for k in value}
    if not isinstance(value, list) or field is None:
        return None, {}
    result: dict[str, Any] = {}
    where: dict[str, KeyPath] = {}
    for index, item in enumerate(value):
        if not isinstance(item, str):
            return None, {}
        if field in _LIST_MAPPINGS:
            key, sep, text = item.partition("=")
            entry: Any = text if sep else None
        elif field == "extra_hosts":
            key, sep, text = item.replace("=", ":", 1).partition(":")
            entry = text
        elif field in ("depends_on", "networks"):
            key, entry = item, None
        else:
            return None, {}
        result[key] = entry
        where[key] = (*at, index)
    return result, where


def _target_of(field: str, item: Any) -> Any:
    """A volume's or device's path in the container: what an `extends` override replaces."""
    if isinstance(item, dict):
        return item.get("target")
    if isinstance(item, str):
        parts = item.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return item


def _rebased(service: dict[str, Any], source: SourceDoc, into: SourceDoc) -> dict[str, Any]:
    """A base service from a file in another directory, its relative paths (env_file, bind
    sources) made relative to the extending file, as Compose resolves them."""
    here = Path(into.path).resolve().parent
    there = Path(source.path).resolve().parent
    if here == there:
        return service

    def moved(path: str) -> str:
        if os.path.isabs(path) or path.startswith("~"):
            return path
        found = os.path.relpath(there / path, here)
        return found if found.startswith(".") else f"./{found}"  # still a path, not a name

    result = dict(service)
    env_file = result.get("env_file")
    if isinstance(env_file, str):
        result["env_file"] = moved(env_file)
    elif isinstance(env_file, list):
        result["env_file"] = [
            moved(e) if isinstance(e, str) else
            {**e, "path": moved(e["path"])} if isinstance(e, dict) and isinstance(
                e.get("path"), str) else e for e in env_file]
    volumes = result.get("volumes")
    if isinstance(volumes, list):
        result["volumes"] = [_rebased_volume(v, moved) for v in volumes]
    return result


def _rebased_volume(volume: Any, moved: Callable[[str], str]) -> Any:
    if isinstance(volume, str) and volume.startswith("."):
        source, sep, rest = volume.partition(":")
        return f"{moved(source)}{sep}{rest}"
    if isinstance(volume, dict) and isinstance(volume.get("source"), str) and \
            volume["source"].startswith("."):
        return {**volume, "source": moved(volume["source"])}
    return volume
