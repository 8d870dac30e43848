"""Delivering an image from the controller to one host: only the layers it lacks, over its
SSH connection, into its daemon's `POST /images/load` (issue 12; see fleet.images).

The host's layers are learned from its images (`GET /images/json`, then each image's RootFS),
the upload carries the layers above the first chain the host lacks, and afterwards the image
must be on the host under the image ID the controller computed from the config: dockerd
checks every loaded layer against the config's diff IDs, so a layer damaged on the way is
refused there, and nothing of a failed load is left named on the host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fleet.core.layers import first_missing_layer, host_chains
from fleet.docker.client import DockerClient
from fleet.errors import DockerError, DockerNotFoundError
from fleet.images.archive import ArchiveImage, verify_layers
from fleet.images.upload import upload_size, upload_stream

MAX_HOST_IMAGES = 2000  # images whose layers are read to learn what a host has


@dataclass(frozen=True)
class Delivery:
    image_id: str
    layers_sent: int
    layers_total: int
    bytes_sent: int  # the upload as it went over the host's connection (tar framing included)
    seed: str = ""  # the seed host it was pulled from instead (fleet.engine.seeding)


class VerifiedLayers:
    """Which layers of which archives this run has hashed already: each is checked once
    before the first host receives it, however many hosts do."""

    def __init__(self) -> None:
        self._from: dict[str, int] = {}  # image ID -> lowest layer index verified upward
        self._lock = asyncio.Lock()

    async def ensure(self, image: ArchiveImage, first: int) -> None:
        async with self._lock:
            done = self._from.get(image.image_id, len(image.layers))
            if first < done:
                await asyncio.to_thread(verify_layers, image, first)
                self._from[image.image_id] = first


async def host_layer_chains(docker: DockerClient) -> frozenset[str]:
    """Every layer chain the host's images are made of."""
    images = (await docker.list_images())[:MAX_HOST_IMAGES]
    slots = asyncio.Semaphore(docker.channels)

    async def layers_of(image_id: str) -> list[str]:
        async with slots:
            try:
                answer = await docker.inspect_image(image_id)
            except DockerNotFoundError:  # removed since the list
                return []
        return list((answer.get("RootFS") or {}).get("Layers") or [])

    ids = [str(summary.get("Id") or "") for summary in images]
    return host_chains(await asyncio.gather(*(layers_of(i) for i in ids if i)))


async def deliver_image(docker: DockerClient, image: ArchiveImage, *,
                        tags: tuple[str, ...] = (), verified: VerifiedLayers | None = None,
                        progress: Callable[[int, int], None] = lambda sent, total: None
                        ) -> Delivery:
    """Make `image` present on the host; `progress(sent, total)` follows the upload."""
    try:
        await docker.inspect_image(image.image_id)
        present = True
    except DockerNotFoundError:
        present = False
    if present and not tags:
        return Delivery(image.image_id, 0, len(image.layers), 0)
    first = len(image.layers) if present else first_missing_layer(
        image.diff_ids, await host_layer_chains(docker))
    await (verified or VerifiedLayers()).ensure(image, first)
    total = upload_size(image, first, tags)
    sent = 0

    def count(n: int) -> None:
        nonlocal sent
        sent += n
        progress(sent, total)

    await docker.load_image(upload_stream(image, first, tags=tags, sent=count))
    answer = await docker.inspect_image(image.image_id)
    if answer.get("Id") != image.image_id:
        raise DockerError(docker.host, f"the loaded image is {answer.get('Id')}, not "
                                       f"{image.image_id}")
    return Delivery(image.image_id, len({layer.diff_id for layer in image.layers[first:]}),
                    len(image.layers), sent)
