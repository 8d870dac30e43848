"""`fleet report` (pure): the fleet as a person reads it — clouds, regions, hosts × services
with what runs and what drifted, and the last rollouts from the hosts' journals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.core.desired import DesiredState
from fleet.core.diff import Finding, Kind
from fleet.core.journal import JournalEntry
from fleet.core.observed import HostSnapshot
from fleet.core.proxy import PORTS_SERVICE, PROXY_SERVICE

MAX_ROLLOUTS = 20


@dataclass(frozen=True)
class Replica:
    replica: int
    state: str
    health: str
    image: str  # as configured
    digest: str
    revision: int


@dataclass(frozen=True)
class Cell:
    status: str  # ok, drift, unreachable, absent (the service is not placed there)
    replicas: tuple[Replica, ...] = ()
    drift: tuple[tuple[str, str], ...] = ()  # (kind, detail)


@dataclass(frozen=True)
class HostRow:
    host: str
    address: str
    cells: Mapping[str, Cell]
    error: str = ""


@dataclass(frozen=True)
class Rollout:
    """The journal entries of one service's release (or one hook run), across hosts."""

    time: str
    command: str
    service: str
    release: str
    image: str
    hosts: int
    outcomes: Mapping[str, int]

    @property
    def ok(self) -> bool:
        return set(self.outcomes) <= {"ok", "removed"}


@dataclass(frozen=True)
class Report:
    project: str
    generated: str
    services: tuple[str, ...]
    # cloud -> region -> rows
    groups: Mapping[str, Mapping[str, Sequence[HostRow]]]
    rollouts: tuple[Rollout, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)  # ok, drift, unreachable cells

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project, "generated": self.generated,
            "services": list(self.services), "counts": dict(self.counts),
            "hosts": [{"host": row.host, "address": row.address, "cloud": cloud,
                       "region": region, "error": row.error or None,
                       "services": {name: {"status": c.status,
                                           "drift": [{"kind": k, "detail": d}
                                                     for k, d in c.drift],
                                           "replicas": [vars(r) for r in c.replicas]}
                                    for name, c in row.cells.items()}}
                      for cloud, regions in self.groups.items()
                      for region, rows in regions.items() for row in rows],
            "rollouts": [{"time": r.time, "command": r.command, "service": r.service,
                          "release": r.release or None, "image": r.image, "hosts": r.hosts,
                          "outcomes": dict(r.outcomes), "ok": r.ok} for r in self.rollouts],
        }


def _cell(state: DesiredState, host: str, service: str, snapshot: HostSnapshot | None,
          findings: Sequence[Finding]) -> Cell:
    placed = any(c.service == service for c in state.containers.get(host, []))
    ours = [c for c in (snapshot.of_project(state.project) if snapshot else [])
            if c.service == service]
    drift = tuple((str(f.kind), f.detail) for f in findings
                  if f.service == service and f.kind != Kind.IN_SYNC)
    if not placed and not ours and not drift:
        return Cell("absent")
    replicas = tuple(Replica(c.replica or 0, c.state, c.health or "", c.image_ref,
                             c.image_digest, c.revision)
                     for c in sorted(ours, key=lambda c: c.replica or 0))
    return Cell("drift" if drift else "ok", replicas, drift)


def rollouts(journals: Mapping[str, Sequence[JournalEntry]], limit: int = MAX_ROLLOUTS
             ) -> tuple[Rollout, ...]:
    """The newest `limit` rollouts: entries grouped by command, service and release (or, with
    no release recorded, the minute they started), newest first."""
    groups: dict[tuple[str, str, str], list[tuple[str, JournalEntry]]] = {}
    for host, entries in journals.items():
        for entry in entries:
            if entry.outcome == "started":
                continue
            key = (entry.command, entry.service, entry.release or entry.time[:16])
            groups.setdefault(key, []).append((host, entry))
    made = []
    for (command, service, release), items in groups.items():
        outcomes: dict[str, int] = {}
        for _, entry in items:
            outcomes[entry.outcome] = outcomes.get(entry.outcome, 0) + 1
        first = min(items, key=lambda item: item[1].time)[1]
        made.append(Rollout(first.time, command, service,
                            release if release != first.time[:16] else "", first.image,
                            len({host for host, _ in items}), outcomes))
    made.sort(key=lambda r: r.time, reverse=True)
    return tuple(made[:limit])


def build_report(state: DesiredState, snapshots: Mapping[str, HostSnapshot],
                 unreachable: Mapping[str, str], findings: Mapping[str, Sequence[Finding]],
                 journals: Mapping[str, Sequence[JournalEntry]], generated: str) -> Report:
    services = tuple(sorted(s for s in state.services if s not in (PROXY_SERVICE, PORTS_SERVICE)))
    groups: dict[str, dict[str, list[HostRow]]] = {}
    counts = {"ok": 0, "drift": 0, "unreachable": 0}
    for host in sorted(state.targeted_hosts, key=lambda h: (h.labels.get("cloud", ""),
                                                            h.labels.get("region", ""), h.name)):
        cloud = host.labels.get("cloud", "-")
        region = host.labels.get("region", "-")
        if host.name in unreachable:
            cells = {s: Cell("unreachable") for s in services}
            row = HostRow(host.name, host.address, cells, unreachable[host.name])
        else:
            found = findings.get(host.name, [])
            cells = {s: _cell(state, host.name, s, snapshots.get(host.name), found)
                     for s in services}
            row = HostRow(host.name, host.address, cells)
        for cell in cells.values():
            if cell.status in counts:
                counts[cell.status] += 1
        groups.setdefault(cloud, {}).setdefault(region, []).append(row)
    return Report(state.project, generated, services, groups, rollouts(journals), counts)
