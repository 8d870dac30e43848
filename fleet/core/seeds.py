"""Region seeds (issue 12): within a group of hosts (by default a region), an image from the
controller crosses the controller's link once, to the group's seed host, and the group's other
hosts pull it from a registry run on the seed for that run.

What is decided here is pure: which hosts form a group, which of them is its seed, and which
deliveries go through it. The registry on the seed (its image, TLS, lifetime) is run by
fleet.engine.seeding.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleet.config.inventory import Host
from fleet.config.playbook import SEED_IMAGE, SEED_PORT

SEED_REPOSITORY = "fleet-seed"  # the repository path images get in a seed's registry
SEED_MOUNT = "/fleet-seed"  # where the registry container sees its directory


@dataclass(frozen=True)
class SeedPolicy:
    """The playbook's `seeds:`."""

    by: str = "region"  # the label whose value groups hosts
    labels: Mapping[str, str] = field(default_factory=dict)  # what a seed must carry
    image: str = SEED_IMAGE  # the seed's registry, delivered from the controller
    port: int = SEED_PORT  # where the seed's registry listens (TLS, client certificates)


def seed_of_groups(hosts: Iterable[Host], policy: SeedPolicy) -> dict[str, str]:
    """Host name -> the seed of its group, for hosts in a group with a seed: the group's
    first host by name among those carrying every label of `policy.labels`. Hosts without
    the grouping label, or whose address a registry name cannot be (an IPv6 literal), have
    no group."""
    groups: dict[str, list[Host]] = {}
    for host in hosts:
        value = host.labels.get(policy.by)
        if value is not None:
            groups.setdefault(value, []).append(host)
    seeds: dict[str, str] = {}
    for members in groups.values():
        candidates = sorted((h for h in members if can_seed(h, policy)), key=lambda h: h.name)
        if candidates:
            seed = candidates[0].name
            seeds.update({h.name: seed for h in members})
    return seeds


def can_seed(host: Host, policy: SeedPolicy) -> bool:
    if any(host.labels.get(key) != value for key, value in policy.labels.items()):
        return False
    try:
        return ipaddress.ip_address(host.address).version == 4
    except ValueError:
        return True  # a host name


def seeded_deliveries(needs: Mapping[str, Iterable[str]], seeds: Mapping[str, str]
                      ) -> dict[tuple[str, str], str]:
    """(host, image ID) -> the seed it gets the image from. `needs`: image ID -> the hosts
    that load it. A group goes through its seed when more than one of its hosts needs the
    image (a lone host is sent it directly: through a seed it would cross the link as
    often)."""
    through: dict[tuple[str, str], str] = {}
    for image_id, hosts in needs.items():
        by_seed: dict[str, set[str]] = {}
        for host in hosts:
            if host in seeds:
                by_seed.setdefault(seeds[host], set()).add(host)
        for seed, members in by_seed.items():
            peers = members - {seed}
            if peers and len(members) > 1:
                through.update({(peer, image_id): seed for peer in peers})
    return through


def registry_host(address: str, port: int) -> str:
    """How images, and dockerd's certs.d directory, name the seed's registry."""
    return f"{address}:{port}"


def seed_reference(address: str, port: int, image_id: str) -> str:
    """The name an image has in the seed's registry: its ID says what it holds."""
    return f"{registry_host(address, port)}/{SEED_REPOSITORY}/{image_id.removeprefix('sha256:')}"


def registry_config(port: int) -> str:
    """The seed registry's configuration (Distribution's), read from the bind-mounted
    directory that holds its certificate and key: TLS, and only clients whose certificate
    the run's CA signed."""
    return (
        "version: 0.1\n"
        "log: {level: warn}\n"
        "storage: {filesystem: {rootdirectory: /var/lib/registry}}\n"
        "http:\n"
        f"  addr: :{port}\n"
        "  tls:\n"
        f"    certificate: {SEED_MOUNT}/server.crt\n"
        f"    key: {SEED_MOUNT}/server.key\n"
        f"    clientcas: [{SEED_MOUNT}/ca.crt]\n"
    )

