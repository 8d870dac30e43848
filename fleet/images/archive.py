"""Images on the controller as docker-archive files: what `docker save` writes, and what
`fleet` delivers from (issue 12).

A docker-archive is a tar holding `manifest.json` (per image: its config file, its RepoTags
and its layer files, bottom first), the image config (whose sha256 is the image ID) and one
uncompressed tar per layer (whose sha256 is the layer's diff ID, listed in the config).
Docker before 25 names them `<id>.json` and `<hex>/layer.tar`; Docker 25 and later write
them as OCI blobs (`blobs/sha256/<hex>`) and keep `manifest.json`, so both read the same.

The archive is untrusted input like a playbook: its index is read within bounds, every name
it uses must be a member, and a layer is sent only after its bytes hash to the diff ID the
config names (a corrupt or truncated archive is refused before any host sees it).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.core.layers import DIGEST
from fleet.errors import FleetError

MAX_INDEX = 1024 * 1024  # manifest.json
MAX_CONFIG = 4 * 1024 * 1024  # an image config
MAX_LAYERS = 256
MAX_MEMBERS = 100_000
READ_SIZE = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


class ArchiveError(FleetError):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class ArchiveLayer:
    diff_id: str
    member: str  # its file inside the archive
    size: int  # bytes of that file (compressed, if the archive compressed it)


@dataclass(frozen=True)
class ArchiveImage:
    path: Path
    image_id: str  # sha256 of the config: what dockerd names the image after loading it
    config: bytes
    layers: tuple[ArchiveLayer, ...]
    repo_tags: tuple[str, ...]

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int, what: str,
                  path: Path) -> bytes:
    if not member.isfile():
        raise ArchiveError(path, f"{what} ({member.name}) is not a regular file")
    if member.size > limit:
        raise ArchiveError(path, f"{what} ({member.name}) is {member.size} bytes, more than "
                                 f"{limit}")
    handle = tar.extractfile(member)
    assert handle is not None  # a regular file
    return handle.read(limit + 1)


def _json(data: bytes, what: str, path: Path) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(path, f"{what} is not JSON ({exc})") from None


def _choose(entries: list[Any], reference: str | None, path: Path) -> dict[str, Any]:
    usable = [e for e in entries if isinstance(e, dict)]
    if reference is not None:
        named = [e for e in usable if reference in (e.get("RepoTags") or [])]
        if named:
            return named[0]
        if len(usable) != 1:
            raise ArchiveError(path, f"holds no image tagged {reference}")
    if len(usable) != 1:
        raise ArchiveError(path, f"holds {len(usable)} images; name one by its tag")
    return usable[0]


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except FileNotFoundError:
        raise ArchiveError(path, "no such file") from None
    except IsADirectoryError:
        raise ArchiveError(path, "a directory, not a docker-archive file") from None
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(path, f"not a readable tar archive ({exc})") from None


def read_archive(path: Path, reference: str | None = None) -> ArchiveImage:
    """The image tagged `reference` in the archive at `path` (or its only image), its index
    checked: the layers' bytes are checked by verify_layers, before they are sent."""
    with _open(path) as tar:
        try:
            members = {}
            for count, member in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise ArchiveError(path, f"more than {MAX_MEMBERS} members")
                members[member.name.removeprefix("./")] = member
        except tarfile.TarError as exc:
            raise ArchiveError(path, f"a damaged or truncated tar archive ({exc})") from None
        if "manifest.json" not in members:
            raise ArchiveError(path, "no manifest.json: not a docker-archive (`docker save`)")
        index = _json(_member_bytes(tar, members["manifest.json"], MAX_INDEX, "manifest.json",
                                    path), "manifest.json", path)
        if not isinstance(index, list):
            raise ArchiveError(path, "manifest.json is not a list of images")
        entry = _choose(index, reference, path)
        config_name, layer_names = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_name, str) or config_name not in members:
            raise ArchiveError(path, f"the image's config {str(config_name)[:100]!r} is not "
                                     "in the archive")
        config = _member_bytes(tar, members[config_name], MAX_CONFIG, "the image config", path)
        parsed = _json(config, "the image config", path)
        rootfs = parsed.get("rootfs") if isinstance(parsed, dict) else None
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(
                isinstance(d, str) and DIGEST.fullmatch(d) for d in diff_ids):
            raise ArchiveError(path, "the image config has no list of sha256 rootfs.diff_ids")
        if not isinstance(layer_names, list) or len(layer_names) != len(diff_ids):
            raise ArchiveError(path, "manifest.json's Layers do not match the config's "
                                     "rootfs.diff_ids")
        if len(diff_ids) > MAX_LAYERS:
            raise ArchiveError(path, f"{len(diff_ids)} layers, more than {MAX_LAYERS}")
        layers = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            found = members.get(name) if isinstance(name, str) else None
            if found is None or not found.isfile():
                raise ArchiveError(path, f"layer {str(name)[:100]!r} is not in the archive")
            layers.append(ArchiveLayer(diff_id, found.name, found.size))
        tags = tuple(t for t in entry.get("RepoTags") or [] if isinstance(t, str))
    return ArchiveImage(path, "sha256:" + hashlib.sha256(config).hexdigest(), config,
                        tuple(layers), tags)


def verify_layers(image: ArchiveImage, first: int = 0) -> None:
    """Check the bytes of every layer from `first` up against its diff ID (decompressing a
    gzip-compressed one, as dockerd would): ArchiveError names the first that differs."""
    try:
        with tarfile.open(image.path, "r:") as tar:
            for number, layer in enumerate(image.layers[first:], start=first + 1):
                got = _layer_digest(tar, layer)
                if got != layer.diff_id:
                    raise ArchiveError(image.path, f"layer {number} ({layer.member}) is "
                                                   f"corrupt: its content hashes to {got}, the "
                                                   f"image config says {layer.diff_id}")
    except (OSError, tarfile.TarError, zlib.error) as exc:
        raise ArchiveError(image.path, f"cannot read its layers ({exc})") from None


def _layer_digest(tar: tarfile.TarFile, layer: ArchiveLayer) -> str:
    handle = tar.extractfile(layer.member)
    assert handle is not None
    digest = hashlib.sha256()
    first = handle.read(READ_SIZE)
    inflate = zlib.decompressobj(wbits=31) if first.startswith(GZIP_MAGIC) else None
    chunk = first
    while chunk:
        if inflate is None:
            digest.update(chunk)
        while inflate is not None and chunk:  # a bounded piece at a time: never a bomb whole
            digest.update(inflate.decompress(chunk, READ_SIZE))
            chunk = inflate.unconsumed_tail
        chunk = handle.read(READ_SIZE)
    if inflate is not None:
        digest.update(inflate.flush())
    return "sha256:" + digest.hexdigest()
