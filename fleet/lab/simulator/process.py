"""The simulator process: one asyncio loop serving the Docker socket of every simulated host.

Its config file (JSON, written by `fleet lab up --simulated`) names the lab registry, the
latencies and each host's socket path. SIGHUP re-reads it: new hosts get a socket, removed ones
lose theirs, and a socket file that went away (a host rebuilt) is bound again; the state of a
host that stays is kept. SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
from pathlib import Path

from fleet.lab.simulator.config import read_config
from fleet.lab.simulator.engine import SimulatedEngine
from fleet.lab.simulator.http import HostServer, serve_connection
from fleet.lab.simulator.registry import LabRegistry


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


class Simulator:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.engines: dict[str, SimulatedEngine] = {}
        self.servers: dict[str, tuple[asyncio.Server, Path, int | None]] = {}
        self.registry: LabRegistry | None = None

    async def reload(self) -> None:
        config = read_config(self.config_path)
        if self.registry is None or self.registry.address != config.registry:
            if self.registry is not None:
                await self.registry.aclose()
            self.registry = LabRegistry(config.registry)
        for name in [n for n in self.servers if n not in config.hosts]:
            await self._close(name)
            self.engines.pop(name, None)
        for name, socket_path in config.hosts.items():
            engine = self.engines.get(name)
            if engine is None:
                engine = self.engines[name] = SimulatedEngine(name, config.latencies)
            engine.latencies = config.latencies
            bound = self.servers.get(name)
            if bound is not None and bound[1] == socket_path and \
                    _inode(socket_path) == bound[2]:
                continue
            if bound is not None:
                await self._close(name)
            await self._bind(name, socket_path, HostServer(engine, self.registry))
        print(f"serving {len(self.servers)} simulated hosts", flush=True)

    async def _bind(self, name: str, socket_path: Path, host: HostServer) -> None:
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        socket_path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(
            lambda r, w: serve_connection(host, r, w), path=str(socket_path), backlog=256)
        os.chmod(socket_path, 0o660)
        self.servers[name] = (server, socket_path, _inode(socket_path))

    async def _close(self, name: str) -> None:
        server, socket_path, inode = self.servers.pop(name)
        server.close()
        if _inode(socket_path) == inode:
            socket_path.unlink(missing_ok=True)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        reloads: asyncio.Queue[None] = asyncio.Queue()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)
        await self.reload()

        async def reloader() -> None:
            while True:
                await reloads.get()
                try:
                    await self.reload()
                except (OSError, ValueError, KeyError) as exc:
                    print(f"reload failed: {exc}", file=sys.stderr, flush=True)

        task = asyncio.create_task(reloader())
        await stop.wait()
        task.cancel()
        for name in list(self.servers):
            await self._close(name)
        if self.registry is not None:
            await self.registry.aclose()


def _raise_file_limit() -> None:
    """Each host is a listening socket plus its clients' connections: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m fleet.lab.simulator CONFIG.json")
    _raise_file_limit()
    asyncio.run(Simulator(Path(sys.argv[1])).run())
