"""A service's networks and named volumes, checked against the project's declarations and
named as on the hosts (pure): what a container's spec records and its create body uses."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from fleet.config.problems import KeyPath
from fleet.config.service import Service, ServiceNetwork
from fleet.core.host_resources import DEFAULT_NETWORK, NetworkSpec, VolumeSpec

Found = list[tuple[KeyPath, str]]  # (path under the service, message)


def _network_path(raw: Mapping[str, Any], key: str) -> KeyPath:
    """Where the file names the network: its index in the list form, its key in the map."""
    given = raw.get("networks")
    if isinstance(given, list) and key in given:
        return ("networks", given.index(key))
    if isinstance(given, Mapping) and key in given:
        return ("networks", key)
    return ("networks",)


def _static_address_problems(key: str, settings: Mapping[str, Any], spec: NetworkSpec,
                             replicas: int) -> list[tuple[str, str]]:
    """(setting, message) for fixed addresses the network can't give."""
    found = []
    for setting, version in (("ipv4_address", 4), ("ipv6_address", 6)):
        address = settings.get(setting)
        if not address:
            continue
        if replicas > 1:
            found.append((setting, f"{replicas} replicas on one host cannot all have "
                                   f"{setting} {address}; use 1 replica"))
            continue
        if spec.external:
            continue  # its subnets are the host's business
        subnets = spec.definition.subnets(version)
        if not subnets:
            found.append((setting, f"{setting} needs network '{key}' to declare an IPv{version} "
                                   "subnet (ipam.config[].subnet), as Docker requires"))
        elif not any(ipaddress.ip_address(address) in s for s in subnets):
            shown = ", ".join(map(str, subnets))
            found.append((setting, f"{setting} {address} is outside network '{key}''s "
                                   f"subnet {shown}"))
        elif address in _reserved(spec):
            found.append((setting, f"{setting} {address} is network '{key}''s gateway or one "
                                   "of its aux_addresses"))
    if settings.get("mac_address") and replicas > 1:
        found.append(("mac_address", f"{replicas} replicas on one host cannot all have "
                                     f"mac_address {settings['mac_address']}; use 1 replica"))
    return found


def _reserved(spec: NetworkSpec) -> set[str]:
    """The addresses of a network's subnets that no container may take."""
    pools = spec.definition.ipam.config if spec.definition.ipam else []
    return {str(ipaddress.ip_address(a)) for pool in pools
            for a in [*([pool.gateway] if pool.gateway else []), *pool.aux_addresses.values()]}


def _attach_networks(options: dict[str, Any], service: Service, raw: Mapping[str, Any],
                     networks: Mapping[str, NetworkSpec]) -> Found:
    found: Found = []
    joined = dict(options.get("networks") or {})
    if not joined and not service.network_mode:
        joined = {DEFAULT_NETWORK: ServiceNetwork().model_dump(mode="json")}
    attached: dict[str, Any] = {}
    for key, settings in joined.items():
        path = _network_path(raw, key)
        spec = networks.get(key)
        if spec is None:
            found.append((path, f"network '{key}' is not declared in the playbook's "
                                "top-level 'networks:'"))
            continue
        for setting, message in _static_address_problems(key, settings, spec,
                                                         service.replicas):
            found.append(((*path, setting) if path[-1] == key else path, message))
        attached[spec.name] = settings
    options["networks"] = attached
    return found


def _attach_volumes(options: dict[str, Any], volumes: Mapping[str, VolumeSpec]) -> Found:
    found: Found = []
    for index, mount in enumerate(options.get("volumes") or []):
        if mount.get("type") != "volume" or not mount.get("source"):
            continue
        spec = volumes.get(mount["source"])
        if spec is None:
            found.append((("volumes", index), f"volume '{mount['source']}' is not declared in "
                                              "the playbook's top-level 'volumes:' (Compose's "
                                              "rule); add it there"))
            continue
        mount["source"] = spec.name
    return found


def attach_resources(options: dict[str, Any], service: Service, raw: Mapping[str, Any],
                     networks: Mapping[str, NetworkSpec], volumes: Mapping[str, VolumeSpec],
                     refused: frozenset[str] = frozenset()) -> Found:
    """Name `options`' networks and named volumes as on the hosts (in place), joining the
    default network where Compose would; every problem with where it is. `refused`: the
    top-level keys that were refused (already reported: what names them is not undeclared)."""
    found = (_attach_networks(options, service, raw, networks)
             + _attach_volumes(options, volumes))
    return [(path, message) for path, message in found
            if not (path and path[0] in refused and "is not declared" in message)]
