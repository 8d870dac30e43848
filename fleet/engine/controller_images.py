"""The images a run delivers from the controller (`image_source: controller` or an archive):
read once per run, before any host is asked anything about them.

Their IDs are what the plan pins containers to (so `check` and `plan` read only the image's
index: an archive's manifest and config, or the controller daemon's inspect); the layers are
read when a host needs some. An image of the controller's Docker daemon is exported
(`docker save`, through the Docker SDK) once per image ID into a cache directory and then
served from there like an archive.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fleet.core.desired import BuildSpec, DesiredState, ImageOrigin
from fleet.engine.delivery import Delivery, VerifiedLayers
from fleet.errors import FleetError
from fleet.images.archive import ArchiveError, ArchiveImage, read_archive


class ControllerImageError(FleetError):
    pass


def cache_dir() -> Path:
    """Where images exported from the controller's daemon are kept, by image ID."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleet" / "images"


def delivered_images(state: DesiredState) -> dict[str, ImageOrigin]:
    """Image reference (as configured) -> where it comes from, for the delivered services
    (an image's reference may be a template: every host's rendering counts)."""
    wanted: dict[str, ImageOrigin] = {}
    for containers in state.containers.values():
        for container in containers:
            placement = state.services.get(container.service)
            if placement is not None and placement.image_source.delivered:
                wanted[str(container.options["image"])] = placement.image_source
    if wanted and state.seeds is not None:  # the seeds' registry comes from the controller
        wanted.setdefault(state.seeds.image, ImageOrigin("controller"))
    return wanted


class ControllerImages:
    """The run's delivered images: `resolve` reads their IDs; `archive` their layers."""

    def __init__(self, wanted: Mapping[str, ImageOrigin]) -> None:
        self.wanted = dict(wanted)
        self.verified = VerifiedLayers()
        self.deliveries: dict[str, list[Delivery]] = {}  # host -> what it was sent
        self._ids: dict[str, str] = {}  # reference -> image ID
        self._archives: dict[str, ArchiveImage] = {}  # image ID -> its archive
        self._exports: dict[str, asyncio.Lock] = {}
        self._sending: dict[tuple[str, str], asyncio.Lock] = {}  # (host, image ID)

    def sending(self, host: str, image_id: str) -> asyncio.Lock:
        """Held while `image_id` is sent to `host`: one upload of it there at a time."""
        return self._sending.setdefault((host, image_id), asyncio.Lock())

    def image_id(self, reference: str) -> str | None:
        """The ID `resolve` read for `reference`."""
        return self._ids.get(reference)

    async def resolve(self) -> dict[str, str]:
        """Reference -> image ID for every wanted image; ControllerImageError (naming the
        image and the file or the daemon) if any can't be read."""
        for reference, origin in sorted(self.wanted.items()):
            if reference in self._ids:
                continue
            if origin.kind == "archive":
                image = await asyncio.to_thread(self._read, Path(origin.archive), reference)
                self._archives[image.image_id] = image
                self._ids[reference] = image.image_id
            elif origin.build is not None:
                self._ids[reference] = await asyncio.to_thread(_build, reference, origin.build)
            else:
                self._ids[reference] = await asyncio.to_thread(_daemon_image_id, reference)
        return dict(self._ids)

    def _read(self, path: Path, reference: str | None) -> ArchiveImage:
        try:
            return read_archive(path, reference)
        except ArchiveError as exc:
            raise ControllerImageError(f"image {reference or path.stem}: {exc}") from None

    async def archive(self, image_id: str) -> ArchiveImage:
        """The archive holding `image_id`, exported from the controller's daemon on first
        use (once, however many hosts ask at once)."""
        if image_id in self._archives:
            return self._archives[image_id]
        lock = self._exports.setdefault(image_id, asyncio.Lock())
        async with lock:
            if image_id not in self._archives:
                # None: an image of an earlier revision (a rollback), which fleet's cache or
                # the controller's daemon may still hold by its ID.
                reference = next((r for r, i in self._ids.items() if i == image_id), None)
                path = await asyncio.to_thread(_export, reference, image_id)
                image = await asyncio.to_thread(self._read, path, reference)
                if image.image_id != image_id:
                    raise ControllerImageError(f"image {image_id}: {path} holds "
                                               f"{image.image_id} instead")
                self._archives[image_id] = image
        return self._archives[image_id]

    def delivered(self, host: str, delivery: Delivery) -> None:
        self.deliveries.setdefault(host, []).append(delivery)


