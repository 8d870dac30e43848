"""`fleet prune` on hosts: read what each has (images, containers and the image each was
made from), and remove what fleet.core.prune chose, one name at a time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fleet.core.answers import CONTAINER_LIST, IMAGE_LIST
from fleet.core.prune import HostPrune, local_images, prune_host
from fleet.engine.run import Observation, Run
from fleet.errors import DockerError, DockerNotFoundError


@dataclass
class PruneResult:
    removed: dict[str, list[str]] = field(default_factory=dict)  # host -> what went
    failed: dict[str, list[str]] = field(default_factory=dict)  # host -> what could not


async def read_prune(run: Run, observation: Observation, host: str, keep: int) -> HostPrune:
    docker = run.docker(host)
    images, containers = await asyncio.gather(docker.list_images(),
                                              docker.list_containers(all=True))
    image_of = {c.Id: c.ImageID for c in CONTAINER_LIST.validate_python(containers)
                if c.ImageID}
    state = run.state
    return prune_host(host, state.project, run.journals.get(host, []),
                      local_images(IMAGE_LIST.validate_python(images)),
                      observation.snapshots[host].containers, image_of,
                      {c.name for c in state.containers.get(host, [])}, keep,
                      state.inactive_services)


async def carry_out(run: Run, prune: HostPrune, result: PruneResult) -> None:
    """Containers first (their images may go next); a name already gone is no failure, and
    a refusal (an image a container took meanwhile) fails that item only."""
    docker = run.docker(prune.host)
    removed = result.removed.setdefault(prune.host, [])
    failed = result.failed.setdefault(prune.host, [])
    for container in prune.containers:
        try:
            await docker.remove_container(container.id)
            removed.append(container.what())
        except DockerNotFoundError:
            pass
        except DockerError as exc:
            failed.append(f"{container.name}: {exc}")
    for image in prune.images:
        try:
            await docker.remove_image(image.reference)
            removed.append(image.what())
        except DockerNotFoundError:
            pass
        except DockerError as exc:
            failed.append(f"{image.reference}: {exc}")
