"""Observed state: frozen, typed snapshots of what runs on a host, parsed from Engine API JSON.

The reconciler sees only these snapshots, never a client: observation is the only read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.core import labels
from fleet.core.resources import resources_from_host_config

RUNNING = "running"


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

    @property
    def project(self) -> str | None:
        return self.labels.get(labels.PROJECT)

    @property
    def service(self) -> str | None:
        return self.labels.get(labels.SERVICE)

    @property
    def replica(self) -> int | None:
        text = self.labels.get(labels.REPLICA, "")
        return int(text) if text.isdigit() else None

    @property
    def spec_hash(self) -> str:
        return self.labels.get(labels.SPEC_HASH, "")

    @property
    def image_ref(self) -> str:
        return self.labels.get(labels.IMAGE, "")

    @property
    def image_digest(self) -> str:
        return self.labels.get(labels.IMAGE_DIGEST, "")

    @property
    def revision(self) -> int:
        text = self.labels.get(labels.REVISION, "")
        return int(text) if text.isdigit() else 0

    @property
    def spec(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.labels.get(labels.SPEC, ""))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def running(self) -> bool:
        return self.state == RUNNING


@dataclass(frozen=True)
class HostSnapshot:
    host: str
    containers: tuple[ObservedContainer, ...]
    images: frozenset[str] = frozenset()  # RepoDigests and RepoTags present on the host
    networks: frozenset[str] = frozenset()  # network names present on the host
    last_revisions: Mapping[str, int] = field(default_factory=dict)  # from the host's journal

    def of_project(self, project: str) -> list[ObservedContainer]:
        return [c for c in self.containers if c.project == project]

    def foreign(self, project: str) -> list[ObservedContainer]:
        return [c for c in self.containers if c.project != project]


def _published_from_list(ports: Sequence[Mapping[str, Any]] | None) -> frozenset[PublishedPort]:
    return frozenset(
        PublishedPort(p.get("IP", ""), int(p["PublicPort"]), p.get("Type", "tcp"))
        for p in ports or [] if p.get("PublicPort")
    )


def container_from_list(item: Mapping[str, Any]) -> ObservedContainer:
    """A container as GET /containers/json lists it (enough for foreign containers)."""
    names = item.get("Names") or [""]
    return ObservedContainer(
        id=item["Id"],
        name=names[0].lstrip("/"),
        state=item.get("State", ""),
        labels=dict(item.get("Labels") or {}),
        published=_published_from_list(item.get("Ports")),
    )


def _published_from_inspect(host_config: Mapping[str, Any]) -> frozenset[PublishedPort]:
    result = set()
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        protocol = key.partition("/")[2] or "tcp"
        for binding in bindings or []:
            if binding.get("HostPort"):
                result.add(PublishedPort(binding.get("HostIp", ""), int(binding["HostPort"]),
                                         protocol))
    return frozenset(result)


def container_from_inspect(data: Mapping[str, Any]) -> ObservedContainer:
    """A container as GET /containers/{id}/json describes it."""
    config = data.get("Config") or {}
    state = data.get("State") or {}
    host_config = data.get("HostConfig") or {}
    env = dict(entry.partition("=")[::2] for entry in config.get("Env") or [])
    health = (state.get("Health") or {}).get("Status")
    return ObservedContainer(
        id=data["Id"],
        name=str(data.get("Name", "")).lstrip("/"),
        state=state.get("Status", ""),
        labels=dict(config.get("Labels") or {}),
        published=_published_from_inspect(host_config),
        health=health if health and health != "none" else None,
        config_image=config.get("Image", ""),
        env=env,
        resources=resources_from_host_config(host_config),
        started_at=state.get("StartedAt", ""),
        created=data.get("Created", ""),
    )


def images_from_list(items: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    present: set[str] = set()
    for item in items:
        present.update(item.get("RepoDigests") or [])
        present.update(item.get("RepoTags") or [])
    return frozenset(present)
