"""Demo images built from the local static busybox, pushed to the lab registry without network.

Layers are written byte-for-byte reproducibly, so an image's config digest is stable and a
second `fleet lab up` sees that the registry already holds it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import platform
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fleet.errors import LabError
from fleet.lab.system import BUSYBOX, run

EPOCH = 1704067200  # 2024-01-01: fixed timestamps make identical bytes on every build
CREATED = "2024-01-01T00:00:00Z"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True)
class ImageSpec:
    repository: str  # demo/web
    tag: str  # v1
    kind: str  # "web" or "worker"
    healthy: bool = True


DEMO_IMAGES = (
    ImageSpec("demo/web", "v1", "web"),
    ImageSpec("demo/web", "v2", "web"),
    ImageSpec("demo/web", "v3", "web", healthy=False),  # a broken release: /health fails
    ImageSpec("demo/worker", "v1", "worker"),
)


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)


@dataclass(frozen=True)
class BuiltImage:
    spec: ImageSpec
    config: Blob
    raw_layers: tuple[bytes, ...]  # uncompressed tars; compressed only when pushed

    @property
    def layers(self) -> tuple[Blob, ...]:
        return tuple(Blob(_gzip(layer), LAYER_TYPE) for layer in self.raw_layers)

    def manifest(self) -> bytes:
        def descriptor(blob: Blob) -> dict[str, object]:
            return {"mediaType": blob.media_type, "size": len(blob.data), "digest": blob.digest}

        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(self.config),
            "layers": [descriptor(layer) for layer in self.layers],
        }
        return json.dumps(manifest, indent=2).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(entries: list[tuple[str, bytes | str | None, int]]) -> bytes:
    """A reproducible tar: (path, file bytes | symlink target str | None for a dir, mode)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for path, content, mode in entries:
            info = tarfile.TarInfo(path)
            info.mtime, info.mode, info.uname, info.gname = EPOCH, mode, "root", "root"
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@cache
def base_layer() -> bytes:
    """busybox with a link per applet, and the few files a shell expects."""
    applets = sorted(set(run([str(BUSYBOX), "--list"]).stdout.split()) - {"busybox"})
    entries: list[tuple[str, bytes | str | None, int]] = [
        ("bin", None, 0o755),
        ("bin/busybox", BUSYBOX.read_bytes(), 0o755),
        *((f"bin/{applet}", "busybox", 0o777) for applet in applets),
        ("etc", None, 0o755),
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        ("etc/group", b"root:x:0:\n", 0o644),
        ("root", None, 0o700),
        ("tmp", None, 0o1777),
    ]
    return _tar(entries)


def _asset(name: str) -> bytes:
    return resources.files("fleet.lab").joinpath("assets", name).read_bytes()


def app_layer(spec: ImageSpec) -> bytes:
    entries: list[tuple[str, bytes | str | None, int]] = [
        ("entrypoint.sh", _asset(f"{spec.kind}-entrypoint.sh"), 0o755),
    ]
    if spec.kind == "web":
        entries += [("www", None, 0o755), ("www/index.html", spec.tag.encode(), 0o644)]
        if spec.healthy:
            entries.append(("www/health", b"ok\n", 0o644))
        # A request that takes its time (`/cgi-bin/slow?SECONDS`): one in flight across a swap.
        entries += [("www/cgi-bin", None, 0o755),
                    ("www/cgi-bin/slow", _asset("slow.cgi"), 0o755)]
    return _tar(entries)


REGISTRY_BINARY = Path("/usr/bin/docker-registry")  # Debian's docker-registry (Distribution)
SEED_REGISTRY = ImageSpec("lab/registry", "2.8", "registry")  # what seeds run in the lab


def registry_layer() -> bytes:
    """Debian's Distribution binary as /bin/registry, with the shared libraries it links:
    the lab's stand-in for registry:2 (the lab has no network to pull that)."""
    libraries = re.findall(r"(/\S+) \(0x", run(["ldd", str(REGISTRY_BINARY)]).stdout)
    entries: list[tuple[str, bytes | str | None, int]] = [
        ("bin/registry", REGISTRY_BINARY.read_bytes(), 0o755),
        *((path.lstrip("/"), Path(path).read_bytes(), 0o755) for path in sorted(set(libraries))),
        ("var/lib/registry", None, 0o755),
    ]
    return _tar(entries)


CADDY_ROOT = Path("/var/cache/fleet-lab/caddy")  # Debian's caddy, unpacked by bootstrap.sh
CADDY_BINARY = CADDY_ROOT / "usr/bin/caddy"
# The lab's proxy (fleet.core.proxy): Debian's Caddy on busybox, as the official image is
# Caddy on Alpine (both have the `sh` the proxy's entrypoint runs).
PROXY_IMAGE = ImageSpec("lab/caddy", "2.6", "caddy")


def caddy_layer() -> bytes:
    """Debian's caddy as /usr/bin/caddy, with the shared libraries it links."""
    if not CADDY_BINARY.is_file():
        raise LabError(f"{CADDY_BINARY} is missing: run scripts/bootstrap.sh (it unpacks "
                       "Debian's caddy package for the lab's proxy image)")
    libraries = re.findall(r"(/\S+) \(0x", run(["ldd", str(CADDY_BINARY)]).stdout)
    entries: list[tuple[str, bytes | str | None, int]] = [
        ("usr", None, 0o755), ("usr/bin", None, 0o755),
        ("usr/bin/caddy", CADDY_BINARY.read_bytes(), 0o755),
        *((path.lstrip("/"), Path(path).read_bytes(), 0o755) for path in sorted(set(libraries))),
    ]
    return _tar(entries)


