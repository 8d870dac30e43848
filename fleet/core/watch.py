"""`fleet watch` (pure): what changed between two rounds of checks, when an unreachable host
is looked at again, and the Prometheus textfile of a round."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.core.diff import Finding, Kind

MAX_BACKOFF_ROUNDS = 16  # an unreachable host is looked at least every 16 intervals


@dataclass(frozen=True, order=True)
class Drift:
    """One finding, as watch compares them between rounds (its detail aside: a detail such as
    an uptime moves on its own)."""

    host: str
    service: str
    replica: int
    kind: str
    detail: str = field(default="", compare=False)

    @classmethod
    def of(cls, finding: Finding) -> Drift:
        return cls(finding.host, finding.service, finding.replica or 0, str(finding.kind),
                   finding.detail)


@dataclass(frozen=True)
class Event:
    event: str  # drift, resolved, unreachable, reachable, healed, heal_failed
    host: str
    service: str = ""
    replica: int = 0
    kind: str = ""
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"event": self.event, "host": self.host, "service": self.service or None,
                "replica": self.replica or None, "kind": self.kind or None,
                "detail": self.detail}

    def line(self) -> str:
        what = f"{self.service}/{self.replica}" if self.replica else self.service
        head = " ".join(part for part in (self.event, self.host, what, self.kind) if part)
        return f"{head}: {self.detail}" if self.detail else head


def drifts(findings: Mapping[str, Sequence[Finding]]) -> dict[str, set[Drift]]:
    return {host: {Drift.of(f) for f in found if f.kind != Kind.IN_SYNC}
            for host, found in findings.items()}


@dataclass
class WatchState:
    """What the last rounds saw: each host's drift, and the unreachable hosts' backoff."""

    drift: dict[str, set[Drift]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # rounds unreachable in a row
    next_round: dict[str, int] = field(default_factory=dict)  # when it is looked at again
    rounds: int = 0

    def due(self, hosts: Iterable[str]) -> list[str]:
        """The hosts to look at in the coming round (unreachable ones back off)."""
        return [h for h in hosts if self.next_round.get(h, 0) <= self.rounds]

    def advance(self, seen: Mapping[str, set[Drift]], unreachable: Mapping[str, str]
                ) -> list[Event]:
        """Record one round: `seen`, each observed host's drift; `unreachable`, the hosts that
        could not be. Returns what changed, drift appearing before drift resolved."""
        events: list[Event] = []
        for host, now in sorted(seen.items()):
            if host in self.unreachable:
                events.append(Event("reachable", host))
                del self.unreachable[host]
            self.failures.pop(host, None)
            self.next_round.pop(host, None)
            before = self.drift.get(host, set())
            events += [Event("drift", d.host, d.service, d.replica, d.kind, d.detail)
                       for d in sorted(now - before)]
            events += [Event("resolved", d.host, d.service, d.replica, d.kind)
                       for d in sorted(before - now)]
            self.drift[host] = now
        for host, error in sorted(unreachable.items()):
            if host not in self.unreachable:
                events.append(Event("unreachable", host, detail=error))
            self.unreachable[host] = error
            failures = self.failures.get(host, 0) + 1
            self.failures[host] = failures
            self.next_round[host] = self.rounds + 1 + min(2 ** (failures - 1) - 1,
                                                          MAX_BACKOFF_ROUNDS - 1)
        self.rounds += 1
        return events


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def textfile(project: str, state: WatchState, services: Mapping[str, Sequence[str]],
             now: float) -> str:
    """The node exporter textfile collector's format: a gauge per host and service (1 in
    sync), a gauge per host (1 reachable), drift counted by kind, and the round's time.
    `services`: host -> the services placed there."""
    p = _label(project)
    lines = [
        "# HELP fleet_service_in_sync 1 if every container of the service on the host is as "
        "the playbook says, 0 if not.",
        "# TYPE fleet_service_in_sync gauge",
    ]
    for host in sorted(services):
        if host in state.unreachable or host not in state.drift:
            continue
        drifted = {d.service for d in state.drift[host]}
        for service in sorted(set(services[host]) | drifted):
            lines.append(f'fleet_service_in_sync{{project="{p}",host="{_label(host)}",'
                         f'service="{_label(service)}"}} {0 if service in drifted else 1}')
    lines += ["# HELP fleet_host_reachable 1 if the host was observed in its last round.",
              "# TYPE fleet_host_reachable gauge"]
    for host in sorted(services):
        lines.append(f'fleet_host_reachable{{project="{p}",host="{_label(host)}"}} '
                     f"{0 if host in state.unreachable else 1}")
    counts: dict[tuple[str, str], int] = {}
    for host, found in state.drift.items():
        for d in found:
            counts[(host, d.kind)] = counts.get((host, d.kind), 0) + 1
    lines += ["# HELP fleet_drift_findings Drift findings on the host, by kind.",
              "# TYPE fleet_drift_findings gauge"]
    for (host, kind), count in sorted(counts.items()):
        lines.append(f'fleet_drift_findings{{project="{p}",host="{_label(host)}",'
                     f'kind="{_label(kind)}"}} {count}')
    lines += ["# HELP fleet_watch_last_round_timestamp_seconds When the last round ended.",
              "# TYPE fleet_watch_last_round_timestamp_seconds gauge",
              f'fleet_watch_last_round_timestamp_seconds{{project="{p}"}} {now:.3f}']
    return "\n".join(lines) + "\n"
