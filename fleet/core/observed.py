"""Observed state: frozen, typed snapshots of what runs on a host, parsed from Engine API JSON.

The reconciler sees only these snapshots, never a client: observation is the only read.
Everything here came from a host and is untrusted: answers are validated into the models of
fleet.core.answers (a bad one raises AnswerShapeError, which the caller makes that host's
error), and labels are parsed within bounds (a bad one reads as absent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fleet.config.references import parse_image_reference, pinned_image
from fleet.core import labels
from fleet.core.answers import (
    CONTAINER_LIST,
    DIGEST_PATTERN,
    IMAGE_LIST,
    NETWORK_LIST,
    ContainerInspect,
    ContainerSummary,
    NetworkSummary,
    PortBinding,
    PortSummary,
    VolumeList,
    VolumeSummary,
    validated,
)
from fleet.core.files import FilesOnHost
from fleet.core.resources import resources_from_host_config
from fleet.core.untrusted import KiB, UntrustedJSONError, parse_json

if TYPE_CHECKING:
    from fleet.core.proxy import LiveProxy

RUNNING = "running"
MAX_SPEC_LABEL = 256 * KiB  # a service's normalized spec is a few KiB
MAX_SPEC_DEPTH = 32
_SMALL_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is True


def label_number(text: str) -> int | None:
    """A replica or revision label as a number; None unless it is 1 to 9 ASCII digits."""
    return int(text) if _SMALL_NUMBER.fullmatch(text) else None


_SCALAR = (str, int, float, bool, type(None))
_DIGEST = re.compile(DIGEST_PATTERN)
MAX_REFERENCE = 4096


def valid_reference(text: str) -> bool:
    if not text or len(text) > MAX_REFERENCE:
        return False
    try:
        parse_image_reference(text)
    except ValueError:
        return False
    return True


def usable_spec(value: Any) -> dict[str, Any] | None:
    """`value` if it can be a recorded spec (an object whose fields fleet reads have their
    types), else None."""
    if not isinstance(value, dict):
        return None
    environment = value.get("environment")
    if environment is not None and not (
            isinstance(environment, dict)
            and all(isinstance(v, _SCALAR) for v in environment.values())):
        return None
    return value


def recorded_spec(text: str) -> dict[str, Any] | None:
    """The spec a container records in its fleet.spec label, or None when it has none fleet
    can use: too large, not JSON, too deep, not an object, or fields of the wrong type."""
    if not text:
        return None
    try:
        return usable_spec(parse_json(text, max_bytes=MAX_SPEC_LABEL, max_depth=MAX_SPEC_DEPTH))
    except UntrustedJSONError:
        return None


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str
    host_port: int
    protocol: str


@dataclass(frozen=True)
class ObservedContainer:
    id: str
    name: str
    state: str  # created, running, paused, restarting, exited, dead
    labels: Mapping[str, str] = field(default_factory=dict)
    published: frozenset[PublishedPort] = frozenset()
    # Known only for inspected containers (those of the project):
    health: str | None = None  # starting, healthy, unhealthy; None without a healthcheck
    config_image: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)
    started_at: str = ""
    created: str = ""
    exit_code: int | None = None  # of its last run, once it has exited

    @property
    def project(self) -> str | None:
        return self.labels.get(labels.PROJECT)

    @property
    def service(self) -> str | None:
        return self.labels.get(labels.SERVICE)

    @property
    def replica(self) -> int | None:
        return label_number(self.labels.get(labels.REPLICA, ""))

    @property
    def spec_hash(self) -> str:
        return self.labels.get(labels.SPEC_HASH, "")

    @cached_property
    def image_ref(self) -> str:
        """The image as configured; "" unless the label is an image reference."""
        text = self.labels.get(labels.IMAGE, "")
        return text if valid_reference(text) else ""

    @cached_property
    def image_digest(self) -> str:
        """What the tag resolved to; "" unless the label is a digest (of a valid image_ref:
        the two are pinned together, `name@digest`)."""
        text = self.labels.get(labels.IMAGE_DIGEST, "")
        return text if self.image_ref and _DIGEST.fullmatch(text) else ""

    @property
    def delivered_image(self) -> bool:
        """Made from an image fleet delivered from the controller: pinned by image ID."""
        return self.labels.get(labels.IMAGE_SOURCE) == labels.FROM_CONTROLLER

    @property
    def pin(self) -> str:
        """What the container was created from, as fleet pins it."""
        return pinned_image(self.image_ref, self.image_digest or None,
                            by_id=self.delivered_image)

    @property
    def revision(self) -> int:
        return label_number(self.labels.get(labels.REVISION, "")) or 0

    @cached_property
    def spec(self) -> dict[str, Any] | None:
        """The recorded spec (see recorded_spec); parsed once. Callers must not change it."""
        return recorded_spec(self.labels.get(labels.SPEC, ""))

    @property
    def running(self) -> bool:
        return self.state == RUNNING


@dataclass(frozen=True)
class IpamPool:
    subnet: str = ""
    ip_range: str = ""
    gateway: str = ""
    aux_addresses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedNetwork:
    name: str
    driver: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = ""
    ipam_options: Mapping[str, str] = field(default_factory=dict)
    ipam_pools: tuple[IpamPool, ...] = ()


@dataclass(frozen=True)
class ObservedVolume:
    name: str
    driver: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostSnapshot:
    host: str
    containers: tuple[ObservedContainer, ...]
    images: frozenset[str] = frozenset()  # IDs, RepoDigests and RepoTags on the host
    # The host's networks and volumes by name; None when they were not read (then nothing
    # is known of them: not that there are none).
    networks: Mapping[str, ObservedNetwork] | None = None
    last_revisions: Mapping[str, int] = field(default_factory=dict)  # from the host's journal
    volumes: Mapping[str, ObservedVolume] | None = None
    api_version: str = ""  # the Engine API version fleet speaks with the host ("" unknown)
    # The project's delivered files there (fleet.core.files); None when not looked at.
    files: FilesOnHost | None = None
    # Its proxy's routes as its admin API gives them (fleet.core.proxy), when it has one,
    # or why they could not be read.
    proxy: LiveProxy | None = None
    proxy_error: str = ""

    def of_project(self, project: str) -> list[ObservedContainer]:
        return [c for c in self.containers if c.project == project]

    def foreign(self, project: str) -> list[ObservedContainer]:
        return [c for c in self.containers if c.project != project]


def _published_from_list(ports: Sequence[PortSummary] | None) -> frozenset[PublishedPort]:
    return frozenset(PublishedPort(p.IP or "", p.PublicPort, p.Type or "tcp")
                     for p in ports or [] if p.PublicPort)


def _from_summary(item: ContainerSummary) -> ObservedContainer:
    names = item.Names or [""]
    return ObservedContainer(
        id=item.Id,
        name=names[0].lstrip("/"),
        state=item.State or "",
        labels=dict(item.Labels or {}),
        published=_published_from_list(item.Ports),
    )


def container_from_list(item: Any) -> ObservedContainer:
    """A container as GET /containers/json lists it (enough for foreign containers).

    Raises AnswerShapeError."""
    return _from_summary(validated(ContainerSummary, item))


def containers_from_list(items: Any) -> list[ObservedContainer]:
    """Every container of a GET /containers/json answer. Raises AnswerShapeError."""
    return [_from_summary(item) for item in validated(CONTAINER_LIST, items)]


def _published_from_inspect(bindings: Mapping[str, Sequence[PortBinding] | None] | None
                            ) -> frozenset[PublishedPort]:
    result = set()
    for key, entries in (bindings or {}).items():
        protocol = key.partition("/")[2] or "tcp"
        for binding in entries or []:
            port = int(binding.HostPort) if binding.HostPort else 0
            if 0 < port <= 65535:
                result.add(PublishedPort(binding.HostIp or "", port, protocol))
    return frozenset(result)


def container_from_inspect(data: Any) -> ObservedContainer:
    """A container as GET /containers/{id}/json describes it. Raises AnswerShapeError."""
    answer: ContainerInspect = validated(ContainerInspect, data)
    config, state, host_config = answer.Config, answer.State, answer.HostConfig
    env = dict(entry.partition("=")[::2] for entry in (config.Env if config else None) or [])
    health = state.Health.Status if state and state.Health else None
    raw_host_config = data.get("HostConfig") if isinstance(data, Mapping) else None
    return ObservedContainer(
        id=answer.Id,
        name=(answer.Name or "").lstrip("/"),
        state=(state.Status if state else None) or "",
        labels=dict((config.Labels if config else None) or {}),
        published=_published_from_inspect(host_config.PortBindings if host_config else None),
        health=health if health and health != "none" else None,
        config_image=(config.Image if config else None) or "",
        env=env,
        resources=resources_from_host_config(raw_host_config or {}),
        started_at=(state.StartedAt if state else None) or "",
        created=answer.Created or "",
        exit_code=state.ExitCode if state else None,
    )


def images_from_list(items: Any) -> frozenset[str]:
    """RepoDigests and RepoTags of a GET /images/json answer. Raises AnswerShapeError."""
    present: set[str] = set()
    for item in validated(IMAGE_LIST, items):
        if item.Id:  # an image fleet delivered is pinned by its ID
            present.add(item.Id)
        present.update(item.RepoDigests or [])
        present.update(item.RepoTags or [])
    return frozenset(present)


def _network(item: NetworkSummary) -> ObservedNetwork:
    ipam = item.IPAM
    pools = tuple(IpamPool(p.Subnet or "", p.IPRange or "", p.Gateway or "",
                           dict(p.AuxiliaryAddresses or {}))
                  for p in (ipam.Config if ipam else None) or [])
    return ObservedNetwork(
        name=item.Name, driver=item.Driver or "", labels=dict(item.Labels or {}),
        options=dict(item.Options or {}), internal=bool(item.Internal),
        attachable=bool(item.Attachable), enable_ipv6=bool(item.EnableIPv6),
        ipam_driver=(ipam.Driver if ipam else None) or "",
        ipam_options=dict((ipam.Options if ipam else None) or {}), ipam_pools=pools)


def networks_from_list(items: Any) -> dict[str, ObservedNetwork]:
    """The networks of a GET /networks answer, by name. Raises AnswerShapeError."""
    return {network.Name: _network(network) for network in validated(NETWORK_LIST, items)}


def volume_from_answer(item: Any) -> ObservedVolume:
    """A volume as POST /volumes/create answers it. Raises AnswerShapeError."""
    return _volume(validated(VolumeSummary, item))


def _volume(item: VolumeSummary) -> ObservedVolume:
    return ObservedVolume(item.Name, item.Driver or "", dict(item.Labels or {}),
                          dict(item.Options or {}))


def volumes_from_list(answer: Any) -> dict[str, ObservedVolume]:
    """The volumes of a GET /volumes answer, by name. Raises AnswerShapeError."""
    listed: VolumeList = validated(VolumeList, answer)
    return {volume.Name: _volume(volume) for volume in listed.Volumes or []}
