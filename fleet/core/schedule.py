"""The rollout schedule: which hosts change together, in which order (pure).

Waves come from a label key (one wave per value, in inventory order) or an ordered list
of host patterns (hosts no pattern names go last). Within the first wave, `canary` hosts
go first, alone; then batches of `batch` hosts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.config.inventory import Host
from fleet.config.patterns import select_hosts
from fleet.config.service import UpdatePolicy


@dataclass(frozen=True)
class Batch:
    wave: str
    hosts: tuple[str, ...]
    canary: bool = False


def quantity(value: int | str, total: int, *, at_least_one: bool) -> int:
    """A count, or a percentage of `total` (rounded up for sizes, down for tolerances)."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        count = math.ceil(share) if at_least_one else math.floor(share)
    else:
        count = int(value)
    return max(1, count) if at_least_one else max(0, count)


def waves(hosts: Sequence[Host], policy: UpdatePolicy,
          groups: Mapping[str, frozenset[str]] | None = None) -> list[tuple[str, list[Host]]]:
    if policy.waves is None:
        return [("all", list(hosts))] if hosts else []
    result: list[tuple[str, list[Host]]] = []
    if isinstance(policy.waves, str):
        key = policy.waves
        by_value: dict[str, list[Host]] = {}
        for host in hosts:
            by_value.setdefault(host.labels.get(key, f"(no {key})"), []).append(host)
        missing = by_value.pop(f"(no {key})", None)
        result = [(f"{key}={value}", members) for value, members in by_value.items()]
        if missing:
            result.append((f"(no {key})", missing))
        return result
    assigned: set[str] = set()
    for pattern in policy.waves:
        names = set(select_hosts(pattern, hosts, groups).hosts) - assigned
        members = [h for h in hosts if h.name in names]
        assigned |= names
        if members:
            result.append((pattern, members))
    rest = [h for h in hosts if h.name not in assigned]
    if rest:
        result.append(("(rest)", rest))
    return result


def schedule(hosts: Sequence[Host], policy: UpdatePolicy,
             groups: Mapping[str, frozenset[str]] | None = None) -> list[Batch]:
    """Steps in order; every host appears exactly once."""
    batches: list[Batch] = []
    # A canary is a size: "10%" of 5 hosts is still one host.
    canaries = quantity(policy.canary, len(hosts), at_least_one=True) if policy.canary not in (
        0, "0%") else 0
    for index, (label, members) in enumerate(waves(hosts, policy, groups)):
        names = [h.name for h in members]
        if index == 0 and canaries:
            batches.append(Batch(label, tuple(names[:canaries]), canary=True))
            names = names[canaries:]
        size = quantity(policy.batch, len(members), at_least_one=True)
        batches += [Batch(label, tuple(names[i:i + size])) for i in range(0, len(names), size)]
    return batches


def failure_budget(policy: UpdatePolicy, total: int) -> int:
    """How many failed hosts the rollout tolerates."""
    return quantity(policy.max_failures, total, at_least_one=False)
