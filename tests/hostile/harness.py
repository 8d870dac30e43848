"""A fleet of fake hosts on loopback, some of them hostile, for driving the real CLI.

Each host is an in-process asyncssh server on its own 127.0.0.x address that
- answers direct-streamlocal channels (what fleet opens to the Docker socket) with a tiny
  HTTP/1.1 responder playing dockerd, replying per endpoint with crafted bodies, and
- serves SFTP from a temporary home directory (chroot) holding crafted `.fleet/` files.

    with HostileFleet(tmp_path) as fleet:
        fleet.add("good")
        fleet.add("bad", docker=FakeDocker({"GET /containers/json": Reply(b"[[[[")}),
                  files={"lock.json": b'{"pid": Infinity}'})
        result = fleet.cli("check")              # click's CliRunner, in process
        run = fleet.subprocess("status")         # `python -m fleet`, with its max RSS

The servers run on an event loop in a background thread, so the CLI (which calls
asyncio.run itself) runs unchanged in the foreground. See README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from click.testing import CliRunner, Result

from fleet.cli import cli
from fleet.config.project import ProjectFiles, read_project
from fleet.config.references import pinned_image
from fleet.core import labels
from fleet.core.desired import desired_state

REPO = Path(__file__).resolve().parents[2]
PROJECT = "shop"
IMAGE = "127.0.0.1:5000/shop/web:1"
DIGEST = "sha256:" + "ab" * 32
DOCKER_SOCKET = "/var/run/docker.sock"
_VERSION_PREFIX = re.compile(r"^/v[0-9]+\.[0-9]+(?=/)")

Body = bytes | Callable[[], AsyncIterator[bytes]]


@dataclass
class Reply:
    """One HTTP answer. `body` is bytes (sent with a Content-Length) or a function making
    an async stream of chunks (sent close-delimited, counted in FakeDocker.sent)."""

    body: Body = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(json.dumps(value).encode(), status)


Route = Reply | Callable[[str, str], Reply]  # or a function of (method, path)


def stream(size: int, chunk: bytes = b'{"Id":"x","Names":["/x"]},', prefix: bytes = b"[",
           ) -> Callable[[], AsyncIterator[bytes]]:
    """A body of about `size` bytes, made as it is sent (nothing is held in memory)."""
    piece = chunk * max(1, 65536 // len(chunk))

    async def chunks() -> AsyncIterator[bytes]:
        yield prefix
        sent = 0
        while sent < size:
            sent += len(piece)
            yield piece

    return chunks


def container(service: str = "web", replica: int = 1, *, name: str | None = None,
              state: str = "running", image: str = IMAGE,
              base_labels: Mapping[str, str] | None = None,
              extra_labels: Mapping[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A project container as GET /containers/json lists it and as its inspect shows it.

    `base_labels` (e.g. HostileFleet.labels_in_sync) replace the default fleet labels;
    `extra_labels` are laid over them (any JSON value: a hostile host's labels)."""
    cid = f"{service}{replica}".ljust(64, "0")
    name = name or f"{PROJECT}-{service}-{replica}"
    container_labels: dict[str, Any] = dict(base_labels or {
        labels.PROJECT: PROJECT, labels.SERVICE: service, labels.REPLICA: str(replica),
        labels.REVISION: "1", labels.IMAGE: image, labels.IMAGE_DIGEST: DIGEST,
        labels.SPEC_HASH: "0" * 64, labels.SPEC: json.dumps({"image": image})})
    container_labels.update(extra_labels or {})
    summary = {"Id": cid, "Names": [f"/{name}"], "Image": image, "State": state,
               "Labels": container_labels, "Ports": []}
    inspect = {"Id": cid, "Name": f"/{name}", "Created": "2026-05-01T12:00:00Z",
               "RestartCount": 0,
               "State": {"Status": state, "StartedAt": "2026-05-01T12:00:00.1Z"},
               "Config": {"Image": pinned_image(image, DIGEST), "Labels": container_labels,
                          "Env": ["PATH=/bin"]},
               "HostConfig": {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}}}
    return summary, inspect


