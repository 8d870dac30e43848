"""The networks and volumes a project needs on its hosts (pure): their names there, as Compose
names them, and what a container's options ask of the Engine.

A network or volume declared at the top level is `PROJECT_KEY` on the hosts (or its `name:`;
an external one keeps its name and must exist). A service that lists no networks, and sets
no `network_mode`, joins the implicit `default` network, `PROJECT_default`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.config.networks_volumes import NetworkDef, VolumeDef

DEFAULT_NETWORK = "default"
DEFAULT_NETWORK_DRIVER = "bridge"
DEFAULT_VOLUME_DRIVER = "local"
ApiVersion = tuple[int, int]


def host_name(project: str, key: str, definition: NetworkDef | VolumeDef | None) -> str:
    """The name on the hosts: `name:` as is, an external one's key, else `PROJECT_KEY`."""
    if definition is not None and definition.name:
        return definition.name
    if definition is not None and definition.external:
        return key
    return f"{project}_{key}"


@dataclass(frozen=True)
class NetworkSpec:
    key: str  # in the playbook
    name: str  # on the hosts
    definition: NetworkDef

    @property
    def external(self) -> bool:
        return self.definition.external

    @property
    def driver(self) -> str:
        return self.definition.driver or DEFAULT_NETWORK_DRIVER

    def summary(self) -> str:
        """What `fleet plan` says of the network it creates."""
        parts = [f"driver {self.driver}"]
        parts += [f"subnet {pool.subnet}" for pool in
                  (self.definition.ipam.config if self.definition.ipam else [])]
        parts += [flag for flag in ("internal", "attachable")
                  if getattr(self.definition, flag)]
        if self.definition.enable_ipv6:
            parts.append("ipv6")
        return ", ".join(parts)


@dataclass(frozen=True)
class VolumeSpec:
    key: str
    name: str
    definition: VolumeDef

    @property
    def external(self) -> bool:
        return self.definition.external

    @property
    def driver(self) -> str:
        return self.definition.driver or DEFAULT_VOLUME_DRIVER

    def summary(self) -> str:
        return f"driver {self.driver}"


def project_networks(project: str, declared: Mapping[str, NetworkDef | None]
                     ) -> dict[str, NetworkSpec]:
    """Playbook key -> spec, for every declared network and the implicit `default`."""
    keys = {DEFAULT_NETWORK: None, **declared}
    return {key: NetworkSpec(key, host_name(project, key, definition),
                             definition or NetworkDef())
            for key, definition in keys.items()}


def project_volumes(project: str, declared: Mapping[str, VolumeDef | None]
                    ) -> dict[str, VolumeSpec]:
    return {key: VolumeSpec(key, host_name(project, key, definition), definition or VolumeDef())
            for key, definition in declared.items()}


def same_names(specs: Iterable[NetworkSpec | VolumeSpec]) -> list[tuple[str, str, str]]:
    """(key, other key, host name) for two declarations that would be one thing on a host."""
    seen: dict[str, str] = {}
    clashes = []
    for spec in specs:
        if spec.name in seen:
            clashes.append((spec.key, seen[spec.name], spec.name))
        seen.setdefault(spec.name, spec.key)
    return clashes


def network_order(networks: Mapping[str, Any]) -> list[str]:
    """The networks a container joins, in the order it joins them (Compose's): highest
    `priority` first, then by name. The first is given at create, the others connected."""
    def priority(name: str) -> int:
        settings = networks[name]
        value = settings.get("priority", 0) if isinstance(settings, Mapping) else 0
        return value if isinstance(value, int) else 0

    return sorted(networks, key=lambda name: (-priority(name), name))


def named_volumes(options: Mapping[str, Any]) -> list[str]:
    """The named volumes (host names) a container's options mount."""
    return sorted({str(v["source"]) for v in options.get("volumes") or []
                   if v.get("type") == "volume" and v.get("source")})


def static_addresses(options: Mapping[str, Any]) -> list[str]:
    """The fixed addresses a container claims on its networks (only one container at a time
    can hold one: a replacement must be stop-first)."""
    found = []
    for settings in (options.get("networks") or {}).values():
        if isinstance(settings, Mapping):
            found += [str(settings[k]) for k in ("ipv4_address", "ipv6_address", "mac_address")
                      if settings.get(k)]
    return found


def container_api_needs(options: Mapping[str, Any]) -> list[tuple[ApiVersion, str]]:
    """What in a container's options the Engine takes only from some API version on."""
    needs: list[tuple[ApiVersion, str]] = []
    for index, volume in enumerate(options.get("volumes") or []):
        if (volume.get("volume") or {}).get("subpath"):
            needs.append(((1, 45), f"volumes[{index}].volume.subpath"))
        if (volume.get("bind") or {}).get("recursive") in ("writable", "readonly"):
            needs.append(((1, 44), f"volumes[{index}].bind.recursive"))
    for name, settings in sorted((options.get("networks") or {}).items()):
        if not isinstance(settings, Mapping):
            continue
        if settings.get("mac_address"):
            needs.append(((1, 44), f"networks.{name}.mac_address"))
        if settings.get("gw_priority"):
            needs.append(((1, 48), f"networks.{name}.gw_priority"))
    return needs


def network_api_needs(spec: NetworkSpec) -> list[tuple[ApiVersion, str]]:
    if spec.definition.enable_ipv4 is False:
        return [((1, 48), f"network {spec.name}: enable_ipv4: false")]
    return []
