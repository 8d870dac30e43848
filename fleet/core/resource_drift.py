"""A project's networks and volumes against what a host has (pure): what is missing (fleet
creates it), and what stands in the way (a network or volume of that name fleet did not make
for the project, one with other settings, an external one that is absent, an Engine too old
for what a container asks). What stands in the way blocks the containers that need it: fleet
never silently reuses a network or volume that is not the one declared, and changes none in
place (Docker can't; replacing one would cut off every container on it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet.core import labels
from fleet.core.host_resources import (
    NetworkSpec,
    VolumeSpec,
    container_api_needs,
    named_volumes,
    network_api_needs,
)
from fleet.core.observed import HostSnapshot, ObservedNetwork, ObservedVolume


def _user_labels(found: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in found.items() if not k.startswith(labels.FLEET_PREFIX)}


def _differences(observed: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    return [f"{key}: {observed[key]!r} -> {desired[key]!r}" for key in desired
            if observed[key] != desired[key]]


def _pool_text(subnet: str, ip_range: str, gateway: str, aux: Mapping[str, str]) -> str:
    parts = [subnet] + [f"{k} {v}" for k, v in (("ip_range", ip_range), ("gateway", gateway))
                        if v]
    parts += [f"aux {k}={v}" for k, v in sorted(aux.items())]
    return " ".join(parts)


def _pools(spec: NetworkSpec, observed: ObservedNetwork) -> tuple[list[str], list[str]]:
    """The declared pools and the host's, each told by what the declaration sets (the Engine
    fills in a gateway the file left out: that is not a difference)."""
    declared = spec.definition.ipam.config if spec.definition.ipam else []
    want, have = [], []
    by_subnet = {p.subnet: p for p in observed.ipam_pools}
    for pool in declared:
        want.append(_pool_text(pool.subnet, pool.ip_range or "", pool.gateway or "",
                               pool.aux_addresses))
        found = by_subnet.get(pool.subnet)
        if found is not None:
            have.append(_pool_text(found.subnet, found.ip_range if pool.ip_range else "",
                                   found.gateway if pool.gateway else "",
                                   found.aux_addresses if pool.aux_addresses else {}))
    have += sorted(p.subnet for p in observed.ipam_pools if p.subnet not in
                   {pool.subnet for pool in declared})
    return sorted(want), sorted(have)


def network_differences(spec: NetworkSpec, observed: ObservedNetwork) -> list[str]:
    """How the host's network differs from the declared one ("" each: `field: host -> file`)."""
    definition = spec.definition
    ipam = definition.ipam
    desired: dict[str, Any] = {
        "driver": spec.driver, "driver_opts": dict(definition.driver_opts),
        "internal": definition.internal, "attachable": definition.attachable,
        "enable_ipv6": bool(definition.enable_ipv6), "labels": dict(definition.labels),
        "ipam.driver": (ipam.driver if ipam else None) or "default",
        "ipam.options": dict(ipam.options) if ipam else {},
    }
    have: dict[str, Any] = {
        "driver": observed.driver, "driver_opts": dict(observed.options),
        "internal": observed.internal, "attachable": observed.attachable,
        "enable_ipv6": observed.enable_ipv6, "labels": _user_labels(observed.labels),
        "ipam.driver": observed.ipam_driver or "default",
        "ipam.options": dict(observed.ipam_options),
    }
    if ipam and ipam.config:
        desired["ipam.config"], have["ipam.config"] = _pools(spec, observed)
    return _differences(have, desired)


def volume_differences(spec: VolumeSpec, observed: ObservedVolume) -> list[str]:
    desired = {"driver": spec.driver, "driver_opts": dict(spec.definition.driver_opts),
               "labels": dict(spec.definition.labels)}
    have = {"driver": observed.driver, "driver_opts": dict(observed.options),
            "labels": _user_labels(observed.labels)}
    return _differences(have, desired)