def _daemon() -> Any:
    import docker  # the Docker SDK, for the controller's own daemon (DOCKER_HOST honoured)

    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise ControllerImageError(f"cannot reach the controller's Docker daemon for "
                                   f"image_source: controller ({exc})") from None


def _daemon_image_id(reference: str) -> str:
    import docker

    try:
        image_id = str(_daemon().images.get(reference).id)
    except docker.errors.ImageNotFound:
        raise ControllerImageError(f"image {reference}: the controller's Docker daemon has "
                                   "no such image (build or pull it there first)") from None
    except docker.errors.DockerException as exc:
        raise ControllerImageError(f"image {reference}: the controller's Docker daemon: "
                                   f"{exc}") from None
    return image_id


BUILD_LOG_SHOWN = 12  # lines of a failed build's output quoted in its error


def _build(reference: str, build: BuildSpec) -> str:
    """Compose's `build` on the controller's daemon, tagged `reference`: its image ID. The
    daemon's cache makes a build of what did not change quick, so every run builds."""
    import docker

    if not Path(build.context).is_dir():
        raise ControllerImageError(f"image {reference}: the build context {build.context} is "
                                   "not a directory")
    try:
        image, _ = _daemon().images.build(
            path=build.context, dockerfile=build.dockerfile, tag=reference,
            buildargs=dict(build.args) or None, target=build.target, rm=True, forcerm=True)
    except docker.errors.BuildError as exc:
        said = [str(entry.get("stream") or entry.get("error") or "").rstrip()
                for entry in exc.build_log if isinstance(entry, dict)]
        tail = " | ".join(line for line in said if line)[-2000:]
        raise ControllerImageError(f"image {reference}: the build failed on the controller: "
                                   f"{exc.msg}" + (f" ({tail})" if tail else "")) from None
    except (docker.errors.DockerException, OSError) as exc:
        raise ControllerImageError(f"image {reference}: building it on the controller "
                                   f"failed: {exc}") from None
    return str(image.id)


def _export(reference: str | None, image_id: str) -> Path:
    """`docker save` of the image into the cache (kept by image ID: an ID names its bytes)."""
    import docker

    directory = cache_dir()
    path = directory / f"{image_id.removeprefix('sha256:')}.tar"
    if path.exists():
        return path
    named_as = reference or image_id
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".partial", delete=False) as out:
        try:
            image = _daemon().images.get(image_id)
            # The tag the daemon lists for `reference` (a bare name is its :latest), so the
            # archive names it; an image found by ID alone is saved unnamed.
            tagged = next((t for t in image.tags if t in (reference, f"{reference}:latest")),
                          False) if reference else False
            for chunk in image.save(named=tagged):
                out.write(chunk)
        except docker.errors.ImageNotFound:
            os.unlink(out.name)
            raise ControllerImageError(
                f"image {named_as}: neither fleet's cache ({directory}) nor the controller's "
                "Docker daemon holds it any more") from None
        except docker.errors.DockerException as exc:
            os.unlink(out.name)
            raise ControllerImageError(f"image {named_as}: exporting it from the "
                                       f"controller's Docker daemon failed: {exc}") from None
    os.replace(out.name, path)
    return path


def references(images: Iterable[str], wanted: Mapping[str, ImageOrigin]) -> set[str]:
    """Of `images`, those a registry resolves (not delivered from the controller)."""
    return {image for image in images if image not in wanted}
