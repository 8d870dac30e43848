"""Compose's `extends`, resolved at load time (pure but for reading the files it names).

A service with `extends:` is the service it names (in this file, or in `file:` relative to
this one), with its own keys merged over it by Compose's rules (05-services.md, "Merging
service definitions"): mappings merged key by key (map-or-list fields such as `environment`
taken as mappings), the listed sequences appended (some without duplicates), `volumes` and
`devices` replaced by their target path, anything else overridden. Chains are followed up to
MAX_EXTENDS_DEPTH, and a cycle is an error. Relative paths of a base service from another
directory (env_file, bind sources) are made relative to the extending file.

Each part of the merged service keeps the location it was written at (`graft`), so that a
problem in an inherited key names the base service's file and line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fleet.config.problems import KeyPath, Problem
from fleet.config.source import Location, SourceDoc

MAX_EXTENDS_DEPTH = 10  # services extending services


# -- moving values and their locations --------------------------------------------------------


class Locations:
    """A file's locations (and origins), found by their first two keys: a subtree is read
    without going through every location of the file (a file may have a million). All
    changes to them at load time go through here, so the groups stay true."""

    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc
        self.groups: dict[KeyPath, set[KeyPath]] = {}
        for table in (doc.value_locations, doc.key_locations, doc.origins):
            for path in table:
                self._note(path)

    def _note(self, path: KeyPath) -> None:
        self.groups.setdefault(path[:2], set()).add(path)

    def under(self, at: KeyPath) -> list[KeyPath]:
        """Every known path at or below `at`."""
        size = len(at)
        if size >= 2:
            candidates: Iterable[KeyPath] = self.groups.get(at[:2], ())
        else:
            candidates = [p for head, group in self.groups.items() if head[:size] == at
                          for p in group]
        return [p for p in candidates if p[:size] == at]

    def set_value(self, path: KeyPath, loc: Location) -> None:
        self.doc.value_locations[path] = loc
        self._note(path)

    def set_key(self, path: KeyPath, loc: Location) -> None:
        self.doc.key_locations[path] = loc
        self._note(path)

    def set_origin(self, path: KeyPath, origin: tuple[str, KeyPath]) -> None:
        self.doc.origins[path] = origin
        self._note(path)

    def forget(self, prefix: KeyPath) -> None:
        """Drop what is known about the value at `prefix` (its key's own location stays)."""
        size = len(prefix)
        doc = self.doc
        for path in self.under(prefix):
            doc.value_locations.pop(path, None)
            doc.origins.pop(path, None)
            if len(path) > size:
                doc.key_locations.pop(path, None)
                self.groups[path[:2]].discard(path)


def graft(target: Locations, to: KeyPath, source: Locations, at: KeyPath) -> None:
    """The locations of `source`'s value at `at` become those of `target`'s value at `to`,
    and problems there name where it was written."""
    size = len(at)
    theirs = source.doc
    for path in source.under(at):
        moved = (*to, *path[size:])
        if path in theirs.value_locations:
            target.set_value(moved, theirs.value_locations[path])
        if path in theirs.key_locations:
            target.set_key(moved, theirs.key_locations[path])
        if path in theirs.origins:
            target.set_origin(moved, theirs.origins[path])
    written = theirs.origin(at)
    if written != (target.doc.path, to):
        target.set_origin(to, written)


# -- extends ----------------------------------------------------------------------------------

Graft = tuple[KeyPath, SourceDoc, KeyPath]  # (path below the service, source file, its path)


Reader = Callable[[Path, SourceDoc, KeyPath], SourceDoc | None]
Indexer = Callable[[SourceDoc], Locations]


def resolve_extends(doc: SourceDoc, raw: Reader, locations: Indexer) -> None:
    """Every service of `doc` with `extends:` becomes the merged service, in place; `raw`
    reads a file as written (this one included: it must have been remembered as it was),
    `locations` gives a file's Locations."""
    services: dict[str, Any] = doc.data["services"]
    extending = [n for n, s in services.items() if isinstance(s, dict) and "extends" in s]
    if not extending:
        return
    resolver = _Resolver(raw)
    source = raw(Path(doc.path), doc, ())
    assert source is not None
    results = {name: resolver.resolve(source, name, ()) for name in extending}
    mine = locations(doc)
    for name, result in results.items():
        if result is None:
            del services[name]["extends"]  # reported; the rest of the service is still checked
            continue
        merged, grafts = result
        base: KeyPath = ("services", name)
        mine.forget(base)
        for below, origin, at in grafts:
            graft(mine, (*base, *below), locations(origin), at)
        services[name] = merged
    doc.problems.extend(resolver.problems)


class _Resolver:
    def __init__(self, raw: Reader) -> None:
        self.raw = raw
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
            base_doc = self.raw(path, doc, (*where, "file"))
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
