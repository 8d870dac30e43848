"""observe_host against a fake daemon (httpx.MockTransport): which Engine calls it makes, in
how many round trips, and how many requests it has in flight at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from http_fake import MockTransport

from fleet.core import labels
from fleet.docker.client import DockerClient
from fleet.engine.observe import observe_host
from fleet.transport.http_over_ssh import MAX_CHANNELS

PROJECT = "shop"


def summary(n: int) -> dict[str, Any]:
    return {"Id": f"{n:064x}", "Names": [f"/shop-web-{n}"], "Image": "web:1",
            "State": "running", "Labels": {labels.PROJECT: PROJECT, labels.SERVICE: "web",
                                           labels.REPLICA: str(n)}}


def inspect(n: int) -> dict[str, Any]:
    return {"Id": f"{n:064x}", "Name": f"/shop-web-{n}", "Created": "2026-05-01T12:00:00Z",
            "State": {"Status": "running", "StartedAt": "2026-05-01T12:00:00Z"},
            "Config": {"Image": "web:1", "Labels": summary(n)["Labels"], "Env": []},
            "HostConfig": {}}


class Daemon:
    """Answers as dockerd 20.10 (API-Version 1.41 on every answer), `containers` project
    containers; counts requests in flight."""

    def __init__(self, containers: int, *, lists_meet: int = 0) -> None:
        self.containers = containers
        self.seen: list[str] = []
        self.in_flight = self.peak = 0
        # the lists wait until this many of them are in flight: they must go out together
        self._lists_meet = lists_meet
        self._lists_in: list[str] = []
        self._met = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen.append(path)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return httpx.Response(200, json=await self._answer(path),
                                  headers={"API-Version": "1.41"})
        finally:
            self.in_flight -= 1

    async def _answer(self, path: str) -> Any:
        if path in ("/v1.41/containers/json", "/v1.41/networks", "/v1.41/images/json"):
            self._lists_in.append(path)
            if len(self._lists_in) >= self._lists_meet:
                self._met.set()
            await asyncio.wait_for(self._met.wait(), 2)
            if path == "/v1.41/containers/json":
                return [summary(n) for n in range(self.containers)]
            return []
        if path.startswith("/v1.41/containers/"):
            await asyncio.sleep(0.001)  # long enough for inspects to overlap
            return inspect(int(path.split("/")[3], 16))
        return {"message": f"unexpected {path}"}


def observe(daemon: Daemon, *, channels: int = 8, with_images: bool = False) -> Any:
    async def main() -> Any:
        client = DockerClient("web-1", MockTransport(daemon), channels=channels)
        try:
            snapshot = await observe_host("web-1", client, PROJECT, with_images=with_images)
        finally:
            await client.aclose()
        return snapshot
    return asyncio.run(main())


@pytest.mark.parametrize("with_images", [False, True])
def test_lists_are_the_first_round_trip_and_leave_together(with_images: bool) -> None:
    lists = 3 if with_images else 2
    daemon = Daemon(2, lists_meet=lists)  # a list answered alone would time out
    snapshot = observe(daemon, with_images=with_images)
    assert snapshot.api_version == "1.41"
    assert len(daemon.seen) == lists + 2  # no _ping: the lists' answers tell the version
    assert all("/containers/0" not in path for path in daemon.seen[:lists])
    assert sorted(daemon.seen[lists:]) == [f"/v1.41/containers/{n:064x}/json" for n in (0, 1)]


@pytest.mark.parametrize("channels", [8, 3])
def test_200_containers_are_inspected_as_many_at_once_as_the_client_has_channels(
        channels: int) -> None:
    daemon = Daemon(200)
    snapshot = observe(daemon, channels=channels)
    assert len([c for c in snapshot.containers if c.created]) == 200  # every one inspected
    assert len(daemon.seen) == 2 + 200
    assert daemon.peak == channels


def test_the_client_over_ssh_has_its_transports_channel_limit() -> None:
    connection = SimpleNamespace(name="web-1", ssh=None,  # no channel is opened here
                                 target=SimpleNamespace(docker_socket="/run/docker.sock"))
    assert DockerClient.over_ssh(connection).channels == MAX_CHANNELS  # type: ignore[arg-type]
    assert DockerClient.over_ssh(connection, max_channels=3).channels == 3  # type: ignore[arg-type]