class FakeDocker:
    """dockerd's API as fleet uses it, answering from `routes`.

    Routes are keyed "METHOD /path" with the /vX.Y prefix removed; keys may hold fnmatch
    wildcards ("GET /containers/*/json"). The defaults answer like an empty, healthy daemon;
    `containers` adds project containers (list and inspect answers); `routes` override.
    """

    def __init__(self, routes: Mapping[str, Route] | None = None, *,
                 containers: Sequence[tuple[dict[str, Any], dict[str, Any]]] = ()) -> None:
        self.routes: dict[str, Route] = {
            "GET /_ping": Reply(b"OK", content_type="text/plain",
                                headers={"API-Version": "1.41"}),
            "GET /version": Reply.json({"ApiVersion": "1.41", "MinAPIVersion": "1.24"}),
            "GET /containers/json": Reply.json([summary for summary, _ in containers]),
            "GET /images/json": Reply.json([{"RepoTags": [IMAGE],
                                             "RepoDigests": [f"{IMAGE}@{DIGEST}"]}]),
            "GET /networks": Reply.json([{"Name": "bridge"}]),
            "GET /distribution/*/json": Reply.json({"Descriptor": {"digest": DIGEST}}),
        }
        for _, inspect in containers:
            self.routes[f"GET /containers/{inspect['Id']}/json"] = Reply.json(inspect)
        self.routes.update(routes or {})
        self.requests: list[str] = []  # "METHOD /path" as asked (with the version prefix)
        self.headers: list[dict[str, str]] = []  # each request's headers (names lowercased)
        self.sent = 0  # body bytes written to the channel, streamed bodies included
        self.socket_paths: set[str] = set()

    def reply(self, method: str, target: str) -> Reply:
        path = _VERSION_PREFIX.sub("", target.partition("?")[0])
        key = f"{method} {path}"
        route = self.routes.get(key) or next(
            (r for pattern, r in self.routes.items() if fnmatch.fnmatchcase(key, pattern)),
            None)
        if route is None:
            return Reply.json({"message": f"no such route in the fake: {key}"}, 404)
        return route(method, path) if callable(route) else route

    async def serve(self, reader: asyncssh.SSHReader[bytes],
                    writer: asyncssh.SSHWriter[bytes]) -> None:
        """HTTP/1.1 on one channel: requests in turn (keep-alive) until either side ends."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncssh.Error, OSError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                               if line.lower().startswith("content-length:")), 0)
                if length:
                    await reader.readexactly(length)
                self.requests.append(f"{method} {target}")
                self.headers.append({name.strip().lower(): value.strip() for name, _, value in
                                     (line.partition(":") for line in lines[1:] if line)})
                if not await self._answer(writer, self.reply(method, target)):
                    return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, writer: asyncssh.SSHWriter[bytes], reply: Reply) -> bool:
        """Write one answer; False when the channel must close after it."""
        # dockerd puts its API version on every answer: fleet learns it from the first
        headers = {"Content-Type": reply.content_type, "API-Version": "1.41", **reply.headers}
        streamed = callable(reply.body)
        if streamed:
            headers["Connection"] = "close"
        else:
            assert isinstance(reply.body, bytes)
            headers.setdefault("Content-Length", str(len(reply.body)))
        head = f"HTTP/1.1 {reply.status} Fake\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        try:
            writer.write(head.encode("latin-1"))
            if isinstance(reply.body, bytes):
                writer.write(reply.body)
                self.sent += len(reply.body)
                await writer.drain()
                return True
            async for chunk in reply.body():
                writer.write(chunk)
                self.sent += len(chunk)
                await writer.drain()  # SSH flow control: waits while the client is not reading
        except (asyncssh.Error, OSError):  # the client hung up (as it should, past a bound)
            pass
        return False


class _HostServer(asyncssh.SSHServer):
    def __init__(self, docker: FakeDocker) -> None:
        self._docker = docker

    def unix_connection_requested(self, dest_path: str) -> Any:
        self._docker.socket_paths.add(dest_path)
        return self._docker.serve  # a (reader, writer) handler: asyncssh runs it per channel


@dataclass
class FakeHost:
    name: str
    address: str
    home: Path
    docker: FakeDocker
    host_key: asyncssh.SSHKey
    port: int = 0
    server: asyncssh.SSHAcceptor | None = None

    @property
    def state_dir(self) -> Path:
        """Where fleet keeps the project's journal and lock (`.fleet/shop/` in the home)."""
        return self.home / ".fleet" / PROJECT


