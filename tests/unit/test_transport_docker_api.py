"""DockerClient against httpx.MockTransport: URLs, headers, error mapping, streams."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from http_fake import MockTransport

from fleet.docker.client import DockerClient
from fleet.errors import DockerError, DockerNotFoundError

Handler = Callable[[httpx.Request], httpx.Response]
DIGEST = "sha256:" + "d1" * 32


def run(handler: Handler, scenario: Callable[[DockerClient], Any], *,
        timeout: float = 5.0) -> Any:
    async def main() -> Any:
        client = DockerClient("web-1", MockTransport(handler), timeout=timeout)
        try:
            return await scenario(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def daemon(routes: dict[str, Handler], seen: list[httpx.Request] | None = None,
           api_version: str = "1.43") -> Handler:
    """A dockerd answering `routes`, with its API-Version header on every answer."""
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/_ping":
            response = httpx.Response(200, text="OK")
        elif (route := routes.get(f"{request.method} {request.url.path}")) is None:
            response = httpx.Response(
                404, json={"message": f"page not found: {request.url.path}"})
        else:
            response = route(request)
        response.headers.setdefault("API-Version", api_version)
        return response
    return handle


def test_first_requests_go_out_together_without_negotiating() -> None:
    seen: list[httpx.Request] = []
    handler = daemon({"GET /v1.41/containers/json": lambda r: httpx.Response(200, json=[])},
                     seen)

    async def scenario(client: DockerClient) -> str:
        await asyncio.gather(*(client.list_containers() for _ in range(5)))
        return await client.api_version()

    assert run(handler, scenario) == "1.41"  # min(the daemon's 1.43, fleet's 1.41)
    assert [request.url.path for request in seen] == ["/v1.41/containers/json"] * 5


def test_older_daemon_is_spoken_to_in_its_version_once_known() -> None:
    seen: list[httpx.Request] = []
    routes: dict[str, Handler] = {
        "GET /v1.41/networks": lambda r: httpx.Response(200, json=[]),
        "GET /v1.40/networks": lambda r: httpx.Response(200, json=[]),
    }

    async def scenario(client: DockerClient) -> str:
        await client.list_networks()
        await client.list_networks()
        return await client.api_version()

    # a daemon that serves a newer version than its own (a proxy): its header still counts
    assert run(daemon(routes, seen, api_version="1.40"), scenario) == "1.40"
    assert [r.url.path for r in seen] == ["/v1.41/networks", "/v1.40/networks"]


def test_daemon_refusing_our_version_as_too_new_is_asked_again_in_its_own() -> None:
    seen: list[httpx.Request] = []
    refusal = "client version 1.41 is too new. Maximum supported API version is 1.40"
    routes: dict[str, Handler] = {
        "GET /v1.41/networks": lambda r: httpx.Response(400, json={"message": refusal}),
        "GET /v1.40/networks": lambda r: httpx.Response(200, json=[{"Name": "x"}]),
    }

    async def scenario(client: DockerClient) -> tuple[Any, str]:
        return await client.list_networks(), await client.api_version()

    answer = run(daemon(routes, seen, api_version="1.40"), scenario)
    assert answer == ([{"Name": "x"}], "1.40")
    assert [r.url.path for r in seen] == ["/v1.41/networks", "/v1.40/networks"]


def test_daemon_older_than_125_refusing_in_its_old_words_is_asked_again() -> None:
    seen: list[httpx.Request] = []

    def old_daemon(request: httpx.Request) -> httpx.Response:
        seen.append(request)  # no API-Version header: daemons before 1.25 send none
        if request.url.path == "/v1.24/networks":
            return httpx.Response(200, json=[])
        return httpx.Response(400, text="client is newer than server (client API version: "
                                        "1.41, server API version: 1.24)")

    async def scenario(client: DockerClient) -> str:
        await client.list_networks()
        return await client.api_version()

    assert run(old_daemon, scenario) == "1.24"
    assert [r.url.path for r in seen] == ["/v1.41/networks", "/v1.24/networks"]


def test_daemon_refusing_our_version_is_asked_again_with_its_minimum() -> None:
    seen: list[httpx.Request] = []
    refusal = ("client version 1.41 is too old. Minimum supported API version is 1.44, "
               "please upgrade your client to a newer version")
    routes: dict[str, Handler] = {
        "GET /v1.41/networks": lambda r: httpx.Response(400, json={"message": refusal}),
        "GET /v1.44/networks": lambda r: httpx.Response(200, json=[{"Name": "x"}]),
    }

    async def scenario(client: DockerClient) -> tuple[Any, str]:
        return await client.list_networks(), await client.api_version()

    # the header (the daemon's newest, 1.51) does not undo the minimum it demanded
    answer = run(daemon(routes, seen, api_version="1.51"), scenario)
    assert answer == ([{"Name": "x"}], "1.44")
    assert [r.url.path for r in seen] == ["/v1.41/networks", "/v1.44/networks"]


def test_a_second_refusal_is_the_error() -> None:
    seen: list[httpx.Request] = []

    def too_new(version: str, maximum: str) -> Handler:
        message = f"client version {version} is too new. Maximum supported API version is "
        return lambda r: httpx.Response(400, json={"message": message + maximum})

    routes = {"GET /v1.41/networks": too_new("1.41", "1.40"),
              "GET /v1.40/networks": too_new("1.40", "1.39")}
    with pytest.raises(DockerError, match="too new") as caught:
        run(daemon(routes, seen), lambda c: c.list_networks())
    assert caught.value.status == 400
    assert [r.url.path for r in seen] == ["/v1.41/networks", "/v1.40/networks"]


def test_answer_without_version_header_keeps_the_version_it_accepted() -> None:
    seen: list[httpx.Request] = []

    def no_header(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    async def scenario(client: DockerClient) -> str:
        await client.list_networks()
        await client.list_networks()
        return await client.api_version()

    assert run(no_header, scenario) == "1.41"
    assert [r.url.path for r in seen] == ["/v1.41/networks"] * 2


def test_version_asked_before_any_call_is_negotiated_with_ping() -> None:
    seen: list[httpx.Request] = []
    assert run(daemon({}, seen, api_version="1.40"), lambda c: c.api_version()) == "1.40"
    assert [r.url.path for r in seen] == ["/_ping"]


def test_daemon_without_version_header_is_asked_for_version() -> None:
    seen: list[httpx.Request] = []

    def old_daemon(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/_ping":
            return httpx.Response(200, text="OK")
        if request.url.path == "/version":
            return httpx.Response(200, json={"ApiVersion": "1.24"})
        return httpx.Response(200, json=[])

    assert run(old_daemon, lambda c: c.api_version()) == "1.24"
    assert [r.url.path for r in seen] == ["/_ping", "/version"]


def test_list_containers_sends_label_filters() -> None:
    seen: list[httpx.Request] = []
    handler = daemon({"GET /v1.41/containers/json": lambda r: httpx.Response(200, json=[])},
                     seen)
    run(handler, lambda c: c.list_containers(labels={"fleet.project": "demo"}))
    query = seen[-1].url.params
    assert query["all"] == "true"
    assert json.loads(query["filters"]) == {"label": ["fleet.project=demo"]}


def test_not_found_is_docker_not_found_with_daemon_message() -> None:
    handler = daemon({"GET /v1.41/containers/web/json": lambda r: httpx.Response(
        404, json={"message": "No such container: web"})})
    with pytest.raises(DockerNotFoundError) as caught:
        run(handler, lambda c: c.inspect_container("web"))
    assert caught.value.status == 404
    assert caught.value.host == "web-1"
    assert "No such container: web" in str(caught.value)


def test_server_error_is_docker_error() -> None:
    handler = daemon({"POST /v1.41/containers/create": lambda r: httpx.Response(
        409, json={"message": 'Conflict. The container name "/web" is already in use'})})
    with pytest.raises(DockerError) as caught:
        run(handler, lambda c: c.create_container("web", {"Image": "demo/web:v1"}))
    assert caught.value.status == 409
    assert "already in use" in caught.value.reason


def test_create_sends_name_and_body() -> None:
    seen: list[httpx.Request] = []
    handler = daemon({"POST /v1.41/containers/create": lambda r: httpx.Response(
        201, json={"Id": "abc", "Warnings": []})}, seen)
    result = run(handler, lambda c: c.create_container("web-1", {"Image": "demo/web:v1"}))
    assert result["Id"] == "abc"
    assert seen[-1].url.params["name"] == "web-1"
    assert json.loads(seen[-1].content) == {"Image": "demo/web:v1"}


def test_start_already_started_is_fine() -> None:
    handler = daemon({"POST /v1.41/containers/web/start": lambda r: httpx.Response(304)})
    run(handler, lambda c: c.start_container("web"))


def test_pull_streams_progress_and_sends_auth() -> None:
    seen: list[httpx.Request] = []
    lines = [{"status": "Pulling from demo/web", "id": "v1"},
             {"status": "Digest: sha256:abc"}, {"status": "Status: Downloaded newer image"}]
    body = "\r\n".join(json.dumps(line) for line in lines).encode()
    handler = daemon({"POST /v1.41/images/create": lambda r: httpx.Response(200, content=body)},
                     seen)
    events: list[dict[str, Any]] = []
    auth = {"username": "u", "password": "p", "serveraddress": "reg:5000"}
    digest = run(handler, lambda c: c.pull_image("reg:5000/demo/web:v1", auth=auth,
                                                 progress=events.append))
    assert digest == "sha256:abc"
    assert events == lines
    request = seen[-1]
    assert request.url.params["fromImage"] == "reg:5000/demo/web"
    assert request.url.params["tag"] == "v1"
    assert json.loads(base64.urlsafe_b64decode(request.headers["X-Registry-Auth"])) == auth


def test_pull_error_line_raises() -> None:
    body = b'{"status":"Pulling"}\n{"errorDetail":{"message":"manifest unknown"},"error":"x"}\n'
    handler = daemon({"POST /v1.41/images/create": lambda r: httpx.Response(200, content=body)})
    with pytest.raises(DockerError, match="pull reg/demo/web:v9: manifest unknown"):
        run(handler, lambda c: c.pull_image("reg/demo/web:v9"))


def test_distribution_inspect_returns_digest() -> None:
    seen: list[httpx.Request] = []
    handler = daemon({"GET /v1.41/distribution/reg:5000/demo/web:v1/json": lambda r:
                      httpx.Response(200, json={"Descriptor": {"digest": DIGEST}})}, seen)
    assert run(handler, lambda c: c.distribution_inspect("reg:5000/demo/web:v1")) == DIGEST
    assert "X-Registry-Auth" not in seen[-1].headers


def multiplexed(*frames: tuple[int, bytes]) -> bytes:
    return b"".join(struct.pack(">BxxxL", sid, len(data)) + data for sid, data in frames)


def test_logs_on_api_141_asks_the_container_for_tty() -> None:
    routes: dict[str, Handler] = {
        "GET /v1.41/containers/web/logs": lambda r: httpx.Response(
            200, content=multiplexed((1, b"up\n"), (2, b"warn\n")),
            headers={"content-type": "application/vnd.docker.raw-stream"}),
        "GET /v1.41/containers/web/json": lambda r: httpx.Response(
            200, json={"Id": "web", "Config": {"Tty": False}}),
    }
    output = run(daemon(routes), lambda c: c.container_logs("web", tail=10))
    assert output.stdout == "up\n"
    assert output.stderr == "warn\n"


def test_call_timeout_is_docker_error() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={})

    async def main() -> None:
        client = DockerClient("web-1", MockTransport(slow), timeout=0.2)
        with pytest.raises(DockerError, match=r"no answer within 0\.2s"):
            await client.list_networks()
        await client.aclose()

    asyncio.run(main())


def test_unreachable_daemon_is_docker_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("channel open refused")

    with pytest.raises(DockerError, match="cannot talk to the Docker daemon") as caught:
        run(refuse, lambda c: c.api_version())
    assert caught.value.status == 0


def test_container_ids_are_one_path_segment() -> None:
    seen: list[httpx.Request] = []
    handler = daemon({}, seen)
    with pytest.raises(DockerNotFoundError):
        run(handler, lambda c: c.remove_container("../../images/x", force=True))
    assert seen[-1].url.raw_path.startswith(b"/v1.41/containers/..%2F..%2Fimages%2Fx?")


def test_pinned_api_version_skips_negotiation() -> None:
    seen: list[httpx.Request] = []
    handler = daemon({"GET /v1.40/networks": lambda r: httpx.Response(200, json=[])}, seen)

    async def main() -> None:
        client = DockerClient("web-1", MockTransport(handler), api_version="1.40")
        await client.list_networks()
        await client.aclose()

    asyncio.run(main())
    assert [request.url.path for request in seen] == ["/v1.40/networks"]
