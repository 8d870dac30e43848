"""An async Docker Engine API client for one host; every method is one or two API calls.

Requests travel over the host's SSH connection (see http_over_ssh); bodies are built by the
callers' pure functions and passed through as JSON. Every method has a deadline.

Raises DockerError (status = the HTTP status, 0 when the daemon could not be reached or
did not answer in time) and its DockerNotFoundError for HTTP 404, always with the host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from fleet.docker.wire import (
    ContainerOutput,
    demultiplex_stream,
    encode_registry_auth,
    error_message,
    label_filters,
    minimum_version_from_error,
    negotiate_api_version,
    parse_api_version,
    pull_progress_error,
    raw_stream,
    split_image_reference,
)
from fleet.errors import DockerError, DockerNotFoundError
from fleet.transport.http_over_ssh import MAX_CHANNELS, SSHChannelTransport
from fleet.transport.ssh import HostConnection

DEFAULT_TIMEOUT = 30.0
PULL_TIMEOUT = 900.0
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

JSONObject = dict[str, Any]
PullProgress = Callable[[JSONObject], None]


def _segment(value: str) -> str:
    """A container id or name as one path segment."""
    return quote(value, safe="")


class DockerClient:
    """The Docker Engine API of one host."""

    def __init__(self, host: str, transport: httpx.AsyncBaseTransport, *,
                 timeout: float = DEFAULT_TIMEOUT, endpoint: str = "the Docker socket",
                 api_version: str | None = None) -> None:
        """`api_version` pins the version and skips negotiation (one round trip less)."""
        self.host = host
        self.timeout = timeout
        self._endpoint = endpoint
        # Deadlines are ours (asyncio.timeout per call), so httpx's own timeouts are off.
        self._http = httpx.AsyncClient(transport=transport, base_url="http://docker",
                                       timeout=None)
        self._api_version = api_version
        self._negotiation = asyncio.Lock()

    @classmethod
    def over_ssh(cls, connection: HostConnection, *, max_channels: int = MAX_CHANNELS,
                 timeout: float = DEFAULT_TIMEOUT, api_version: str | None = None
                 ) -> DockerClient:
        """The host's Docker socket, reached over channels of its one SSH connection."""
        socket_path = connection.target.docker_socket
        transport = SSHChannelTransport(connection.ssh, socket_path, max_channels=max_channels)
        return cls(connection.name, transport, timeout=timeout, endpoint=socket_path,
                   api_version=api_version)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    async def api_version(self) -> str:
        """The API version used with this daemon, negotiated once and remembered.

        Asked with GET /_ping (its API-Version header, as the docker CLI does): /version
        makes dockerd query containerd and costs several times more. A daemon whose minimum
        is above our choice says so on the first call, which is then resent (see _send).
        """
        async with self._negotiation:
            if self._api_version is None:
                response = await self._call("GET", "/_ping", versioned=False)
                server_version = response.headers.get("API-Version")
                if server_version is None:  # daemons older than 1.25 don't send it
                    self._api_version = negotiate_api_version(await self.version())
                else:
                    self._api_version = negotiate_api_version({"ApiVersion": server_version})
        return self._api_version

    async def _send(self, method: str, path: str, *, versioned: bool, stream: bool = False,
                    **request_args: Any) -> httpx.Response:
        """Send one request; if the daemon refuses our API version as too old, adopt its
        minimum and send it again."""
        for attempt in (1, 2):
            url = f"/v{await self.api_version()}{path}" if versioned else path
            request = self._http.build_request(method, url, **request_args)
            response = await self._http.send(request, stream=stream)
            if attempt == 1 and versioned and response.status_code == 400:
                refusal = error_message(await response.aread(), 400, "")
                minimum = minimum_version_from_error(refusal)
                if minimum:
                    await response.aclose()
                    self._api_version = minimum
                    continue
            return response
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
        except httpx.TransportError as exc:
            raise DockerError(
                self.host, f"{what}: cannot talk to the Docker daemon at {self._endpoint} "
                f"over SSH ({exc or type(exc).__name__}; is dockerd running there, and "
                "AllowStreamLocalForwarding not off in sshd_config?)") from exc

    def _raise_for_status(self, what: str, response: httpx.Response, body: bytes) -> None:
        if response.status_code < 400:
            return
        message = f"{what}: {error_message(body, response.status_code, response.reason_phrase)}"
        error_type = DockerNotFoundError if response.status_code == 404 else DockerError
        raise error_type(self.host, message, response.status_code)

    async def _call(self, method: str, path: str, *, versioned: bool = True,
                    params: Mapping[str, Any] | None = None, body: Any = None,
                    headers: Mapping[str, str] | None = None,
                    timeout: float | None = None) -> httpx.Response:
        """One request with its body read; raises DockerError on any failure or 4xx/5xx."""
        what = f"{method} {path}"
        async with self._deadline(what, timeout):
            response = await self._send(method, path, versioned=versioned, params=params,
                                        json=body, headers=headers)
            self._raise_for_status(what, response, response.content)
        return response

    def _json(self, what: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise DockerError(self.host, f"{what}: the daemon's answer is not JSON",
                              response.status_code) from exc

    async def _call_json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(f"{method} {path}", await self._call(method, path, **kwargs))

    # -- daemon -----------------------------------------------------------------------------

    async def version(self) -> JSONObject:
        result: JSONObject = await self._call_json("GET", "/version", versioned=False)
        return result

    # -- containers -------------------------------------------------------------------------

    async def list_containers(self, *, all: bool = True,
                              labels: Mapping[str, str | None] | Sequence[str] | None = None
                              ) -> list[JSONObject]:
        """GET /containers/json; `labels` keeps containers carrying all of them."""
        params: dict[str, Any] = {"all": all}
        if labels:
            params["filters"] = label_filters(labels)
        result: list[JSONObject] = await self._call_json("GET", "/containers/json",
                                                         params=params)
        return result

    async def inspect_container(self, container: str) -> JSONObject:
        result: JSONObject = await self._call_json(
            "GET", f"/containers/{_segment(container)}/json")
        return result

    async def create_container(self, name: str, body: Mapping[str, Any]) -> JSONObject:
        """POST /containers/create; returns {"Id": ..., "Warnings": [...]}."""
        result: JSONObject = await self._call_json(
            "POST", "/containers/create", params={"name": name}, body=dict(body))
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
            "POST", f"/containers/{_segment(container)}/update", body=dict(body))
        return result

    async def container_logs(self, container: str, *, tail: int | None = 100,
                             timestamps: bool = False) -> ContainerOutput:
        """The last `tail` lines of stdout and stderr (all of them when tail is None)."""
        path = f"/containers/{_segment(container)}/logs"
        params = {"stdout": True, "stderr": True, "timestamps": timestamps,
                  "tail": "all" if tail is None else tail}
        response = await self._call("GET", path, params=params)
        return await self._split_output(response, container)

    async def _split_output(self, response: httpx.Response, container: str) -> ContainerOutput:
        # API >= 1.42 labels the stream; before that only the container's Tty setting tells.
        if response.headers.get("content-type", "").startswith(MULTIPLEXED_STREAM):
            return demultiplex_stream(response.content)
        if parse_api_version(await self.api_version()) >= (1, 42):
            return raw_stream(response.content)
        config = (await self.inspect_container(container)).get("Config") or {}
        tty = bool(config.get("Tty"))
        return raw_stream(response.content) if tty else demultiplex_stream(response.content)

    # -- networks ---------------------------------------------------------------------------

    async def list_networks(self) -> list[JSONObject]:
        result: list[JSONObject] = await self._call_json("GET", "/networks")
        return result

    async def create_network(self, body: Mapping[str, Any]) -> JSONObject:
        result: JSONObject = await self._call_json("POST", "/networks/create", body=dict(body))
        return result

    async def connect_network(self, network: str, container: str,
                              endpoint: Mapping[str, Any] | None = None) -> None:
        """Attach a (created, not yet started) container to one more network."""
        await self._call("POST", f"/networks/{_segment(network)}/connect",
                         body={"Container": container, "EndpointConfig": dict(endpoint or {})})

    # -- images -----------------------------------------------------------------------------

    async def list_images(self) -> list[JSONObject]:
        """GET /images/json: every image with its RepoTags and RepoDigests."""
        result: list[JSONObject] = await self._call_json("GET", "/images/json")
        return result

    async def distribution_inspect(self, reference: str, *,
                                   auth: Mapping[str, str] | None = None) -> str:
        """The digest `reference` resolves to in its registry, asked through the host's daemon."""
        headers = {"X-Registry-Auth": encode_registry_auth(auth)} if auth else None
        result = await self._call_json(
            "GET", f"/distribution/{quote(reference, safe='/:@')}/json", headers=headers)
        digest = (result.get("Descriptor") or {}).get("digest")
        if not digest:
            raise DockerError(self.host, f"the registry gave no digest for {reference}")
        return str(digest)

    async def pull_image(self, reference: str, *, auth: Mapping[str, str] | None = None,
                         progress: PullProgress | None = None,
                         timeout: float = PULL_TIMEOUT) -> str | None:
        """Pull `reference` on the host, following the daemon's JSON-lines progress stream.

        Credentials travel only in the X-Registry-Auth header of this request.
        Returns the pulled digest when the daemon reports one.
        """
        name, tag = split_image_reference(reference)
        what = f"pull {reference}"
        headers = {"X-Registry-Auth": encode_registry_auth(auth)} if auth else {}
        digest: str | None = None
        async with self._deadline(what, timeout):
            response = await self._send("POST", "/images/create", versioned=True, stream=True,
                                        params={"fromImage": name, "tag": tag},
                                        headers=headers)
            try:
                if response.status_code >= 400:
                    self._raise_for_status(what, response, await response.aread())
                async for line in response.aiter_lines():
                    event = self._pull_event(what, line)
                    if event is None:
                        continue
                    if progress is not None:
                        progress(event)
                    status = str(event.get("status", ""))
                    if status.startswith("Digest: "):
                        digest = status.removeprefix("Digest: ").strip()
            finally:
                await response.aclose()
        return digest

    def _pull_event(self, what: str, line: str) -> JSONObject | None:
        if not line.strip():
            return None
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise DockerError(self.host, f"{what}: unreadable progress line {line!r}") from exc
        if not isinstance(event, dict):
            return None
        failure = pull_progress_error(event)
        if failure:
            raise DockerError(self.host, f"{what}: {failure}")
        return event
