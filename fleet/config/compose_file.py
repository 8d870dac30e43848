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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.config.compose_extends import Locations, graft, resolve_extends
from fleet.config.problems import KeyPath, Problem
from fleet.config.source import SourceDoc, load_yaml
from fleet.config.validation import lookup

MAX_INCLUDE_DEPTH = 10  # files including files
MAX_FILES = 100  # files read for one playbook (includes and extends)

Loader = Callable[[str], SourceDoc]  # reads one file (the project's: interpolating)
PLACEHOLDER_PROJECT = "invalid"  # a file's project when it has none (the problem is told)

# fleet's own keys, as `x-fleet:` may hold them.
TOP_KEYS = ("project", "inventory", "vars", "secrets_file", "secret_commands", "registries",
            "update", "image_source", "seeds", "proxy", "hooks")
SERVICE_KEYS = ("hosts", "replicas", "update", "rollback", "image_source", "proxy")
RESERVED_KEYS: tuple[str, ...] = ()  # later versions of fleet; refused as not yet supported

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
    _located: dict[int, Locations] = field(default_factory=dict)  # by id of the SourceDoc
    _raw: dict[Path, SourceDoc | None] = field(default_factory=dict)  # for `extends`

    def read(self, path: Path, by: SourceDoc, where: KeyPath) -> SourceDoc | None:
        """Another file (for include or extends), counted against MAX_FILES."""
        self.files_read += 1
        if self.files_read > MAX_FILES:
            self.problems.append(by.problem(where, f"more than {MAX_FILES} files are included "
                                                   "or extended"))
            return None
        doc = self.load(str(path))
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

    def locations(self, doc: SourceDoc) -> Locations:
        """The file's Locations (made once; the SourceDoc lives as long as the load)."""
        found = self._located.get(id(doc))
        if found is None or found.doc is not doc:
            found = self._located[id(doc)] = Locations(doc)
        return found

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
    _move_fleet_keys(doc, ctx, (), TOP_KEYS)
    _project(doc, ctx, included_by)
    _file_notes(doc)
    included = _includes(doc, ctx, (*chain, Path(doc.path).resolve()))
    services = data.get("services")
    if isinstance(services, dict):
        if any(isinstance(s, dict) and "extends" in s for s in services.values()):
            ctx.remember(doc)
            resolve_extends(doc, ctx.raw, ctx.locations)
        for name in list(services):
            if isinstance(services[name], dict):
                _service(doc, ctx, name)
    _strip(data, _TOP_EXTENSIBLE)
    return [doc, *included]


def _move_fleet_keys(doc: SourceDoc, ctx: ComposeContext, base: KeyPath,
                     allowed: Sequence[str]) -> None:
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
        here = ctx.locations(doc)
        graft(here, (*base, key), here, (*where, key))
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
        here = ctx.locations(doc)
        graft(here, ("project",), here, ("name",))
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


def _file_notes(doc: SourceDoc) -> None:
    """`name` of a config or secret names a Swarm object: accepted, without effect here."""
    for kind in ("configs", "secrets"):
        entries = doc.data.get(kind)
        for key, entry in (entries.items() if isinstance(entries, dict) else ()):
            if isinstance(entry, dict) and "name" in entry:
                doc.problems.append(doc.problem(
                    (kind, key, "name"), f"'name' names a Swarm {kind[:-1]} object; fleet "
                    "delivers the file itself and ignores it", at_key=True,
                    severity="warning"))


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
    _move_fleet_keys(doc, ctx, base, SERVICE_KEYS)
    if not _enabled(doc, ctx, name, service):
        del doc.data["services"][name]
        ctx.inactive.add(name)
        return
    _notes(doc, ctx, base, service)
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


def _notes(doc: SourceDoc, ctx: ComposeContext, base: KeyPath, service: dict[str, Any]
           ) -> None:
    """What fleet ignores is said (a warning), never silently dropped. A service with `build`
    and no `image` gets Compose's name for what it builds, `PROJECT-SERVICE` (located at its
    `build` key), built on the controller unless its x-fleet says otherwise."""
    def warn(path: KeyPath, message: str) -> None:
        doc.problems.append(doc.problem((*base, *path), message, at_key=True,
                                        severity="warning"))

    if "build" in service and "image" not in service:
        project = str(doc.data.get("project") or PLACEHOLDER_PROJECT)
        service["image"] = f"{project}-{base[-1]}".lower()
        service.setdefault("image_source", "controller")  # built: no registry has it
        here = ctx.locations(doc)
        graft(here, (*base, "image"), here, (*base, "build"))
        at_build = doc.locate((*base, "build"), at_key=True)
        here.set_key((*base, "image"), at_build)
        here.set_value((*base, "image"), at_build)
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
