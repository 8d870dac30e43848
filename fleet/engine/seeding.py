"""Region seeds (issue 12; the decisions are fleet.core.seeds): an image from the controller
crosses the controller's link once per group of hosts, to the group's seed, and the group's
other hosts pull it from a registry fleet runs on the seed for the run.

Why a registry, and which: each host's dockerd then fetches only the layers it lacks, checks
every blob by digest, and never runs a partial image, which is what a pull does; the seed's
registry is Distribution (`registry:2`, the reference implementation), taken from the
controller's Docker daemon like any delivered image. It listens with TLS on the seed's
address and accepts only clients that present the run's client certificate (made by a CA the
run generates: fleet.images.seed_tls), which dockerd reads from
/etc/docker/certs.d/SEED:PORT/. Writing there takes root on the hosts; where it fails, or
anything else about the seed does, the group's hosts are sent the image from the controller,
as without seeds. At the end of the run the registry container and every file written for
it are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from fleet.core.seeds import (
    SEED_MOUNT,
    SeedPolicy,
    registry_config,
    registry_host,
    seed_reference,
)
from fleet.docker.client import DockerClient
from fleet.docker.wire import split_image_reference
from fleet.engine.delivery import Delivery
from fleet.errors import DockerError, DockerNotFoundError, FleetError
from fleet.hoststate.seed_files import certs_dir, remove_files, seed_dir, write_files
from fleet.images.archive import ArchiveImage
from fleet.images.seed_tls import SeedAuthority
from fleet.transport.ssh import HostConnection

REGISTRY_CONTAINER = "fleet-seed-registry"
SEED_LABEL = "fleet.seed"  # on the registry container: what fleet may remove as its own
SEED_TAG = "seed"
PUSH_TRIES = 20  # the registry takes a moment to listen after its start
PUSH_RETRY_SECONDS = 0.5
TRUST_FILES = ("ca.crt", "client.cert", "client.key")
SEED_FILES = ("ca.crt", "server.crt", "server.key", "config.yml")

# Sends an image from the controller to a host: (host, image) -> what crossed the link.
DirectDelivery = Callable[[str, ArchiveImage], Awaitable[Delivery]]


class SeedError(FleetError):
    pass


@dataclass(frozen=True)
class SeedHost:
    name: str
    address: str  # how the group's daemons reach it (its inventory address)
    docker: DockerClient
    connection: HostConnection
    state_dir: str


class Seeding:
    """The run's seeds. `deliver` brings an image to a peer through its seed; `close` takes
    every seed's registry and file down."""

    def __init__(self, policy: SeedPolicy, through: dict[tuple[str, str], str],
                 hosts: Callable[[str], SeedHost], registry_image: str,
                 archive: Callable[[str], Awaitable[ArchiveImage]],
                 send: DirectDelivery) -> None:
        self.policy = policy
        self.through = through  # (host, image ID) -> its seed
        self._hosts = hosts
        self._registry_image = registry_image  # its ID on the controller
        self._archive = archive  # an image ID's archive on the controller
        self._send = send
        self._authority = SeedAuthority()
        self._registries: dict[str, asyncio.Task[str]] = {}  # seed -> its registry host
        self._published: dict[tuple[str, str], asyncio.Task[str]] = {}  # -> pull reference
        self._trusted: dict[tuple[str, str], asyncio.Task[None]] = {}  # (host, registry)
        self._started: set[str] = set()

    def seed_for(self, host: str, image_id: str) -> str | None:
        return self.through.get((host, image_id))

    async def deliver(self, host: str, image: ArchiveImage, tags: tuple[str, ...]
                      ) -> Delivery:
        """Pull `image` on `host` from its seed (SeedError, or a FleetError, if anything
        fails: the caller sends it from the controller instead)."""
        seed = self._hosts(self.through[(host, image.image_id)])
        reference = await _once(self._published, (seed.name, image.image_id),
                                lambda: self._publish(seed, image))
        peer = self._hosts(host)
        registry = registry_host(seed.address, self.policy.port)
        await _once(self._trusted, (host, registry), lambda: self._trust(peer, registry))
        await peer.docker.pull_image(reference)
        try:
            found = await peer.docker.inspect_image(image.image_id)
        except DockerNotFoundError:
            found = {}
        if found.get("Id") != image.image_id:
            raise SeedError(f"the pull from seed {seed.name} did not give image "
                            f"{image.image_id}")
        for tag in tags:
            await peer.docker.tag_image(image.image_id, *split_image_reference(tag))
        if tags:  # named as configured now: the seed's name goes (the image stays)
            with contextlib.suppress(DockerError):
                await peer.docker.remove_image(reference)
        return Delivery(image.image_id, 0, len(image.layers), 0, seed=seed.name)

    async def _publish(self, seed: SeedHost, image: ArchiveImage) -> str:
        """The image on the seed (from the controller: what it lacks), pushed into the seed's
        registry; the reference the group pulls it by."""
        await _once(self._registries, seed.name, lambda: self._start(seed))
        await self._send(seed.name, image)
        name = seed_reference(seed.address, self.policy.port, image.image_id)
        await seed.docker.tag_image(image.image_id, name, SEED_TAG)
        for attempt in range(PUSH_TRIES):
            try:
                digest = await seed.docker.push_image(name, SEED_TAG)
                break
            except DockerError:
                if attempt == PUSH_TRIES - 1:
                    raise
                await asyncio.sleep(PUSH_RETRY_SECONDS)
        with contextlib.suppress(DockerError):
            await seed.docker.remove_image(f"{name}:{SEED_TAG}")
        return f"{name}@{digest}"

    async def _trust(self, host: SeedHost, registry: str) -> None:
        authority = self._authority
        await write_files(host.connection, certs_dir(registry), {
            "ca.crt": authority.ca_certificate,
            "client.cert": authority.client.certificate,
            "client.key": authority.client.key})

    async def _start(self, seed: SeedHost) -> str:
        """The seed's registry, running: its image sent from the controller if the seed
        lacks it, its files written, a container of an earlier run replaced."""
        registry = registry_host(seed.address, self.policy.port)
        await _once(self._trusted, (seed.name, registry), lambda: self._trust(seed, registry))
        server = self._authority.server(seed.address)
        directory = await write_files(seed.connection, seed_dir(seed.state_dir, seed.name), {
            "ca.crt": self._authority.ca_certificate,
            "server.crt": server.certificate, "server.key": server.key,
            "config.yml": registry_config(self.policy.port).encode()}, mounted=True)
        await self._send(seed.name, await self._archive(self._registry_image))
        await _remove_registry(seed.docker)
        port = f"{self.policy.port}/tcp"
        self._started.add(seed.name)
        created = await seed.docker.create_container(REGISTRY_CONTAINER, {
            "Image": self._registry_image,
            "Cmd": [f"{SEED_MOUNT}/config.yml"],
            "Labels": {SEED_LABEL: "registry"},
            "ExposedPorts": {port: {}},
            "HostConfig": {"Binds": [f"{directory}:{SEED_MOUNT}:ro"],
                           "PortBindings": {port: [{"HostPort": str(self.policy.port)}]}}})
        await seed.docker.start_container(str(created.get("Id") or REGISTRY_CONTAINER))
        return registry

    async def close(self) -> list[tuple[str, str]]:
        """Every seed's registry and every file written for it, removed; what could not be,
        by host."""
        for task in [*self._registries.values(), *self._published.values(),
                     *self._trusted.values()]:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._registries.values(), *self._published.values(),
                             *self._trusted.values(), return_exceptions=True)
        problems: list[tuple[str, str]] = []

        async def attempt(host: str, what: str, work: Awaitable[None]) -> None:
            try:
                await work
            except (FleetError, OSError) as exc:
                problems.append((host, f"cannot {what}: {exc}"))

        jobs = [attempt(name, "remove the seed registry", self._stop(self._hosts(name)))
                for name in sorted(self._started)]
        jobs += [attempt(host, f"remove {certs_dir(registry)}",
                         remove_files(self._hosts(host).connection, certs_dir(registry),
                                      TRUST_FILES))
                 for host, registry in sorted(self._trusted)]
        await asyncio.gather(*jobs)
        return problems

    async def _stop(self, seed: SeedHost) -> None:
        await _remove_registry(seed.docker)
        await remove_files(seed.connection, seed_dir(seed.state_dir, seed.name), SEED_FILES)


async def _remove_registry(docker: DockerClient) -> None:
    """Remove the seed registry container, if one is there and is fleet's (its label)."""
    try:
        found = await docker.inspect_container(REGISTRY_CONTAINER)
    except DockerNotFoundError:
        return
    labels = (found.get("Config") or {}).get("Labels") or {}
    if labels.get(SEED_LABEL) != "registry":
        raise SeedError(f"a container named {REGISTRY_CONTAINER} is there and is not fleet's "
                        "seed registry")
    with contextlib.suppress(DockerNotFoundError):
        await docker.remove_container(REGISTRY_CONTAINER, force=True, volumes=True)


K = TypeVar("K")
T = TypeVar("T")


async def _once(tasks: dict[K, asyncio.Task[T]], key: K,
                make: Callable[[], Awaitable[T]]) -> T:
    """`make()` run once for `key`, however many callers ask at once; its failure is every
    caller's."""
    if key not in tasks:
        async def run() -> T:
            return await make()
        tasks[key] = asyncio.create_task(run())
    return await asyncio.shield(tasks[key])
