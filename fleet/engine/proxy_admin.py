"""The per-host proxy's admin API (Caddy's), over the host's SSH connection.

Each Caddy container of the project listens on its own unix socket in the project's data
directory on the host (fleet.core.proxy); a channel to it is a direct-streamlocal channel on
the host's one SSH connection, like the Docker socket's. Every answer is bounded and
validated; a change is one request, which Caddy applies as a graceful reload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import asyncssh

from fleet.core.observed import ObservedContainer
from fleet.core.proxy import (
    MAX_CONFIG_BYTES,
    PROXY_SERVICE,
    LiveProxy,
    ProxyAnswerError,
    admin_socket,
    live_proxy,
)
from fleet.core.untrusted import parse_json
from fleet.errors import HostError
from fleet.transport.http import HTTPPool, Request, TransportError
from fleet.transport.http_over_ssh import DockerSocketOpener

REQUEST_TIMEOUT = 15.0  # seconds for one admin request (a load reloads the whole config)
STARTUP_WAIT = 10.0  # how long a Caddy just started may take to open its admin socket
MAX_UPSTREAMS_BYTES = 256 * 1024


class ProxyError(HostError):
    """The host's proxy refused a change (`status`: its answer's), or could not be reached
    (`status` 0)."""

    def __init__(self, host: str, reason: str, status: int = 0) -> None:
        super().__init__(host, reason)
        self.status = status


def running_proxies(containers: Sequence[ObservedContainer],
                    project: str) -> list[ObservedContainer]:
    """The project's Caddy containers that run on the host, newest revision first."""
    found = [c for c in containers if c.project == project and c.service == PROXY_SERVICE
             and c.state == "running" and c.revision > 0]
    return sorted(found, key=lambda c: c.revision, reverse=True)


class ProxyAdmin:
    """The admin APIs of a host's proxies (`data_root`: the project's data directory there,
    absolute)."""

    def __init__(self, host: str, ssh: asyncssh.SSHClientConnection, data_root: str) -> None:
        self.host = host
        self._ssh = ssh
        self._data_root = data_root
        self._pools: dict[int, HTTPPool] = {}

    def _pool(self, revision: int) -> HTTPPool:
        if revision not in self._pools:
            # Caddy checks the Host header of admin requests; on a unix socket it allows
            # only an empty one.
            self._pools[revision] = HTTPPool(
                DockerSocketOpener(self._ssh, admin_socket(self._data_root, revision)),
                max_connections=2, host="")
        return self._pools[revision]

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()

    async def _request(self, revision: int, method: str, path: str, body: Any = None,
                       limit: int = MAX_CONFIG_BYTES) -> bytes:
        what = f"proxy r{revision}: {method} {path}"
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))] \
            if body is not None else []
        # Caddy restarts its admin server when its config changes, closing the kept-alive
        # connections previous requests left: a request that finds one closed is sent again
        # (each of the pool's two idle connections may be stale; the third try is on a new
        # one), and every admin request fleet makes is idempotent.
        for attempt in (1, 2, 3):
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    response = await self._pool(revision).send(
                        Request(method, path, headers=headers, body=data))
                    try:
                        answer = await response.aread(limit)
                    finally:
                        await response.aclose()
                break
            except TimeoutError:
                raise ProxyError(self.host, f"{what}: no answer within "
                                            f"{REQUEST_TIMEOUT:g}s") from None
            except TransportError as exc:
                if attempt == 3:
                    raise ProxyError(self.host, f"{what}: {exc}") from None
        if response.status >= 300:
            said = " ".join(answer[:300].decode(errors="replace").split())
            raise ProxyError(self.host, f"{what}: {response.status} {said}", response.status)
        return answer

    async def config(self, revision: int) -> LiveProxy:
        data = await self._request(revision, "GET", "/config/")
        try:
            return live_proxy(data, revision)
        except ProxyAnswerError as exc:
            raise ProxyError(self.host, f"proxy r{revision}: {exc}") from None

    async def load(self, revision: int, config: dict[str, Any]) -> None:
        """The whole config, once the proxy (just started, maybe) answers."""
        deadline = asyncio.get_running_loop().time() + STARTUP_WAIT
        while True:
            try:
                await self._request(revision, "POST", "/load", config)
                return
            except ProxyError as exc:
                # A Caddy just started opens its socket within a second or so.
                if exc.status or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def upstreams(self, revision: int, route_id: str) -> list[str]:
        data = await self._request(revision, "GET", f"/id/{route_id}/handle/0/upstreams",
                                   limit=MAX_UPSTREAMS_BYTES)
        try:
            value = parse_json(data, max_bytes=MAX_UPSTREAMS_BYTES, max_depth=4)
        except ValueError as exc:
            raise ProxyError(self.host, f"proxy r{revision}: route {route_id}'s upstreams "
                                        f"are not usable: {exc}") from None
        if value is None:
            return []
        if not isinstance(value, list) or not all(
                isinstance(u, dict) and isinstance(u.get("dial"), str) for u in value):
            raise ProxyError(self.host, f"proxy r{revision}: route {route_id}'s upstreams "
                                        "have the wrong shape")
        return [u["dial"] for u in value]

    async def set_upstreams(self, revision: int, route_id: str, dials: Sequence[str]) -> None:
        await self._request(revision, "PATCH", f"/id/{route_id}/handle/0/upstreams",
                            [{"dial": dial} for dial in dials])


