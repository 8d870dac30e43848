"""Compose's top-level `networks:` and `volumes:`: what fleet creates on every host a service
using them runs on (or, `external`, expects to find there).

Addresses are checked as the Engine would take them (and a little tighter: a subnet must be
written as its network address, and be neither so large it would take over the host's routes
nor so small no container fits).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from fleet.config import compose_syntax as syntax
from fleet.config.service import (
    NETWORK_NAME,
    RESERVED_LABEL_PREFIX,
    VOLUME_KEY,
    Extensible,
    without_extensions,
)

MAX_IPAM_POOLS = 16
MAX_AUX_ADDRESSES = 64
# Prefix lengths a subnet may have: shorter would swallow the host's routes, longer leaves
# no address for a container besides the gateway.
PREFIX_BOUNDS = {4: (8, 30), 6: (48, 126)}
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Docker's rule for volume names (at least two characters, unlike network names).
VOLUME_NAME_RULE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def _string_map(what: str) -> BeforeValidator:
    """Compose's `driver_opts`: values strings or numbers, sent as strings."""
    def parse(value: Any) -> dict[str, str]:
        pairs = syntax.key_value_map(value, what)
        return dict(sorted((k, v or "") for k, v in pairs.items()))

    return BeforeValidator(parse, json_schema_input_type=dict[str, str | int | float])


def _labels(value: Any) -> dict[str, str]:
    pairs = syntax.key_value_map(value, "label")
    for key in pairs:
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ValueError(f"label {key!r}: the prefix 'fleet.' is reserved for fleet")
    return dict(sorted((k, v or "") for k, v in pairs.items()))


Options = Annotated[dict[str, str], _string_map("driver option")]
Labels = Annotated[dict[str, str], BeforeValidator(
    _labels, json_schema_input_type=dict[str, str] | list[str])]


def parse_subnet(text: str) -> _Network:
    try:
        subnet = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"bad subnet {text!r}: expected CIDR, e.g. 172.28.0.0/16 or "
                         "fd00:28::/64") from None
    if str(subnet.network_address) != text.partition("/")[0] or "/" not in text:
        raise ValueError(f"bad subnet {text!r}: write it as its network address with a prefix "
                         f"length, i.e. {subnet}")
    low, high = PREFIX_BOUNDS[subnet.version]
    if not low <= subnet.prefixlen <= high:
        raise ValueError(f"subnet {text!r}: an IPv{subnet.version} subnet's prefix must be "
                         f"from /{low} to /{high}")
    return subnet


def _address_in(text: str, subnet: _Network, what: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"bad {what} {text!r}: expected an IP address") from None
    if address not in subnet:
        raise ValueError(f"{what} {text} is outside the subnet {subnet}")
    if address == subnet.network_address or (
            subnet.version == 4 and address == subnet.broadcast_address):
        raise ValueError(f"{what} {text} is the subnet's network or broadcast address")
    return str(address)


