"""The native inventory format (`inventories/*.yml`), as a pydantic model.

Addresses, users and jump hosts end up in SSH connections, and through asyncssh in
~/.ssh/config substitutions (`ProxyCommand ... %h`), which a shell runs: so an address
must be an IP address or an RFC 1123 host name, nothing else, wherever it comes from.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

HostKeyChecking = Literal["strict", "accept-new"]
MAX_HOST_NAME = 253

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,255}")
_PORT = re.compile(r"[0-9]{1,5}")


def address_problem(value: object) -> str | None:
    """Why `value` is not an IP address (v4 or v6) or an RFC 1123 host name, if it is not."""
    if not isinstance(value, str) or not value:
        return "an address must be an IP address or a host name"
    if "%" not in value:  # an IPv6 zone (fe80::1%eth0) is refused with the rest
        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            pass
    name = value.removesuffix(".")
    labels = name.split(".")
    if len(name) > MAX_HOST_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        return (f"{value!r} is not an IP address or a host name (RFC 1123: labels of letters, "
                "digits and '-', not starting or ending with '-', at most 63 characters each "
                f"and {MAX_HOST_NAME} in all)")
    if labels[-1].isdigit():
        return f"{value!r} is not a valid IPv4 address"
    return None


def user_problem(value: object) -> str | None:
    if isinstance(value, str) and _USER.fullmatch(value):
        return None
    return (f"{value!r} is not a user name: use letters, digits, '.', '_', '-' and '@', "
            "not starting with '-' or '@'")


def port_problem(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return None
    if isinstance(value, str) and _PORT.fullmatch(value) and 1 <= int(value) <= 65535:
        return None
    return f"a port must be a number from 1 to 65535, got {value!r}"


def parse_jump(value: str) -> tuple[str | None, str, int]:
    """`[user@]host[:port]` (IPv6 as `[addr]:port`) -> (user, address, port), or ValueError
    with the reason. The same reading as the transport's, so what passes here connects."""
    user, at, host_port = value.rpartition("@")
    port_text: str | None = None
    if host_port.startswith("["):
        address, closed, rest = host_port[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"jump host {value!r}: write an IPv6 address as [address]:port")
        port_text = rest[1:] if rest else None
        if ":" not in address:
            raise ValueError(f"jump host {value!r}: only IPv6 addresses go in brackets")
    elif host_port.count(":") == 1:
        address, _, port_text = host_port.partition(":")
    else:
        address = host_port
    problem = address_problem(address)
    if problem:
        raise ValueError(f"jump host {value!r}: {problem}")
    if at and user_problem(user):
        raise ValueError(f"jump host {value!r}: {user_problem(user)}")
    if port_text is not None and port_problem(port_text):
        raise ValueError(f"jump host {value!r}: {port_problem(port_text)}")
    return (user or None), address, int(port_text) if port_text else 22


def _port(value: object) -> object:
    if value is None:
        return value
    problem = port_problem(value)
    if problem:
        raise ValueError(problem)
    return int(value)  # type: ignore[call-overload]


Port = Annotated[int | None, BeforeValidator(_port)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ConnectionSettings(_Strict):
    """SSH and Docker settings a host inherits from `defaults` and may override."""

    user: str | None = None
    port: Port = None
    ssh_key: str | None = None
    known_hosts: str | None = None
    host_key_checking: HostKeyChecking | None = Field(
        default=None, description="strict (default) or accept-new; never off."
    )
    jump: str | None = Field(default=None, description="ProxyJump host: [user@]host[:port]")
    docker_socket: str | None = Field(default=None, description="Default /var/run/docker.sock")
    state_dir: str | None = Field(
        default=None, description="Where fleet keeps each project's journal and lock on the "
        "host; relative paths are under the SSH user's home. Default .fleet")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        problem = user_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("jump")
    @classmethod
    def _jump(cls, value: str | None) -> str | None:
        if value is not None:
            parse_jump(value)
        return value


class Defaults(ConnectionSettings):
    labels: dict[str, str] = {}


class HostEntry(ConnectionSettings):
    address: str | None = Field(default=None, description="IP or DNS name; default: the name.")
    labels: dict[str, str] = {}
    vars: dict[str, Any] = {}

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        problem = address_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


class GroupEntry(_Strict):
    hosts: list[str] = []
    match: str | None = Field(default=None, description="Membership by pattern, e.g. region=eu-*")
    children: list[str] = []
    vars: dict[str, Any] = {}


class InventoryFile(_Strict):
    defaults: Defaults = Defaults()
    hosts: dict[str, HostEntry | None] = {}
    groups: dict[str, GroupEntry] = {}
    vars: dict[str, Any] = {}