@dataclass
class Ran:
    """A `python -m fleet` run: exit code, output and the child's peak RSS."""

    exit_code: int
    stdout: str
    stderr: str
    max_rss_mib: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class HostileFleet:
    """Fake hosts plus an inventory and playbook pointing at them (see the module doc)."""

    def __init__(self, tmp: Path, playbook: str | None = None) -> None:
        self.tmp = tmp
        self.hosts: dict[str, FakeHost] = {}
        self._playbook_text = playbook or (
            f"project: {PROJECT}\ninventory: inventory.yml\n"
            f"services:\n  web:\n    image: {IMAGE}\n")
        self._client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_path = tmp / "id_ed25519"
        self._client_key.write_private_key(self.key_path)
        self.known_hosts = tmp / "known_hosts"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-fleet",
                                        daemon=True)

    # -- the servers (on the background loop) --------------------------------------------

    def _on_loop(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    def __enter__(self) -> HostileFleet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for host in self.hosts.values():
                if host.server is not None:
                    host.server.close()
                    await host.server.wait_closed()

        self._on_loop(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def add(self, name: str, docker: FakeDocker | None = None, *,
            files: Mapping[str, bytes] | None = None) -> FakeHost:
        """A host answering with `docker`; `files` go into its project state directory
        (`journal.jsonl`, `lock.json`) or, with a slash, relative to its home."""
        home = self.tmp / "homes" / name
        host = FakeHost(name, f"127.0.0.{2 + len(self.hosts)}", home, docker or FakeDocker(),
                        asyncssh.generate_private_key("ssh-ed25519"))
        host.state_dir.mkdir(parents=True, exist_ok=True)
        for relative, data in (files or {}).items():
            path = home / relative if "/" in relative else host.state_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        authorized = asyncssh.import_authorized_keys(
            self._client_key.export_public_key().decode())

        async def start() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                lambda: _HostServer(host.docker), host.address, 0,
                server_host_keys=[host.host_key], authorized_client_keys=authorized,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(home).encode()),
                allow_pty=False)

        host.server = self._on_loop(start())
        host.port = host.server.sockets[0].getsockname()[1]
        public = host.host_key.export_public_key().decode().split()
        with self.known_hosts.open("a") as known:
            known.write(f"[{host.address}]:{host.port} {public[0]} {public[1]}\n")
        self.hosts[name] = host
        return host

    # -- the project files ---------------------------------------------------------------

    def write_project(self) -> Path:
        lines = ["defaults:", "  user: fleet", f"  ssh_key: {self.key_path}",
                 f"  known_hosts: {self.known_hosts}", "  host_key_checking: strict",
                 f"  docker_socket: {DOCKER_SOCKET}", "hosts:"]
        for host in self.hosts.values():
            lines.append(f"  {host.name}: {{address: {host.address}, port: {host.port}}}")
        (self.tmp / "inventory.yml").write_text("\n".join(lines) + "\n")
        playbook = self.tmp / "playbook.yml"
        playbook.write_text(self._playbook_text)
        return playbook

    def labels_in_sync(self, host: str, service: str = "web", replica: int = 1
                       ) -> dict[str, str]:
        """The labels fleet would give the container now: with them, a host is in sync."""
        playbook = self.write_project()
        state = desired_state(read_project(ProjectFiles(playbooks=[str(playbook)])))
        wanted = next(c for c in state.containers[host]
                      if c.service == service and c.replica == replica)
        return labels.fleet_labels(wanted, state.secrets, DIGEST, 1)

    def in_sync(self, host: str) -> None:
        """Give `host` the project's containers exactly as desired (check: in sync)."""
        made = container(base_labels=self.labels_in_sync(host))
        docker = self.hosts[host].docker
        docker.routes["GET /containers/json"] = Reply.json([made[0]])
        docker.routes[f"GET /containers/{made[1]['Id']}/json"] = Reply.json(made[1])
        # ...and the project's default network they are on, as fleet creates it.
        docker.routes["GET /networks"] = Reply.json([
            {"Name": "bridge"},
            {"Name": f"{PROJECT}_default", "Driver": "bridge", "Options": {},
             "Labels": {labels.PROJECT: PROJECT},
             "IPAM": {"Driver": "default", "Options": None,
                      "Config": [{"Subnet": "172.20.0.0/16", "Gateway": "172.20.0.1"}]}}])

    # -- running the CLI -----------------------------------------------------------------

    def cli(self, *args: str) -> Result:
        """`fleet ARGS... playbook.yml` in this process (click's CliRunner)."""
        playbook = self.write_project()
        return CliRunner().invoke(cli, [*args, str(playbook)], catch_exceptions=True)

    def subprocess(self, *args: str, timeout: float = 120) -> Ran:
        """`python -m fleet ARGS... playbook.yml` as a child process, with its peak RSS.

        The peak is the child's own VmHWM, written as it exits: ru_maxrss would also count
        the pytest process it was forked from (Linux keeps the high-water mark across exec).
        """
        playbook = self.write_project()
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
        out, err, peak = self.tmp / "stdout", self.tmp / "stderr", self.tmp / "peak-rss"
        peak.unlink(missing_ok=True)
        with out.open("wb") as stdout, err.open("wb") as stderr:
            completed = subprocess.run(
                [sys.executable, "-c", _MEASURED_FLEET, str(peak), *args, str(playbook)],
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env, cwd=self.tmp,
                timeout=timeout, check=False)
        return Ran(completed.returncode, out.read_text(), err.read_text(),
                   int(peak.read_text()) / 1024 if peak.exists() else float("inf"))


# `python -m fleet`, writing its peak RSS (kB, from /proc/self/status) to argv[1] at exit.
_MEASURED_FLEET = """
import atexit, re, runpy, sys
peak_file = sys.argv.pop(1)

def record():
    with open("/proc/self/status") as status:
        peak = re.search(r"^VmHWM:\\s+(\\d+) kB", status.read(), re.M).group(1)
    with open(peak_file, "w") as out:
        out.write(peak)

atexit.register(record)
sys.argv[0] = "fleet"
runpy.run_module("fleet", run_name="__main__", alter_sys=True)
"""
