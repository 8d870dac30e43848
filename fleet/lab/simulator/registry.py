"""Image metadata from the lab registry, as a daemon's pull would learn it.

Only the lab's own registry is ever asked (plain HTTP on the lab bridge, no proxy); a reference
to any other registry fails as an unreachable one would, without a packet sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from typing import Any

from fleet.config.references import parse_image_reference
from fleet.lab.simulator.engine import EngineError
from fleet.transport.http import HTTPPool, Request, TransportError, tcp_opener

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
MAX_MANIFEST = 4 * 1024 * 1024
REQUEST_TIMEOUT = 30.0
KEPT_HEADERS = ("Content-Type", "Docker-Content-Digest")
MANIFEST_TTL = 1.0  # seconds a tag's answer is reused: many hosts pull it at once


class RegistryError(EngineError):
    """A pull or inspect that fails; `status` is the HTTP status the daemon would answer."""


@dataclass(frozen=True)
class ResolvedImage:
    repository: str  # "198.18.1.1:5000/demo/web"
    digest: str  # what the reference resolves to (a manifest list's own digest if it is one)
    media_type: str
    size: int
    image_id: str  # the config blob's digest, as `docker images --digests` shows the ID
    config: dict[str, Any]  # the image config blob (architecture, os, config, rootfs...)
    layers: int


def _architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class LabRegistry:
    """Resolves references against the one registry the lab runs, with a short cache."""

    def __init__(self, address: str) -> None:
        self.address = address
        # A plain socket to the address itself: no proxy variable can carry lab traffic off
        # the machine.
        host, _, port = address.rpartition(":")
        self._http = HTTPPool(tcp_opener(host, int(port)), max_connections=16,
                                    host=address)
        self._manifests: dict[tuple[str, str], tuple[float, asyncio.Future[ResolvedImage]]] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def resolve(self, name: str, reference: str) -> ResolvedImage:
        """`reference` is a tag or a digest. Concurrent asks for one image share one answer."""
        key = (name, reference)
        now = time.monotonic()
        cached = self._manifests.get(key)
        if cached is not None and (now - cached[0] < MANIFEST_TTL or not cached[1].done()):
            return await asyncio.shield(cached[1])
        future: asyncio.Future[ResolvedImage] = asyncio.get_running_loop().create_future()
        self._manifests[key] = (now, future)
        try:
            future.set_result(await self._resolve(name, reference))
        except Exception as exc:  # handed to every waiter, then re-raised
            future.set_exception(exc)
            self._manifests.pop(key, None)
        return await asyncio.shield(future)

    async def _resolve(self, name: str, reference: str) -> ResolvedImage:
        parsed = parse_image_reference(name)
        registry, path = parsed.registry, parsed.repository
        if registry != self.address:
            raise RegistryError(500, f'Get "https://{registry}/v2/": dial tcp: lookup '
                                     f"{registry}: no such host (simulated: only the lab "
                                     f"registry {self.address} is reachable)")
        body, media_type, digest = await self._manifest(name, path, reference)
        manifest = json.loads(body)
        if media_type in (DOCKER_LIST, OCI_INDEX):
            chosen = next((m for m in manifest.get("manifests") or []
                           if (m.get("platform") or {}).get("os") == "linux"
                           and (m.get("platform") or {}).get("architecture") == _architecture()),
                          None)
            if chosen is None:
                raise RegistryError(404, f"no matching manifest for linux/{_architecture()} "
                                         "in the manifest list entries")
            inner, _, _ = await self._manifest(name, path, str(chosen["digest"]))
            manifest = json.loads(inner)
        config_digest = str((manifest.get("config") or {}).get("digest", ""))
        config = await self._config(name, path, config_digest)
        return ResolvedImage(repository=name, digest=digest, media_type=media_type,
                             size=len(body), image_id=config_digest, config=config,
                             layers=len(manifest.get("layers") or []))

    async def _get(self, url: str, headers: dict[str, str] | None = None
                   ) -> tuple[int, dict[str, str], bytes]:
        """The status, the headers named below, and the body (at most MAX_MANIFEST bytes)."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                response = await self._http.send(Request("GET", url,
                                                         headers=(headers or {}).items()))
                try:
                    body = await response.aread(MAX_MANIFEST)
                finally:
                    await response.aclose()
        except (TransportError, TimeoutError) as exc:
            raise RegistryError(500, f'Get "http://{self.address}{url}": '
                                     f"{exc or 'no answer in time'}") from None
        kept = {name: response.headers.get(name, "") for name in KEPT_HEADERS
                if name in response.headers}
        return response.status, kept, body

    async def _manifest(self, name: str, path: str, reference: str) -> tuple[bytes, str, str]:
        status, headers, body = await self._get(f"/v2/{path}/manifests/{reference}",
                                                {"Accept": ACCEPT})
        if status == 404:
            raise RegistryError(404, f"manifest for {name}:{reference} not found: manifest "
                                     "unknown: manifest unknown")
        if status != 200:
            raise RegistryError(500, f"error from registry {self.address}: HTTP "
                                     f"{status} for {name}:{reference}")
        media_type = headers.get("Content-Type", DOCKER_MANIFEST).split(";")[0]
        digest = headers.get("Docker-Content-Digest") or \
            "sha256:" + hashlib.sha256(body).hexdigest()
        return body, media_type, digest

    async def _config(self, name: str, path: str, digest: str) -> dict[str, Any]:
        if digest not in self._configs:
            status, _, body = await self._get(f"/v2/{path}/blobs/{digest}")
            if status != 200:
                raise RegistryError(500, f"error pulling {name}: config blob {digest}: HTTP "
                                         f"{status}")
            config = json.loads(body)
            self._configs[digest] = config if isinstance(config, dict) else {}
        return self._configs[digest]
