"""Observation: the only reads. Per host, its lists side by side, then inspects of the
project's own containers in parallel over the host's one SSH connection (as many at once as
its Docker client has channels).

The client checks every answer; the snapshot is built from the checked answers, so anything
still unusable (AnswerShapeError) is that host's HostAnswerError, never the run's crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from fleet.core.answers import AnswerShapeError
from fleet.core.observed import (
    HostSnapshot,
    container_from_inspect,
    containers_from_list,
    images_from_list,
    networks_from_list,
    volumes_from_list,
)
from fleet.docker.client import DockerClient
from fleet.docker.registry_auth import RegistryAuth
from fleet.errors import DockerError, DockerNotFoundError, HostAnswerError, HostError

T = TypeVar("T")
# A host could list any number of "project" containers, each costing an inspect: no real
# host runs this many replicas of one project.
MAX_PROJECT_CONTAINERS = 1000


def _built(host: str, what: str, build: Callable[[Any], T], answer: Any) -> T:
    try:
        return build(answer)
    except AnswerShapeError as exc:
        raise HostAnswerError(host, f"Docker answered {what} with an unusable answer: "
                                    f"{exc}") from None


async def observe_host(host: str, docker: DockerClient, project: str, *,
                       with_images: bool = False, with_volumes: bool = False) -> HostSnapshot:
    """The host's containers (the project's inspected), networks (every service joins at
    least the project's `default`), and, as asked, images and volumes; the lists are read
    at once."""
    listed = await asyncio.gather(
        docker.list_containers(all=True), docker.list_networks(),
        docker.list_images() if with_images else _nothing(),
        docker.list_volumes() if with_volumes else _nothing())
    containers = _built(host, "GET /containers/json", containers_from_list, listed[0])
    networks = _built(host, "GET /networks", networks_from_list, listed[1])
    images = (_built(host, "GET /images/json", images_from_list, listed[2])
              if with_images else frozenset())
    volumes = (_built(host, "GET /volumes", volumes_from_list, listed[3])
               if with_volumes else None)
    api_version = await docker.api_version()
    ours = [c for c in containers if c.project == project]
    if len(ours) > MAX_PROJECT_CONTAINERS:
        raise HostAnswerError(host, f"Docker listed {len(ours)} containers of project "
                                    f"{project}, more than fleet reads on one host "
                                    f"({MAX_PROJECT_CONTAINERS})")
    # As many at once as the client has channels (kept alive, so each carries inspect after
    # inspect): more would only queue inside the transport, where each one's deadline would
    # already be running.
    limit = asyncio.Semaphore(docker.channels)

    async def inspect(container_id: str) -> Any:
        async with limit:
            return await docker.inspect_container(container_id)

    inspected = await asyncio.gather(*(inspect(c.id) for c in ours), return_exceptions=True)
    detailed = {}
    for container, data in zip(ours, inspected, strict=True):
        if isinstance(data, BaseException):
            if isinstance(data, DockerNotFoundError):
                continue  # removed between the list and the inspect
            raise data
        detailed[container.id] = _built(host, f"GET /containers/{container.id}/json",
                                        container_from_inspect, data)
    merged = tuple(detailed.get(c.id, c) for c in containers
                   if c.project != project or c.id in detailed)
    return HostSnapshot(host, merged, images, networks, volumes=volumes,
                        api_version=api_version)


async def _nothing() -> None:
    return None


def _refused_for_credentials(error: HostError) -> bool:
    reason = error.reason.lower()
    return (isinstance(error, DockerError) and error.status in (401, 403)) or any(
        word in reason for word in ("unauthorized", "authentication required", "denied"))


async def resolve_digests(images_by_host: Mapping[str, Iterable[str]],
                          clients: Mapping[str, DockerClient], auth: RegistryAuth | None
                          ) -> tuple[dict[str, str | None], dict[str, str]]:
    """Resolve every tag once per run (asked through a host's daemon, which reaches the
    registry), so all hosts run the same digest even if the tag moves mid-rollout.

    Asked without credentials first. Only a command about to pull (`auth` given) sends
    them, and only when the registry refuses an anonymous answer: a read-only command
    never hands the operator's credentials to a host's daemon."""
    wanted: dict[str, list[str]] = {}
    for host, images in images_by_host.items():
        if host in clients:
            for image in images:
                wanted.setdefault(image, []).append(host)
    digests: dict[str, str | None] = {}
    failures: dict[str, str] = {}

    async def resolve(image: str, hosts: list[str]) -> None:
        if "@" in image:
            digests[image] = image.partition("@")[2]
            return
        last_error = ""
        for host in hosts[:3]:
            try:
                digests[image] = await clients[host].distribution_inspect(image)
                return
            except HostError as exc:
                last_error = exc.reason
                credentials = auth.for_image(image) if auth is not None else None
                if not credentials or not _refused_for_credentials(exc):
                    continue
            try:
                digests[image] = await clients[host].distribution_inspect(
                    image, auth=credentials)
                return
            except HostError as exc:
                last_error = exc.reason
        digests[image] = None
        failures[image] = last_error

    await asyncio.gather(*(resolve(image, hosts) for image, hosts in sorted(wanted.items())))
    return digests, failures