def _architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def image_config(spec: ImageSpec, diff_ids: list[str]) -> bytes:
    """The config of `spec`'s image: busybox, its app layer, then any layers beyond."""
    labels = {
        "org.opencontainers.image.title": spec.repository,
        "org.opencontainers.image.version": spec.tag,
    }
    if not spec.healthy:  # the Engine API simulator's cue: it runs no health check
        labels["org.fleet.lab.health"] = "fail"
    container: dict[str, object] = {
        "Entrypoint": ["/bin/sh", "/entrypoint.sh"],
        "Env": ["PATH=/bin", f"APP_VERSION={spec.tag}"],
        "WorkingDir": "/",
        "Labels": labels,
    }
    if spec.kind == "web":
        container["ExposedPorts"] = {"8080/tcp": {}}
    if spec.kind == "caddy":  # as caddy:2 takes it
        container["Entrypoint"] = ["caddy"]
        container["Cmd"] = ["run"]
        container["Env"] = ["PATH=/bin:/usr/bin"]
    if spec.kind == "registry":  # as registry:2 takes it: `CMD` names the config file
        container["Entrypoint"] = ["/bin/registry", "serve"]
        container["Cmd"] = ["/etc/docker/registry/config.yml"]
        container["Env"] = ["PATH=/bin"]
    config = {
        "architecture": _architecture(),
        "os": "linux",
        "created": CREATED,
        "config": container,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": CREATED, "created_by": "fleet lab: busybox"},
            {"created": CREATED, "created_by": f"fleet lab: {spec.repository}:{spec.tag}"},
            *({"created": CREATED, "created_by": f"fleet lab: layer {n}"}
              for n in range(3, len(diff_ids) + 1)),
        ],
    }
    return json.dumps(config, indent=2, sort_keys=True).encode()


def build_image(spec: ImageSpec) -> BuiltImage:
    layers = [base_layer(), caddy_layer() if spec.kind == "caddy" else app_layer(spec)]
    config = image_config(spec, [sha256_digest(layer) for layer in layers])
    return BuiltImage(
        spec=spec,
        config=Blob(config, CONFIG_TYPE),
        raw_layers=tuple(layers),
    )


def file_layer(files: Mapping[str, bytes]) -> bytes:
    """A reproducible layer holding `files` (path -> bytes)."""
    return _tar([(path, data, 0o644) for path, data in sorted(files.items())])


def write_docker_archive(path: Path, spec: ImageSpec, tag: str,
                         layers: Sequence[bytes]) -> str:
    """An image of `layers` (bottom first; `[base_layer(), app_layer(spec), ...]` for one
    that runs) configured as `spec`'s, as the docker-archive `docker save` writes (Docker <
    25 names), tagged `tag`: an image that exists only on the controller. Returns its ID."""
    diff_ids = [sha256_digest(layer) for layer in layers]
    config = image_config(spec, diff_ids)
    config_name = sha256_digest(config).removeprefix("sha256:") + ".json"
    names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids]
    index = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in [*zip(names, layers, strict=True), (config_name, config),
                           ("manifest.json", index)]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            archive.addfile(info, io.BytesIO(data))
    return sha256_digest(config)


@cache
def _gzip(layer: bytes) -> bytes:
    return gzip.compress(layer, mtime=0)  # mtime 0: the same bytes on every build


class RegistryClient:
    """The few calls of the registry HTTP API needed to push an image (plain HTTP, no proxy)."""

    def __init__(self, address: str) -> None:
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except OSError as exc:
            raise LabError(f"registry {self.host}:{self.port}: {exc}") from exc
        finally:
            connection.close()

    def current_config_digest(self, repository: str, tag: str) -> str | None:
        status, _, body = self.request(
            "GET", f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPE}
        )
        if status != 200:
            return None
        digest = json.loads(body).get("config", {}).get("digest")
        return digest if isinstance(digest, str) else None

    def push_blob(self, repository: str, blob: Blob) -> None:
        status, _, _ = self.request("HEAD", f"/v2/{repository}/blobs/{blob.digest}")
        if status == 200:
            return
        status, headers, body = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        location = urlsplit(headers.get("Location", ""))
        if status != 202 or not location.path:
            raise LabError(f"registry refused an upload to {repository}: {status} {body[:200]!r}")
        query = f"{location.query}&" if location.query else ""
        status, _, body = self.request(
            "PUT",
            f"{location.path}?{query}digest={blob.digest}",
            body=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if status != 201:
            raise LabError(f"registry refused blob {blob.digest}: {status} {body[:200]!r}")

    def push_manifest(self, repository: str, tag: str, manifest: bytes) -> None:
        status, _, body = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            body=manifest,
            headers={"Content-Type": MANIFEST_TYPE},
        )
        if status != 201:
            raise LabError(f"registry refused {repository}:{tag}: {status} {body[:200]!r}")


def seed_image(registry: str, spec: ImageSpec) -> bool:
    """Push one demo image unless the registry already holds this exact build. True if pushed."""
    image = build_image(spec)
    client = RegistryClient(registry)
    if client.current_config_digest(spec.repository, spec.tag) == image.config.digest:
        return False
    for blob in (*image.layers, image.config):  # blobs before the manifest that names them
        client.push_blob(spec.repository, blob)
    client.push_manifest(spec.repository, spec.tag, image.manifest())
    return True