class IpamPool(Extensible):
    subnet: str = Field(description="CIDR, e.g. 172.28.0.0/16")
    ip_range: str | None = None
    gateway: str | None = None
    aux_addresses: dict[str, str] = Field(default={}, max_length=MAX_AUX_ADDRESSES)

    @model_validator(mode="before")
    @classmethod
    def _needs_subnet(cls, value: Any) -> Any:
        if isinstance(value, dict) and "subnet" not in value:
            raise ValueError("an ipam config entry needs a subnet (ip_range, gateway and "
                             "aux_addresses are taken from it)")
        return value

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        parse_subnet(value)
        return value

    @field_validator("ip_range")
    @classmethod
    def _ip_range(cls, value: str | None, info: ValidationInfo) -> str | None:
        subnet = _validated_subnet(info)
        if value is None or subnet is None:
            return value
        try:
            ip_range = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValueError(f"bad ip_range {value!r}: expected CIDR inside the subnet "
                             f"{subnet}, written as its network address") from None
        if not (isinstance(ip_range, ipaddress.IPv4Network)
                and isinstance(subnet, ipaddress.IPv4Network)
                and ip_range.subnet_of(subnet)) and not (
                isinstance(ip_range, ipaddress.IPv6Network)
                and isinstance(subnet, ipaddress.IPv6Network) and ip_range.subnet_of(subnet)):
            raise ValueError(f"ip_range {value} is not inside the subnet {subnet}")
        return value

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str | None, info: ValidationInfo) -> str | None:
        subnet = _validated_subnet(info)
        if value is not None and subnet is not None:
            _address_in(value, subnet, "gateway")
        return value

    @field_validator("aux_addresses")
    @classmethod
    def _aux(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        subnet = _validated_subnet(info)
        for name, address in value.items():
            if not name:
                raise ValueError("an aux_addresses entry needs a name")
            if subnet is not None:
                _address_in(address, subnet, f"aux_addresses.{name}")
        return value

    def network(self) -> _Network:
        return ipaddress.ip_network(self.subnet)


def _validated_subnet(info: ValidationInfo) -> _Network | None:
    """The entry's subnet, when it was valid (else its own error is reported)."""
    subnet = info.data.get("subnet")
    return ipaddress.ip_network(subnet) if isinstance(subnet, str) else None


class Ipam(Extensible):
    driver: str | None = Field(default=None, description="Default: Docker's 'default'.")
    config: list[IpamPool] = Field(default=[], max_length=MAX_IPAM_POOLS)
    options: Options = {}

    @model_validator(mode="after")
    def _no_overlap(self) -> Ipam:
        subnets = [pool.network() for pool in self.config]
        for index, subnet in enumerate(subnets):
            for other in subnets[:index]:
                if subnet.version == other.version and subnet.overlaps(other):
                    raise ValueError(f"subnets {other} and {subnet} overlap")
        return self


def _external(value: Any) -> Any:
    """`external: true`, or the deprecated `external: {name: NAME}` (kept as `name`)."""
    if isinstance(value, dict):
        return True
    return value


class _Declared(Extensible):
    """What top-level networks and volumes share: a name on the hosts, or `external`."""

    name: str | None = Field(default=None, description="The name on the hosts, as is (not "
                                                       "prefixed with the project).")
    external: Annotated[bool, BeforeValidator(_external)] = Field(
        default=False, description="Exists on the hosts; fleet neither creates nor changes it.")
    labels: Labels = {}

    @model_validator(mode="before")
    @classmethod
    def _legacy_external_name(cls, value: Any) -> Any:
        value = without_extensions(value)
        if not isinstance(value, dict) or not isinstance(value.get("external"), dict):
            return value
        legacy = without_extensions(value["external"])
        if set(legacy) - {"name"}:
            raise ValueError("external: use true, or {name: NAME}")
        if "name" in legacy:
            if value.get("name") not in (None, legacy["name"]):
                raise ValueError("'name' and 'external.name' differ: give the name once, "
                                 "as 'name'")
            value = {**value, "name": legacy["name"]}
        return value

    def _external_alone(self, kind: str, settings: tuple[str, ...]) -> None:
        given = [key for key in settings if key in self.model_fields_set]
        if self.external and given:
            raise ValueError(f"an external {kind} takes no settings but 'name' (Compose's "
                             f"rule: fleet neither creates nor changes it); remove "
                             f"{', '.join(given)}")


class NetworkDef(_Declared):
    driver: str | None = Field(default=None, description="Default: bridge.")
    driver_opts: Options = {}
    ipam: Ipam | None = None
    internal: bool = False
    attachable: bool = False
    enable_ipv4: bool | None = Field(default=None, description="false: Docker Engine API 1.48 "
                                                               "or newer.")
    enable_ipv6: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NETWORK_NAME.match(value):
            raise ValueError(f"bad network name {value!r}: Docker's rule is a letter or digit, "
                             "then letters, digits, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _check(self) -> NetworkDef:
        self._external_alone("network", ("driver", "driver_opts", "ipam", "internal",
                                         "attachable", "enable_ipv4", "enable_ipv6", "labels"))
        pools = self.ipam.config if self.ipam else []
        versions = [pool.network().version for pool in pools]
        if 6 in versions and not self.enable_ipv6:
            raise ValueError("an IPv6 subnet needs enable_ipv6: true")
        if (self.driver or "bridge") == "bridge" and (versions.count(4) > 1
                                                       or versions.count(6) > 1):
            raise ValueError("the bridge driver takes one IPv4 and one IPv6 subnet at most")
        return self

    def subnets(self, version: int) -> list[_Network]:
        return [pool.network() for pool in (self.ipam.config if self.ipam else [])
                if pool.network().version == version]


class VolumeDef(_Declared):
    driver: str | None = Field(default=None, description="Default: local.")
    driver_opts: Options = {}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not VOLUME_NAME_RULE.match(value):
            raise ValueError(f"bad volume name {value!r}: Docker's rule is a letter or digit, "
                             "then at least one more letter, digit, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _check(self) -> VolumeDef:
        self._external_alone("volume", ("driver", "driver_opts", "labels"))
        return self


def volume_key_problem(name: object) -> str | None:
    if isinstance(name, str) and VOLUME_KEY.match(name):
        return None
    return (f"bad volume name '{name}': Compose's rule is letters, digits, '_', '.' and '-'")
