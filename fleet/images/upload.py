"""The upload a host's `POST /images/load` takes: a docker-archive holding only the layers the
host lacks (fleet.core.layers), streamed from the archive on the controller.

dockerd's loader (moby's tarexport) walks the image's layers bottom first and opens a layer's
file only when it lacks that layer's chain, so the archive lists every layer in its
manifest.json but carries the files of the missing ones alone. The host then checks each
layer it loads against the diff ID in the config, and names the image after the config's
sha256: what arrives is what the controller verified.
"""

from __future__ import annotations

import asyncio
import json
import tarfile
from collections.abc import AsyncIterator, Callable, Iterator

from fleet.images.archive import READ_SIZE, ArchiveError, ArchiveImage, ArchiveLayer

BLOCK = tarfile.BLOCKSIZE  # 512


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def layer_file(diff_id: str) -> str:
    return f"{diff_id.removeprefix('sha256:')}/layer.tar"


def upload_index(image: ArchiveImage, tags: tuple[str, ...]) -> bytes:
    config_name = f"{image.image_id.removeprefix('sha256:')}.json"
    return json.dumps([{"Config": config_name, "RepoTags": list(tags),
                        "Layers": [layer_file(d) for d in image.diff_ids]}]).encode()


def upload_size(image: ArchiveImage, first_missing: int, tags: tuple[str, ...]) -> int:
    """The bytes the upload will carry (its tar headers and padding included)."""
    total = 0
    for size in _sizes(image, first_missing, tags):
        total += BLOCK + size + (-size % BLOCK)
    return total + 2 * BLOCK


def _sizes(image: ArchiveImage, first_missing: int, tags: tuple[str, ...]) -> Iterator[int]:
    yield len(upload_index(image, tags))
    yield len(image.config)
    for layer in _missing(image, first_missing):
        yield layer.size


def _missing(image: ArchiveImage, first_missing: int) -> list[ArchiveLayer]:
    seen: set[str] = set()
    layers = []
    for layer in image.layers[first_missing:]:
        if layer.diff_id not in seen:  # an image may repeat a layer (empty ones): one file
            seen.add(layer.diff_id)
            layers.append(layer)
    return layers


async def upload_stream(image: ArchiveImage, first_missing: int, *,
                        tags: tuple[str, ...] = (),
                        sent: Callable[[int], None] = lambda n: None) -> AsyncIterator[bytes]:
    """The docker-archive to load, chunk by chunk; `sent` is told each chunk's size. Layer
    files are read in a worker thread, a chunk at a time, so many uploads share the loop."""
    index = upload_index(image, tags)
    config_name = f"{image.image_id.removeprefix('sha256:')}.json"
    for name, data in (("manifest.json", index), (config_name, image.config)):
        chunk = _header(name, len(data)) + data + _padding(len(data))
        sent(len(chunk))
        yield chunk
    with tarfile.open(image.path, "r:") as tar:
        for layer in _missing(image, first_missing):
            handle = tar.extractfile(layer.member)
            assert handle is not None
            header = _header(layer_file(layer.diff_id), layer.size)
            sent(len(header))
            yield header
            remaining = layer.size
            while remaining:
                chunk = await asyncio.to_thread(handle.read, min(READ_SIZE, remaining))
                if not chunk:
                    raise ArchiveError(image.path, f"{layer.member} ended early (the file "
                                                   "changed since it was checked?)")
                remaining -= len(chunk)
                sent(len(chunk))
                yield chunk
            pad = _padding(layer.size)
            if pad:
                sent(len(pad))
                yield pad
    end = b"\0" * (2 * BLOCK)
    sent(len(end))
    yield end
