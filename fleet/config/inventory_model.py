"""The native inventory format (`inventories/*.yml`), as a pydantic model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

HostKeyChecking = Literal["strict", "accept-new"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectionSettings(_Strict):
    """SSH and Docker settings a host inherits from `defaults` and may override."""

    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
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


class Defaults(ConnectionSettings):
    labels: dict[str, str] = {}


class HostEntry(ConnectionSettings):
    address: str | None = Field(default=None, description="IP or DNS name; default: the name.")
    labels: dict[str, str] = {}
    vars: dict[str, Any] = {}


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


