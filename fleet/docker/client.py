"""An async Docker Engine API client for one host; every method is one or two API calls.

Requests travel over the host's SSH connection (see http_over_ssh); bodies are built by the
callers' pure functions and passed through as JSON. Every method has a deadline.

Every answer is read as a stream within a bound for its kind (below), so a daemon sending
hundreds of megabytes costs at most the bound: the response is abandoned there and its channel
closed. JSON answers are parsed within bounds (fleet.core.untrusted) and checked against their
model (fleet.core.answers) before they are returned.

Raises DockerError (status = the HTTP status, 0 when the daemon could not be reached or
did not answer in time), its DockerNotFoundError for HTTP 404 and HostAnswerError for an
unusable answer, always with the host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel, TypeAdapter

from fleet.core.answers import (
    API_VERSION,
    CONTAINER_LIST,
    IMAGE_LIST,
    NETWORK_LIST,
    AnswerShapeError,
    ContainerInspect,
    CreatedAnswer,
    DistributionAnswer,
    ExecCreated,
    ExecInspect,
    ImageInspect,
    LoadEvent,
    PullEvent,
    PushEvent,
    VersionAnswer,
    VolumeList,
    VolumeSummary,
    WarningsAnswer,
    validated,
)
from fleet.core.untrusted import KiB, MiB, UntrustedJSONError, parse_json, size_text
from fleet.docker.wire import (
    MAX_API_VERSION,
    ContainerOutput,
    FrameDecoder,
    StreamChunk,
    demultiplex_stream,
    encode_registry_auth,
    error_message,
    label_filters,
    negotiate_api_version,
    parse_api_version,
    pull_progress_error,
    raw_stream,
    split_image_reference,
    version_from_refusal,
)
from fleet.errors import DockerError, DockerNotFoundError, HostAnswerError
from fleet.transport.http import Request, Response, Transport, TransportError
from fleet.transport.http_over_ssh import MAX_CHANNELS, docker_socket_pool
from fleet.transport.ssh import HostConnection

DEFAULT_TIMEOUT = 30.0
PULL_TIMEOUT = 900.0
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

# Bounds on what a daemon may send (a host can be hostile; the controller serves them all).
MAX_LIST_ANSWER = 8 * MiB  # GET /containers/json, /images/json, /networks: ~2000 containers
MAX_OBJECT_ANSWER = 2 * MiB  # an inspect, /version, a create or update answer
MAX_SMALL_BODY = 64 * KiB  # error bodies and answers fleet does not read: cut, not refused
MAX_LOGS = 1 * MiB  # a container's log tail: cut
MAX_EXEC_OUTPUT = 1 * MiB  # what `fleet exec` keeps of one replica's output: cut
MAX_PULL_LINE = 64 * KiB  # one line of a pull's progress stream (~200 bytes in practice)

JSONObject = dict[str, Any]
PullProgress = Callable[[JSONObject], None]


def _segment(value: str) -> str:
    """A container id or name as one path segment."""
    return quote(value, safe="")


def _query_value(value: Any) -> str:
    # Go's strconv.ParseBool, which dockerd uses, reads "true"/"false"; None is an empty value.
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _target(path: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return path
    return f"{path}?{urlencode([(name, _query_value(v)) for name, v in params.items()])}"


# identity: bounds count the bytes that arrive, not what they would inflate to.
_ALWAYS = (("Accept-Encoding", "identity"),)
_JSON = ("Content-Type", "application/json")


class DockerClient:
    """The Docker Engine API of one host."""

    def __init__(self, host: str, transport: Transport, *,
                 timeout: float = DEFAULT_TIMEOUT, endpoint: str = "the Docker socket",
                 api_version: str | None = None, channels: int = MAX_CHANNELS) -> None:
        """`api_version` pins the version (no answer can change it); `channels` is how many
        requests `transport` carries at once (callers fanning out stay within it)."""
        self.host = host
        self.timeout = timeout
        self.channels = max(1, channels)
        self._endpoint = endpoint
        self._http = transport
        self._api_version = api_version
        self._negotiation = asyncio.Lock()

    @classmethod
    def over_ssh(cls, connection: HostConnection, *, max_channels: int = MAX_CHANNELS,
                 timeout: float = DEFAULT_TIMEOUT, api_version: str | None = None
                 ) -> DockerClient:
        """The host's Docker socket, reached over channels of its one SSH connection."""
        socket_path = connection.target.docker_socket
        transport = docker_socket_pool(connection.ssh, socket_path, max_channels=max_channels)
        return cls(connection.name, transport, timeout=timeout, endpoint=socket_path,
                   api_version=api_version, channels=max_channels)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    async def api_version(self) -> str:
        """The API version used with this daemon, known after its first versioned answer
        (see _send) and remembered.

        Asked before any, it is negotiated with GET /_ping (its API-Version header, as the
        docker CLI does): /version makes dockerd query containerd and costs several times
        more, and is asked only of daemons too old to send the header.
        """
        async with self._negotiation:
            if self._api_version is None:
                response, _ = await self._call("GET", "/_ping", versioned=False)
                server_version = response.headers.get("API-Version")
                if server_version is None:  # daemons older than 1.25 don't send it
                    self._api_version = negotiate_api_version(await self.version())
                else:
                    checked = self._validated("GET /_ping (its API-Version header)",
                                              API_VERSION, server_version)
                    self._api_version = negotiate_api_version({"ApiVersion": checked})
        return self._api_version

    def _learn_version(self, what: str, response: Response, sent: str) -> None:
        """After the first versioned answer the daemon accepted (sent at `sent`): keep `sent`,
        or the daemon's own version (the API-Version header dockerd puts on every answer)
        if that is older. Without the header, `sent` was accepted, so it is in the daemon's
        range (dockerd refuses any version outside it)."""
        server_version = response.headers.get("API-Version")
        if server_version is None:
            self._api_version = sent
            return
        checked = self._validated(f"{what} (its API-Version header)", API_VERSION,
                                  server_version)
        self._api_version = min(sent, checked, key=parse_api_version)

    def _unusable(self, what: str, problem: object) -> HostAnswerError:
        return HostAnswerError(self.host, f"Docker answered {what} with an unusable answer: "
                                          f"{problem}")

    def _validated(self, what: str, model: type[BaseModel] | TypeAdapter[Any],
                   value: Any) -> Any:
        try:
            return validated(model, value)
        except AnswerShapeError as exc:
            raise self._unusable(what, exc) from None

    async def _read(self, what: str, response: Response, limit: int, *,
                    cut: bool = False) -> bytes:
        """The body, counting bytes as they arrive: beyond `limit`, either cut there (`cut`)
        or give up with HostAnswerError. The caller closes the response; one not read to the
        end closes its channel, so nothing more of it is ever received."""
        declared = response.headers.get("Content-Length", "")
        if not cut and 0 < len(declared) <= 20 and declared.isascii() and declared.isdigit() \
                and int(declared) > limit:
            raise self._unusable(what, f"{declared} bytes, more than {size_text(limit)}")
        body = bytearray()
        async for chunk in self._chunks(what, response):
            body += chunk
            if len(body) > limit:
                if cut:
                    return bytes(body[:limit])
                raise self._unusable(what, f"more than {size_text(limit)} (stopped reading)")
        return bytes(body)

    def _chunks(self, what: str, response: Response) -> AsyncIterator[bytes]:
        """The body as it arrives, never inflated: we ask for identity encoding, and an
        answer compressed anyway (a deflate bomb) is refused before it is decoded."""
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise self._unusable(what, f"a {encoding[:40]}-encoded body fleet did not ask for")
        return response.aiter_bytes()

    async def _send(self, what: str, method: str, path: str, *, versioned: bool,
                    params: Mapping[str, Any] | None = None, body: Any = None,
                    headers: Mapping[str, str] | None = None) -> Response:
        """Send one request and return its streaming response (the caller reads it within a
        bound and closes it). Raises DockerError for 4xx/5xx.

        No round trip is spent on negotiating the API version: until the daemon's first
        answer tells it, requests go out at MAX_API_VERSION (so a host's first requests
        leave together). A daemon refusing that version as too new (or too old) names the
        one it speaks: adopted, and the request is sent again."""
        for attempt in (1, 2):
            version = (self._api_version or MAX_API_VERSION) if versioned else None
            url = f"/v{version}{path}" if version is not None else path
            sent_headers = [*_ALWAYS, *(headers or {}).items()]
            content: bytes | AsyncIterable[bytes] = b""
            if isinstance(body, AsyncIterable):
                content = body  # sent as it comes; its callers know the version first
            elif body is not None:
                content = json.dumps(body).encode()
                sent_headers.append(_JSON)
            response = await self._http.send(Request(method, _target(url, params),
                                                     headers=sent_headers, body=content))
            if response.status < 400:
                if version is not None and self._api_version is None:
                    try:
                        self._learn_version(what, response, version)
                    except BaseException:
                        await response.aclose()
                        raise
                return response
            try:
                refusal = await self._read(what, response, MAX_SMALL_BODY, cut=True)
            finally:
                await response.aclose()
            if attempt == 1 and version is not None and response.status == 400:
                wanted = version_from_refusal(error_message(refusal, 400, ""))
                if wanted and wanted != version:
                    self._api_version = wanted
                    continue
            self._raise_for_status(what, response, refusal)
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def _deadline(self, what: str, timeout: float | None) -> AsyncIterator[None]:
        """Map every way a call can fail to DockerError; `timeout` bounds the whole call."""
        seconds = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError as exc:
            raise DockerError(self.host, f"{what}: no answer within {seconds:g}s") from exc
        except TransportError as exc:
            raise DockerError(
                self.host, f"{what}: cannot talk to the Docker daemon at {self._endpoint} "
                f"over SSH ({exc or type(exc).__name__}; is dockerd running there?)") from exc

    def _raise_for_status(self, what: str, response: Response, body: bytes) -> None:
        message = f"{what}: {error_message(body, response.status, response.reason)}"
        error_type = DockerNotFoundError if response.status == 404 else DockerError
        raise error_type(self.host, message, response.status)

    async def _call(self, method: str, path: str, *, versioned: bool = True,
                    params: Mapping[str, Any] | None = None, body: Any = None,
                    headers: Mapping[str, str] | None = None, timeout: float | None = None,
                    limit: int = MAX_SMALL_BODY, cut: bool = True
                    ) -> tuple[Response, bytes]:
        """One request and its body, read within `limit` (see _read); raises DockerError on
        any failure or 4xx/5xx."""
        what = f"{method} {path}"
        async with self._deadline(what, timeout):
            response = await self._send(what, method, path, versioned=versioned,
                                        params=params, body=body, headers=headers)
            try:
                data = await self._read(what, response, limit, cut=cut)
            finally:
                await response.aclose()
        return response, data

    async def _call_json(self, method: str, path: str,
                         model: type[BaseModel] | TypeAdapter[Any], *,
                         limit: int = MAX_OBJECT_ANSWER, **kwargs: Any) -> Any:
        """The answer's JSON, parsed within bounds and checked against `model`."""
        what = f"{method} {path}"
        _, data = await self._call(method, path, limit=limit, cut=False, **kwargs)
        try:
            value = parse_json(data, max_bytes=limit)
        except UntrustedJSONError as exc:
            raise self._unusable(what, exc) from None
        self._validated(what, model, value)
        return value

    # -- daemon -----------------------------------------------------------------------------

    async def version(self) -> JSONObject:
        result: JSONObject = await self._call_json("GET", "/version", VersionAnswer,
                                                   versioned=False)
        return result

    # -- containers -------------------------------------------------------------------------

    async def list_containers(self, *, all: bool = True,
                              labels: Mapping[str, str | None] | Sequence[str] | None = None
                              ) -> list[JSONObject]:
        """GET /containers/json; `labels` keeps containers carrying all of them."""
        params: dict[str, Any] = {"all": all}
        if labels:
            params["filters"] = label_filters(labels)
        result: list[JSONObject] = await self._call_json(
            "GET", "/containers/json", CONTAINER_LIST, params=params, limit=MAX_LIST_ANSWER)
        return result

    async def inspect_container(self, container: str) -> JSONObject:
        result: JSONObject = await self._call_json(
            "GET", f"/containers/{_segment(container)}/json", ContainerInspect)
        return result

    async def create_container(self, name: str, body: Mapping[str, Any], *,
                               platform: str = "") -> JSONObject:
        """POST /containers/create; returns {"Id": ..., "Warnings": [...]}. `platform`
        (os/arch) picks the image variant, as `docker create --platform` does."""
        params = {"name": name, **({"platform": platform} if platform else {})}
        result: JSONObject = await self._call_json(
            "POST", "/containers/create", CreatedAnswer, params=params, body=dict(body))
        return result

    async def start_container(self, container: str) -> None:
        # 304 (already started) is a success for a converging tool.
        await self._call("POST", f"/containers/{_segment(container)}/start")

    async def stop_container(self, container: str, *, timeout: int | None = None) -> None:
        """Stop, giving the process `timeout` seconds (default: its own StopTimeout)."""
        params = {} if timeout is None else {"t": timeout}
        await self._call("POST", f"/containers/{_segment(container)}/stop", params=params,
                         timeout=self.timeout + (timeout or 10))

    async def remove_container(self, container: str, *, force: bool = False,
                               volumes: bool = False) -> None:
        await self._call("DELETE", f"/containers/{_segment(container)}",
                         params={"force": force, "v": volumes})

    async def rename_container(self, container: str, new_name: str) -> None:
        await self._call("POST", f"/containers/{_segment(container)}/rename",
                         params={"name": new_name})

    async def update_container(self, container: str, body: Mapping[str, Any]) -> JSONObject:
        """POST /containers/{id}/update (resources, restart policy) in place."""
        result: JSONObject = await self._call_json(
            "POST", f"/containers/{_segment(container)}/update", WarningsAnswer,
            body=dict(body))
        return result

    async def container_logs(self, container: str, *, tail: int | None = 100,
                             timestamps: bool = False) -> ContainerOutput:
        """The last `tail` lines of stdout and stderr (all of them when tail is None)."""
        path = f"/containers/{_segment(container)}/logs"
        params = {"stdout": True, "stderr": True, "timestamps": timestamps,
                  "tail": "all" if tail is None else tail}
        response, data = await self._call("GET", path, params=params, limit=MAX_LOGS)
        return await self._split_output(response, data, container)

    @contextlib.asynccontextmanager
    async def log_stream(self, container: str, *, tty: bool, follow: bool,
                         since: float | None = None, tail: int | None = None
                         ) -> AsyncIterator[AsyncIterator[StreamChunk]]:
        """The container's stdout and stderr, each line prefixed with its time, as chunks
        while they arrive; with `follow`, until the container stops or the caller leaves.
        `tty`: the container's Config.Tty (API 1.41 does not label the stream's kind).
        Only the answer's head has a deadline: a followed log waits as long as it is read."""
        what = f"GET /containers/{container[:64]}/logs"
        params: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": True,
                                  "follow": follow, "tail": "all" if tail is None else tail}
        if since is not None:
            params["since"] = f"{since:.6f}"
        async with self._deadline(what, None):
            response = await self._send(what, "GET", f"/containers/{_segment(container)}/logs",
                                        versioned=True, params=params)
        try:
            yield self._stream_chunks(what, response, multiplexed=not tty)
        finally:
            await response.aclose()

    async def _stream_chunks(self, what: str, response: Response, *, multiplexed: bool
                             ) -> AsyncIterator[StreamChunk]:
        decoder = FrameDecoder()
        try:
            async for data in self._chunks(what, response):
                if multiplexed:
                    for chunk in decoder.feed(data):
                        yield chunk
                elif data:
                    yield StreamChunk("stdout", data)
        except TransportError as exc:
            raise DockerError(self.host, f"{what}: the stream broke "
                                         f"({exc or type(exc).__name__})") from exc

    async def create_exec(self, container: str, argv: Sequence[str], *, user: str = "",
                          workdir: str = "", env: Sequence[str] = ()) -> str:
        """POST /containers/{id}/exec: `argv` as it is (no shell); returns the exec's id."""
        body = {"AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
                "Tty": False, "Cmd": list(argv), "Env": list(env),
                **({"User": user} if user else {}), **({"WorkingDir": workdir} if workdir else {})}
        result = await self._call_json("POST", f"/containers/{_segment(container)}/exec",
                                       ExecCreated, body=body)
        return str(result["Id"])

    async def start_exec(self, exec_id: str, *, timeout: float,
                         limit: int = MAX_EXEC_OUTPUT) -> tuple[ContainerOutput, bool]:
        """POST /exec/{id}/start, attached: its output until the command ends (the daemon
        then closes the stream), cut at `limit` bytes. Returns (output, whether cut)."""
        what = "POST /exec/{id}/start"
        async with self._deadline(what, timeout):
            response = await self._send(what, "POST", f"/exec/{_segment(exec_id)}/start",
                                        versioned=True, body={"Detach": False, "Tty": False})
            try:
                data = await self._read(what, response, limit + 1, cut=True)
            finally:
                await response.aclose()
        cut = len(data) > limit
        return demultiplex_stream(data[:limit]), cut

    async def inspect_exec(self, exec_id: str) -> JSONObject:
        result: JSONObject = await self._call_json("GET", f"/exec/{_segment(exec_id)}/json",
                                                   ExecInspect)
        return result

    async def _split_output(self, response: Response, data: bytes,
                            container: str) -> ContainerOutput:
        # API >= 1.42 labels the stream; before that only the container's Tty setting tells.
        if response.headers.get("content-type", "").startswith(MULTIPLEXED_STREAM):
            return demultiplex_stream(data)
        if parse_api_version(await self.api_version()) >= (1, 42):
            return raw_stream(data)
        config = (await self.inspect_container(container)).get("Config") or {}
        tty = bool(config.get("Tty"))
        return raw_stream(data) if tty else demultiplex_stream(data)

    # -- networks ---------------------------------------------------------------------------

    async def list_networks(self) -> list[JSONObject]:
        result: list[JSONObject] = await self._call_json("GET", "/networks", NETWORK_LIST,
                                                         limit=MAX_LIST_ANSWER)
        return result

    async def create_network(self, body: Mapping[str, Any]) -> JSONObject:
        result: JSONObject = await self._call_json("POST", "/networks/create", CreatedAnswer,
                                                   body=dict(body))
        return result

    async def connect_network(self, network: str, container: str,
                              endpoint: Mapping[str, Any] | None = None) -> None:
        """Attach a (created, not yet started) container to one more network."""
        await self._call("POST", f"/networks/{_segment(network)}/connect",
                         body={"Container": container, "EndpointConfig": dict(endpoint or {})})

    # -- volumes --------------------------------------------------------------------------

    async def list_volumes(self) -> JSONObject:
        """GET /volumes: {"Volumes": [...], "Warnings": [...]}."""
        result: JSONObject = await self._call_json("GET", "/volumes", VolumeList,
                                                   limit=MAX_LIST_ANSWER)
        return result

    async def create_volume(self, body: Mapping[str, Any]) -> JSONObject:
        """POST /volumes/create; answers the volume (an existing one, if the name is taken)."""
        result: JSONObject = await self._call_json("POST", "/volumes/create", VolumeSummary,
                                                   body=dict(body))
        return result

    # -- images -----------------------------------------------------------------------------

    async def list_images(self) -> list[JSONObject]:
        """GET /images/json: every image with its RepoTags and RepoDigests."""
        result: list[JSONObject] = await self._call_json("GET", "/images/json", IMAGE_LIST,
                                                         limit=MAX_LIST_ANSWER)
        return result

    async def distribution_inspect(self, reference: str, *,
                                   auth: Mapping[str, str] | None = None) -> str:
        """The digest `reference` resolves to in its registry, asked through the host's daemon."""
        headers = {"X-Registry-Auth": encode_registry_auth(auth)} if auth else None
        path = f"/distribution/{quote(reference, safe='/:@')}/json"
        result = DistributionAnswer.model_validate(
            await self._call_json("GET", path, DistributionAnswer, headers=headers))
        digest = result.Descriptor.digest if result.Descriptor else None
        if not digest:
            raise DockerError(self.host, f"the registry gave no digest for {reference}")
        return str(digest)

    async def pull_image(self, reference: str, *, auth: Mapping[str, str] | None = None,
                         progress: PullProgress | None = None,
                         timeout: float = PULL_TIMEOUT, platform: str = "") -> str | None:
        """Pull `reference` on the host, following the daemon's JSON-lines progress stream.

        Credentials travel only in the X-Registry-Auth header of this request.
        Returns the pulled digest when the daemon reports one.
        """
        name, tag = split_image_reference(reference)
        what = f"pull {reference}"
        headers = {"X-Registry-Auth": encode_registry_auth(auth)} if auth else {}
        digest: str | None = None
        async with self._deadline(what, timeout):
            response = await self._send(what, "POST", "/images/create", versioned=True,
                                        params={"fromImage": name, "tag": tag,
                                                **({"platform": platform} if platform else {})},
                                        headers=headers)
            try:
                async for line in self._lines(what, response, MAX_PULL_LINE):
                    event = self._pull_event(what, line)
                    if event is None:
                        continue
                    if progress is not None:
                        progress(event)
                    status = str(event.get("status") or "")
                    if status.startswith("Digest: "):
                        digest = status.removeprefix("Digest: ").strip()
            finally:
                await response.aclose()
        return digest

    async def inspect_image(self, image: str) -> JSONObject:
        """GET /images/{name}/json (DockerNotFoundError if the host lacks it)."""
        result: JSONObject = await self._call_json(
            "GET", f"/images/{quote(image, safe='/:@')}/json", ImageInspect)
        return result

    async def tag_image(self, image: str, repository: str, tag: str) -> None:
        """POST /images/{name}/tag: `image` also named repository:tag."""
        await self._call("POST", f"/images/{quote(image, safe='/:@')}/tag",
                         params={"repo": repository, "tag": tag})

    async def remove_image(self, reference: str) -> None:
        """DELETE /images/{name} of one name (a tag or a digest reference) without pruning:
        the image stays while another name or a container holds it."""
        await self._call("DELETE", f"/images/{quote(reference, safe='/:@')}",
                         params={"noprune": True})

    async def push_image(self, repository: str, tag: str, *,
                         timeout: float = PULL_TIMEOUT) -> str:
        """POST /images/{repository}/push of one tag; the manifest digest the registry
        stored. Pushes to registries fleet runs itself (fleet.engine.seeding), which take
        no credentials: the header the daemon requires carries none."""
        what = f"push {repository}:{tag}"
        digest = ""
        async with self._deadline(what, timeout):
            response = await self._send(what, "POST",
                                        f"/images/{quote(repository, safe='/:')}/push",
                                        versioned=True, params={"tag": tag},
                                        headers={"X-Registry-Auth": encode_registry_auth({})})
            try:
                async for event in self._events(what, response, PushEvent):
                    aux = event.get("aux")
                    if isinstance(aux, dict) and aux.get("Digest"):
                        digest = str(aux["Digest"])
            finally:
                await response.aclose()
        if not digest:
            raise DockerError(self.host, f"{what}: the daemon named no digest")
        return digest

    async def load_image(self, archive: AsyncIterable[bytes], *,
                         timeout: float = PULL_TIMEOUT) -> list[str]:
        """POST /images/load with a docker-archive streamed from `archive`; returns what
        the daemon says it loaded ("Loaded image ID: sha256:...", "Loaded image: name:tag").
        A load the daemon refuses (a layer whose bytes do not match its diff ID, a full
        disk) is a DockerError; nothing of a failed load is left named on the host."""
        what = "load an image"
        loaded: list[str] = []
        await self.api_version()  # a stream can't be sent twice, as a refused version would
        async with self._deadline(what, timeout):
            response = await self._send(what, "POST", "/images/load", versioned=True,
                                        params={"quiet": True}, body=archive,
                                        headers={"Content-Type": "application/x-tar"})
            try:
                async for event in self._events(what, response, LoadEvent):
                    said = str(event.get("stream") or "").strip()
                    if said:
                        loaded.append(said)
            finally:
                await response.aclose()
        return loaded

    async def _events(self, what: str, response: Response, model: type[BaseModel]
                      ) -> AsyncIterator[JSONObject]:
        """The JSON-lines progress stream of a push or load, each line bounded and checked
        against `model`; a line carrying an error ends it as a DockerError."""
        async for line in self._lines(what, response, MAX_PULL_LINE):
            if not line.strip():
                continue
            try:
                event = parse_json(line, max_bytes=MAX_PULL_LINE, max_depth=16)
            except UntrustedJSONError as exc:
                raise self._unusable(what, exc) from None
            self._validated(what, model, event)
            failure = pull_progress_error(event)
            if failure:
                raise DockerError(self.host, f"{what}: {failure}")
            yield event

    async def _lines(self, what: str, response: Response, limit: int
                     ) -> AsyncIterator[bytes]:
        """The body's lines as they arrive, none longer than `limit` (HostAnswerError)."""
        pending = b""
        async for chunk in self._chunks(what, response):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > limit or any(len(line) > limit for line in lines):
                raise self._unusable(what, f"a line longer than {size_text(limit)}")
            for line in lines:
                yield line
        if pending:
            yield pending

    def _pull_event(self, what: str, line: bytes) -> JSONObject | None:
        if not line.strip():
            return None
        try:
            event = parse_json(line, max_bytes=MAX_PULL_LINE, max_depth=16)
        except UntrustedJSONError as exc:
            shown = line[:200].decode("utf-8", "replace")
            raise HostAnswerError(self.host, f"{what}: unreadable progress line {shown!r} "
                                             f"({exc})") from None
        if not isinstance(event, dict):
            return None
        self._validated(what, PullEvent, event)
        failure = pull_progress_error(event)
        if failure:
            raise DockerError(self.host, f"{what}: {failure}")
        return event
