"""The Engine API of simulated hosts over their Unix sockets (HTTP/1.1 by h11, JSON bodies).

Routes are the subset fleet calls (see fleet.docker.client) and what `docker ps`, `docker
stop` and `docker inspect` need, so tests can make drift with the real docker CLI inside a host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from fleet.config.references import parse_image_reference
from fleet.lab.simulator.engine import EngineError, SimulatedEngine
from fleet.lab.simulator.registry import LabRegistry

API_VERSION = "1.41"  # dockerd 20.10, as on the lab's real hosts
MIN_API_VERSION = "1.12"
SERVER = "Docker/20.10.24+fleet-simulator (linux)"
MAX_REQUEST_BODY = 8 * 1024 * 1024
_VERSIONED = re.compile(r"^/v([0-9]{1,3})\.([0-9]{1,3})(/.*)$")

Query = dict[str, list[str]]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, bytes, or None
    content_type: str = "application/json"
    stream: AsyncIterator[bytes] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[["Request"], Awaitable[Reply]]


@dataclass
class Request:
    method: str
    path: str
    query: Query
    headers: dict[str, str]
    body: bytes
    match: re.Match[str]

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return self.arg(name).lower() in ("1", "true", "yes")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message})


class HostServer:
    """Answers one host's requests from its SimulatedEngine."""

    def __init__(self, engine: SimulatedEngine, registry: LabRegistry) -> None:
        self.engine = engine
        self.registry = registry
        c = r"(?P<id>[^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in [
                ("GET", "/_ping", self._ping), ("HEAD", "/_ping", self._ping),
                ("GET", "/version", self._version), ("GET", "/info", self._info),
                ("GET", "/containers/json", self._list_containers),
                ("POST", "/containers/create", self._create),
                ("GET", f"/containers/{c}/json", self._inspect),
                ("POST", f"/containers/{c}/start", self._start),
                ("POST", f"/containers/{c}/stop", self._stop),
                ("POST", f"/containers/{c}/restart", self._restart),
                ("POST", f"/containers/{c}/kill", self._kill),
                ("POST", f"/containers/{c}/rename", self._rename),
                ("POST", f"/containers/{c}/update", self._update),
                ("DELETE", f"/containers/{c}", self._remove),
                ("GET", f"/containers/{c}/logs", self._logs),
                ("GET", "/images/json", self._list_images),
                ("POST", "/images/create", self._pull),
                ("GET", "/images/(?P<id>.+)/json", self._inspect_image),
                ("GET", "/distribution/(?P<id>.+)/json", self._distribution),
                ("GET", "/networks", self._list_networks),
                ("POST", "/networks/create", self._create_network),
                ("GET", f"/networks/{c}", self._inspect_network),
                ("POST", f"/networks/{c}/connect", self._connect),
                ("GET", "/volumes", self._list_volumes),
                ("POST", "/volumes/create", self._create_volume),
            ]
        ]

    async def answer(self, method: str, target: str, headers: dict[str, str],
                     body: bytes) -> Reply:
        parts = urlsplit(target)
        path = unquote(parts.path)
        versioned = _VERSIONED.match(path)
        if versioned:
            asked = (int(versioned.group(1)), int(versioned.group(2)))
            if asked > (1, 41):
                return _error(400, f"client version {asked[0]}.{asked[1]} is too new. Maximum "
                                   f"supported API version is {API_VERSION}")
            if asked < (1, 12):
                return _error(400, f"client version {asked[0]}.{asked[1]} is too old. Minimum "
                                   f"supported API version is {MIN_API_VERSION}, please upgrade "
                                   "your client to a newer version")
            path = versioned.group(3)
        if self.engine.latencies.api:
            await asyncio.sleep(self.engine.latencies.api)
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            allowed = True
            if route_method != method:
                continue
            request = Request(method, path, parse_qs(parts.query), headers, body, match)
            try:
                return await handler(request)
            except EngineError as exc:  # RegistryError included
                return _error(exc.status, exc.message)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                return _error(400, f"simulated daemon: bad request: {exc}")
        if allowed:
            return _error(405, "method not allowed")
        return _error(404, f"page not found (the simulator does not serve {method} {path})")

    # -- daemon ----------------------------------------------------------------------------

    async def _ping(self, request: Request) -> Reply:
        return Reply(200, b"OK", "text/plain; charset=utf-8",
                     headers=[("Cache-Control", "no-cache, no-store, must-revalidate"),
                              ("Pragma", "no-cache")])

    async def _version(self, request: Request) -> Reply:
        return Reply(200, {"Version": "20.10.24+sim", "ApiVersion": API_VERSION,
                           "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": "amd64",
                           "KernelVersion": "simulated", "GoVersion": "none",
                           "Components": [{"Name": "Engine", "Version": "20.10.24+sim"}]})

    async def _info(self, request: Request) -> Reply:
        engine = self.engine
        running = sum(1 for c in engine.containers.values()
                      if c.state(engine.clock())[0] == "running")
        return Reply(200, {"ID": engine.host, "Name": engine.host,
                           "Containers": len(engine.containers), "ContainersRunning": running,
                           "Images": len(engine.images), "ServerVersion": "20.10.24+sim",
                           "OperatingSystem": "fleet Engine API simulator", "OSType": "linux",
                           "Driver": "simulated"})

    # -- containers ------------------------------------------------------------------------

    async def _list_containers(self, request: Request) -> Reply:
        filters = json.loads(request.arg("filters") or "{}")
        labels = filters.get("label") or []
        if isinstance(labels, dict):  # the old {"label": {"k=v": true}} form
            labels = [k for k, v in labels.items() if v]
        return Reply(200, self.engine.list_containers(request.flag("all"), list(labels)))

    async def _create(self, request: Request) -> Reply:
        return Reply(201, self.engine.create(request.arg("name"), request.json()))

    async def _inspect(self, request: Request) -> Reply:
        return Reply(200, self.engine.inspect(request.match["id"]))

    async def _start(self, request: Request) -> Reply:
        return Reply(204 if self.engine.start(request.match["id"]) else 304)

    async def _stop(self, request: Request) -> Reply:
        return Reply(204 if self.engine.stop(request.match["id"]) else 304)

    async def _restart(self, request: Request) -> Reply:
        self.engine.stop(request.match["id"])
        self.engine.start(request.match["id"])
        return Reply(204)

    async def _kill(self, request: Request) -> Reply:
        self.engine.kill(request.match["id"])
        return Reply(204)

    async def _rename(self, request: Request) -> Reply:
        self.engine.rename(request.match["id"], request.arg("name"))
        return Reply(204)

    async def _update(self, request: Request) -> Reply:
        return Reply(200, self.engine.update(request.match["id"], request.json()))

    async def _remove(self, request: Request) -> Reply:
        self.engine.remove(request.match["id"], request.flag("force"))
        return Reply(204)

    async def _logs(self, request: Request) -> Reply:
        frames = b"".join(struct.pack(">BxxxL", stream, len(data)) + data
                          for stream, data in self.engine.logs(request.match["id"]))
        return Reply(200, frames, "application/vnd.docker.raw-stream")

    # -- images ----------------------------------------------------------------------------

    async def _list_images(self, request: Request) -> Reply:
        return Reply(200, self.engine.list_images())

    async def _inspect_image(self, request: Request) -> Reply:
        reference = request.match["id"]
        image = self.engine.image(reference)
        if image is None:
            raise EngineError(404, f"No such image: {reference}")
        summary = image.summary()
        return Reply(200, {**summary, "Config": image.config,
                           "Architecture": image.resolved.config.get("architecture"),
                           "Os": image.resolved.config.get("os")})

    async def _distribution(self, request: Request) -> Reply:
        name, reference = _name_and_reference(request.match["id"])
        resolved = await self.registry.resolve(name, reference)
        return Reply(200, {"Descriptor": {"mediaType": resolved.media_type,
                                          "digest": resolved.digest, "size": resolved.size},
                           "Platforms": [{"architecture": resolved.config.get("architecture"),
                                          "os": resolved.config.get("os")}]})

    async def _pull(self, request: Request) -> Reply:
        image, tag = request.arg("fromImage"), request.arg("tag")
        separator = "@" if ":" in tag else ":"  # a digest (sha256:...) or a tag
        name, tag = _name_and_reference(f"{image}{separator}{tag}" if tag else image)
        resolved = await self.registry.resolve(name, tag)  # an error before the stream starts
        by_tag = not tag.startswith("sha256:")
        reference = f"{name}:{tag}" if by_tag else f"{name}@{tag}"
        had = self.engine.image(f"{name}@{resolved.digest}") is not None
        stream = self._pull_stream(name, tag, reference, resolved, had, by_tag)
        return Reply(200, content_type="application/json", stream=stream)

    async def _pull_stream(self, name: str, tag: str, reference: str, resolved: Any,
                           had: bool, by_tag: bool) -> AsyncIterator[bytes]:
        def line(value: dict[str, Any]) -> bytes:
            return json.dumps(value, separators=(",", ":")).encode() + b"\r\n"

        yield line({"status": f"Pulling from {name.split('/', 1)[-1]}", "id": tag[:19]})
        if not had:
            layer_ids = [f"{resolved.image_id[7:19]}{i}"[:12] for i in range(resolved.layers)]
            for layer in layer_ids:
                yield line({"status": "Pulling fs layer", "progressDetail": {}, "id": layer})
            await asyncio.sleep(self.engine.latencies.pull)
            for layer in layer_ids:
                yield line({"status": "Pull complete", "progressDetail": {}, "id": layer})
        self.engine.add_image(resolved, f"{name}:{tag}" if by_tag else None)
        yield line({"status": f"Digest: {resolved.digest}"})
        if had:
            yield line({"status": f"Status: Image is up to date for {reference}"})
        else:
            yield line({"status": f"Status: Downloaded newer image for {reference}"})

    # -- networks and volumes --------------------------------------------------------------

    async def _list_networks(self, request: Request) -> Reply:
        return Reply(200, self.engine.list_networks())

    async def _inspect_network(self, request: Request) -> Reply:
        return Reply(200, self.engine.network(request.match["id"]).summary(
            self.engine.containers))

    async def _create_network(self, request: Request) -> Reply:
        return Reply(201, self.engine.create_network(request.json()))

    async def _connect(self, request: Request) -> Reply:
        body = request.json()
        self.engine.connect(request.match["id"], str(body.get("Container") or ""),
                            dict(body.get("EndpointConfig") or {}))
        return Reply(200)

    async def _list_volumes(self, request: Request) -> Reply:
        return Reply(200, self.engine.list_volumes())

    async def _create_volume(self, request: Request) -> Reply:
        return Reply(201, self.engine.create_volume(request.json()))


