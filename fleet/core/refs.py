"""References between services, as Compose files make them (pure): `depends_on`, `links`, and
`volumes_from`/`ipc`/`pid` naming a service. Each must name a service of the project that is
enabled (its profiles active), none may make a cycle, and the ones that share a container's
volumes or namespaces are resolved per host to that service's container there.

`service:NAME` (or a bare name in `volumes_from`) means NAME's replica 1 on the same host (its
`container_name`, if it has one): the referring service must only be placed where NAME runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.config.compose_fields import Dependency
from fleet.config.playbook import LoadedPlaybook
from fleet.config.problems import KeyPath, Problem

SHARING_FIELDS = ("volumes_from", "ipc", "pid")


@dataclass(frozen=True)
class ServiceRefs:
    """The services one service refers to (from its host-independent keys)."""

    depends_on: Mapping[str, Dependency] = field(default_factory=dict)
    links: tuple[str, ...] = ()  # SERVICE:ALIAS
    shares: tuple[tuple[str, int | None, str], ...] = ()  # (field, index, service)

    def targets(self) -> set[str]:
        return ({*self.depends_on} | {link.partition(":")[0] for link in self.links}
                | {name for _, _, name in self.shares})


def shared_services(options: Mapping[str, Any]) -> tuple[tuple[str, int | None, str], ...]:
    """(field, index in volumes_from, service) for each `service:NAME` in these options."""
    found: list[tuple[str, int | None, str]] = []
    for index, entry in enumerate(options.get("volumes_from") or []):
        kind, _, rest = str(entry).partition(":")
        if kind == "service":
            found.append(("volumes_from", index, rest.rpartition(":")[0]))
    for name in ("ipc", "pid"):
        value = options.get(name)
        if isinstance(value, str) and value.startswith("service:"):
            found.append((name, None, value.partition(":")[2]))
    return tuple(found)


def entry_path(pb: LoadedPlaybook, service: str, key: str, target: str) -> tuple[KeyPath, bool]:
    """The path of the entry naming `target` in the service's `key` as written (a list item,
    or a mapping key)."""
    base: KeyPath = ("services", service, key)
    raw = pb.raw_service(service).get(key)
    if isinstance(raw, dict):
        return (*base, target), True
    if isinstance(raw, list):
        for index, item in enumerate(raw):
            if isinstance(item, str) and item.partition(":")[0] == target:
                return (*base, index), False
    return base, False


def reference_problems(refs: Mapping[str, ServiceRefs], docs: Mapping[str, LoadedPlaybook],
                       inactive: set[str]) -> list[Problem]:
    """Unknown, disabled or self references, and cycles. `refs`: the services whose
    references could be read; `docs`: every service of the project."""
    problems: list[Problem] = []
    for service, own in refs.items():
        pb = docs[service]
        named: list[tuple[str, str, bool]] = [
            ("depends_on", name, dep.required) for name, dep in own.depends_on.items()]
        named += [("links", link.partition(":")[0], True) for link in own.links]
        for key, _, target in own.shares:
            named.append((key, target, True))
        for key, target, required in named:
            why = _missing(target, service, docs, inactive)
            if why is None:
                continue
            path, at_key = entry_path(pb, service, key, target)
            if key in ("ipc", "pid"):
                path, at_key = ("services", service, key), False
            problems.append(pb.doc.problem(
                path, f"{why}" + ("" if required else "; required: false, so it is only "
                                  "noted"), at_key=at_key,
                severity="error" if required else "warning"))
    problems += _cycles(refs, docs)
    return problems


def _missing(target: str, service: str, known: Mapping[str, object],
             inactive: set[str]) -> str | None:
    if target == service:
        return f"service '{service}' refers to itself"
    if target in known:
        return None
    if target in inactive:
        return (f"service '{target}' is not enabled: none of its profiles is active (use "
                "--profile)")
    return f"service '{target}' is not defined in the project"


def _cycles(refs: Mapping[str, ServiceRefs], docs: Mapping[str, LoadedPlaybook]
            ) -> list[Problem]:
    edges = {name: sorted(t for t in own.targets() if t in refs and t != name)
             for name, own in refs.items()}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(refs):
        if name not in state:
            visit(name, [name])
    problems: list[Problem] = []
    for cycle in found:
        first, second = cycle[0], cycle[1]
        own = refs[first]
        key = ("depends_on" if second in own.depends_on else
               "links" if any(link.partition(":")[0] == second for link in own.links) else
               next(k for k, _, t in own.shares if t == second))
        path, at_key = entry_path(docs[first], first, key, second)
        problems.append(docs[first].doc.problem(
            path, f"dependency cycle: {' -> '.join(cycle)}", at_key=at_key))
    return problems


def link_aliases(refs: Mapping[str, ServiceRefs]) -> dict[str, list[str]]:
    """Per linked service, the aliases other services' `links` give it (its own name aside:
    a service is reached by its name anyway)."""
    aliases: dict[str, set[str]] = {}
    for own in refs.values():
        for link in own.links:
            target, _, alias = link.partition(":")
            if alias != target and target in refs:
                aliases.setdefault(target, set()).add(alias)
    return {target: sorted(names) for target, names in aliases.items()}


def resolve_shared(options: dict[str, Any], names: Mapping[str, str]
                   ) -> tuple[str, str, str] | None:
    """`service:NAME` in volumes_from/ipc/pid becomes `container:CONTAINER`, NAME's container
    on this host (`names`: service -> its replica 1's name here). Returns the field that
    can't be resolved, the service it names, and why."""
    entries = []
    for entry in options.get("volumes_from") or []:
        kind, _, rest = str(entry).partition(":")
        if kind == "service":
            target, _, mode = rest.rpartition(":")
            if target not in names:
                return "volumes_from", target, _not_here("volumes_from", target)
            entry = f"container:{names[target]}:{mode}"
        entries.append(entry)
    if entries:
        options["volumes_from"] = entries
    for key in ("ipc", "pid"):
        value = options.get(key)
        if isinstance(value, str) and value.startswith("service:"):
            target = value.partition(":")[2]
            if target not in names:
                return key, target, _not_here(key, target)
            options[key] = f"container:{names[target]}"
    return None


def _not_here(key: str, target: str) -> str:
    return (f"{key} names service '{target}', which has no container on this host: place this "
            f"service only where '{target}' runs")
