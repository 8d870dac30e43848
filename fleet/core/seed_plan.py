"""What `apply` of a plan sends through region seeds (fleet.core.seeds), for the plan to say."""

from __future__ import annotations

from collections.abc import Mapping

from fleet.config.inventory import Host
from fleet.core.plan import ActionKind, Plan
from fleet.core.seeds import SeedPolicy, seed_of_groups, seeded_deliveries


def plan_seeds(plan: Plan, hosts: Mapping[str, Host], policy: SeedPolicy | None
               ) -> dict[tuple[str, str], str]:
    """seeded_deliveries for the plan's loads, among the plan's hosts: what `apply` of this
    plan sends through seeds."""
    if policy is None:
        return {}
    needs: dict[str, set[str]] = {}
    for host_plan in plan.hosts:
        for action in host_plan.actions:
            if action.kind == ActionKind.LOAD and action.digest:
                needs.setdefault(action.digest, set()).add(host_plan.host)
    members = [hosts[h.host] for h in plan.hosts if h.host in hosts]
    return seeded_deliveries(needs, seed_of_groups(members, policy))


def seed_summary(through: Mapping[tuple[str, str], str]) -> list[tuple[str, str, list[str]]]:
    """(seed, image ID, the hosts that pull it from the seed), sorted."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for (peer, image_id), seed in through.items():
        grouped.setdefault((seed, image_id), []).append(peer)
    return [(seed, image_id, sorted(peers)) for (seed, image_id), peers in sorted(grouped.items())]