def _name_and_reference(text: str) -> tuple[str, str]:
    """(repository as written, tag or digest) of an image reference; "latest" if it has none.
    A reference of both tag and digest is pulled by its digest, as by dockerd."""
    try:
        parsed = parse_image_reference(text)
    except ValueError as exc:
        raise EngineError(400, f"invalid reference format: {exc}") from None
    name = text.partition("@")[0]
    if parsed.tag and name.endswith(f":{parsed.tag}"):
        name = name.removesuffix(f":{parsed.tag}")
    return name, parsed.digest or parsed.tag or "latest"


def _response_headers(reply: Reply, length: int | None) -> list[tuple[str, str]]:
    headers = [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
               ("Ostype", "linux"), ("Server", SERVER), *reply.headers]
    if reply.body is not None or reply.stream is not None:
        headers.append(("Content-Type", reply.content_type))
    if length is not None:
        headers.append(("Content-Length", str(length)))
    return headers


async def serve_connection(server: HostServer, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
    """One client connection: requests one after another (keep-alive), each answered whole
    or streamed (a pull's progress lines, in chunked encoding)."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)

    async def send(*events: Any) -> None:
        for event in events:
            data = connection.send(event)
            if data:
                writer.write(data)
        await writer.drain()

    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                connection.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                break
            if not isinstance(event, h11.Request):
                break
            body = bytearray()
            while True:
                part = connection.next_event()
                if part is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                elif isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > MAX_REQUEST_BODY:
                        raise h11.RemoteProtocolError("request body too large")
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    raise h11.RemoteProtocolError("unexpected event in a request")
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            reply = await server.answer(event.method.decode(), event.target.decode("latin-1"),
                                        headers, bytes(body))
            await _send_reply(send, reply, head=event.method == b"HEAD")
            if connection.our_state is h11.MUST_CLOSE:
                break
            connection.start_next_cycle()
    except (h11.ProtocolError, ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _send_reply(send: Callable[..., Awaitable[None]], reply: Reply, *,
                      head: bool) -> None:
    if reply.stream is not None:
        await send(h11.Response(status_code=reply.status,
                                headers=_response_headers(reply, None)))
        async for chunk in reply.stream:
            await send(h11.Data(data=chunk))
        await send(h11.EndOfMessage())
        return
    if reply.body is None:
        payload = b""
    elif isinstance(reply.body, bytes):
        payload = reply.body
    else:
        payload = json.dumps(reply.body, separators=(",", ":")).encode() + b"\n"
    no_body = reply.status in (204, 304)
    await send(h11.Response(status_code=reply.status,
                            headers=_response_headers(reply, None if no_body else len(payload))))
    if payload and not no_body and not head:
        await send(h11.Data(data=payload))
    await send(h11.EndOfMessage())