def _not_ours(kind: str, name: str, found: Mapping[str, str], project: str) -> str | None:
    owner = found.get(labels.PROJECT)
    if owner == project:
        return None
    made_by = (f"it belongs to fleet project '{owner}'" if owner else
               f"docker compose made it for project '{found[labels.COMPOSE_PROJECT]}'"
               if labels.COMPOSE_PROJECT in found else "fleet did not make it")
    return (f"{kind} {name} on this host is not this project's ({made_by}); fleet won't use "
            f"it as its own: declare it `external: true` to use it as it is, or name yours "
            f"otherwise (`name:`)")


def network_problem(spec: NetworkSpec, snapshot: HostSnapshot, project: str) -> str | None:
    """Why containers can't join this network on the host (None: they can, once it exists)."""
    needs = network_api_needs(spec)
    if needs and snapshot.api_version:
        problem = api_problem(needs, snapshot.api_version)
        if problem:
            return problem
    if snapshot.networks is None:
        return None
    observed = snapshot.networks.get(spec.name)
    if spec.external:
        return None if observed is not None else (
            f"external network {spec.name} does not exist on this host (fleet does not "
            "create an external network; create it there, or drop `external`)")
    if observed is None:
        return None
    foreign = _not_ours("network", spec.name, observed.labels, project)
    if foreign:
        return foreign
    changed = network_differences(spec, observed)
    if changed:
        return (f"network {spec.name} on this host has other settings than declared "
                f"({'; '.join(changed)}); Docker can't change a network, and fleet won't "
                "replace one: remove it (`docker network rm`, once its containers are "
                "stopped) and apply again, or declare what it has")
    return None


def volume_problem(spec: VolumeSpec, snapshot: HostSnapshot, project: str) -> str | None:
    if snapshot.volumes is None:
        return None
    observed = snapshot.volumes.get(spec.name)
    if spec.external:
        return None if observed is not None else (
            f"external volume {spec.name} does not exist on this host (fleet does not create "
            "an external volume; create it there, or drop `external`)")
    if observed is None:
        return None
    foreign = _not_ours("volume", spec.name, observed.labels, project)
    if foreign:
        return foreign
    changed = volume_differences(spec, observed)
    if changed:
        return (f"volume {spec.name} on this host has other settings than declared "
                f"({'; '.join(changed)}); fleet won't replace a volume (its data would go): "
                "change the declaration to what it has, or move the data and remove it")
    return None


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (0, 0)


def api_problem(needs: list[tuple[tuple[int, int], str]], api_version: str) -> str | None:
    have = _version(api_version)
    missing = [(version, what) for version, what in needs if have < version]
    if not missing:
        return None
    shown = "; ".join(f"{what} needs Docker Engine API {v[0]}.{v[1]} or newer"
                      for v, what in missing)
    return f"{shown}, and fleet speaks API {api_version} with this host's dockerd"


@dataclass(frozen=True)
class HostResources:
    """The project's networks and volumes (by their names on the hosts) against a host."""

    project: str
    networks: Mapping[str, NetworkSpec]
    volumes: Mapping[str, VolumeSpec]

    def blocking(self, options: Mapping[str, Any], snapshot: HostSnapshot) -> list[str]:
        """Why a container with these options can't be made or kept on the host."""
        found: list[str | None] = [
            network_problem(self.networks[name], snapshot, self.project)
            for name in options.get("networks") or {} if name in self.networks]
        found += [volume_problem(self.volumes[name], snapshot, self.project)
                  for name in named_volumes(options) if name in self.volumes]
        if snapshot.api_version:
            found.append(api_problem(container_api_needs(options), snapshot.api_version))
        return [problem for problem in found if problem]

    def missing(self, options: Mapping[str, Any], snapshot: HostSnapshot) -> list[str]:
        """The networks and volumes fleet creates that the host lacks ("network NAME"...);
        nothing when the host's were not read."""
        absent = []
        if snapshot.networks is not None:
            absent += [f"network {name}" for name in options.get("networks") or {}
                       if name in self.networks and not self.networks[name].external
                       and name not in snapshot.networks]
        if snapshot.volumes is not None:
            absent += [f"volume {name}" for name in named_volumes(options)
                       if name in self.volumes and not self.volumes[name].external
                       and name not in snapshot.volumes]
        return absent
