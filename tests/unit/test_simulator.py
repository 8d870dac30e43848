"""The Engine API simulator, driven by fleet's own DockerClient over a Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fleet.docker.client import DockerClient
from fleet.errors import DockerError, DockerNotFoundError
from fleet.lab.simulator.engine import Latencies, SimulatedEngine
from fleet.lab.simulator.http import HostServer, serve_connection
from fleet.lab.simulator.registry import LabRegistry, RegistryError, ResolvedImage
from fleet.transport.http import HTTPPool, unix_opener

REGISTRY = "198.18.1.1:5000"
WEB = f"{REGISTRY}/demo/web"


def _image(tag: str, *, unhealthy: bool = False, healthcheck: bool = False) -> ResolvedImage:
    labels = {"org.fleet.lab.health": "fail"} if unhealthy else {}
    config: dict[str, Any] = {"Env": ["PATH=/bin", f"APP_VERSION={tag}"],
                              "Entrypoint": ["/bin/sh", "/entrypoint.sh"], "Labels": labels,
                              "ExposedPorts": {"8080/tcp": {}}}
    if healthcheck:
        config["Healthcheck"] = {"Test": ["CMD", "true"]}
    number = {"v1": "1", "v2": "2", "v3": "3"}[tag]
    return ResolvedImage(repository=WEB, digest="sha256:" + number * 64,
                         media_type="application/vnd.docker.distribution.manifest.v2+json",
                         size=500, image_id="sha256:" + chr(ord("a") + int(number)) * 64,
                         config={"architecture": "amd64", "os": "linux", "config": config},
                         layers=2)


class FakeRegistry(LabRegistry):
    def __init__(self) -> None:
        super().__init__(REGISTRY)
        self.images = {"v1": _image("v1"), "v2": _image("v2"),
                       "v3": _image("v3", unhealthy=True)}
        self.asked = 0

    async def _resolve(self, name: str, reference: str) -> ResolvedImage:
        self.asked += 1
        if name != WEB:
            raise RegistryError(500, f"{name}: no such host")
        for image in self.images.values():
            if reference == image.digest:
                return image
        if reference not in self.images:
            raise RegistryError(404, f"manifest for {name}:{reference} not found: manifest "
                                     "unknown: manifest unknown")
        return self.images[reference]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[DockerClient, SimulatedEngine, Clock], Awaitable[None]]


def simulated(scenario: Scenario) -> Callable[[Path], None]:
    """A test running `scenario` against one simulated host on a socket in tmp_path."""
    async def main(path: Path) -> None:
        clock = Clock()
        engine = SimulatedEngine("h1", Latencies(pull=0.0, health=5.0), clock)
        host = HostServer(engine, FakeRegistry())
        server = await asyncio.start_unix_server(lambda r, w: serve_connection(host, r, w),
                                                 path=str(path))
        client = DockerClient("h1", HTTPPool(unix_opener(str(path))), timeout=5)
        try:
            await scenario(client, engine, clock)
        finally:
            await client.aclose()
            server.close()
            await host.registry.aclose()

    def test(tmp_path: Path) -> None:
        asyncio.run(main(tmp_path / "docker.sock"))

    test.__name__ = scenario.__name__
    return test


async def _run_web(client: DockerClient, tag: str = "v1", name: str = "web-1",
                   **extra: Any) -> str:
    await client.pull_image(f"{WEB}:{tag}")
    body = {"Image": f"{WEB}:{tag}", "Labels": {"fleet.project": "p"},
            "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
            **extra}
    created = await client.create_container(name, body)
    await client.start_container(created["Id"])
    return str(created["Id"])


@simulated
async def test_pull_then_run_a_container_as_dockerd_reports_it(
        client: DockerClient, engine: SimulatedEngine, clock: Clock) -> None:
    assert await client.api_version() == "1.41"
    digest = await client.distribution_inspect(f"{WEB}:v1")
    assert digest == "sha256:" + "1" * 64
    assert await client.pull_image(f"{WEB}:v1") == digest
    images = await client.list_images()
    assert images[0]["RepoTags"] == [f"{WEB}:v1"]
    assert images[0]["RepoDigests"] == [f"{WEB}@{digest}"]
    container_id = await _run_web(client, "v1", Env=["A=1"])
    listed = await client.list_containers(labels={"fleet.project": "p"})
    assert [c["Names"] for c in listed] == [["/web-1"]]
    assert listed[0]["State"] == "running"
    assert listed[0]["Ports"][0]["PublicPort"] == 8080
    assert await client.list_containers(labels={"fleet.project": "other"}) == []
    inspected = await client.inspect_container("web-1")
    assert inspected["Id"] == container_id
    assert inspected["Config"]["Env"] == ["PATH=/bin", "APP_VERSION=v1", "A=1"]
    assert inspected["Config"]["Image"] == f"{WEB}:v1"
    assert inspected["Image"] == "sha256:" + "b" * 64
    assert "Health" not in inspected["State"]


@simulated
async def test_create_needs_the_image_and_a_free_name(
        client: DockerClient, _engine: SimulatedEngine, _clock: Clock) -> None:
    with pytest.raises(DockerNotFoundError, match="No such image"):
        await client.create_container("x", {"Image": f"{WEB}:v1"})
    await _run_web(client)
    with pytest.raises(DockerError, match="already in use") as raised:
        await client.create_container("web-1", {"Image": f"{WEB}:v1"})
    assert raised.value.status == 409


@simulated
async def test_a_published_port_is_taken_once(
        client: DockerClient, _engine: SimulatedEngine, _clock: Clock) -> None:
    await _run_web(client)
    with pytest.raises(DockerError, match="port is already allocated"):
        await _run_web(client, "v2", name="web-2")
    await client.stop_container("web-1")
    await client.start_container("web-2")
    assert (await client.inspect_container("web-1"))["State"]["Status"] == "exited"


@simulated
async def test_health_follows_the_clock_and_the_knobs(
        client: DockerClient, _engine: SimulatedEngine, clock: Clock) -> None:
    check = {"Test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"], "Retries": 3}
    await _run_web(client, "v1", Healthcheck=check)
    await _run_web(client, "v3", name="broken", Healthcheck=check,
                   HostConfig={})
    assert (await client.inspect_container("web-1"))["State"]["Health"]["Status"] == "starting"
    clock.now += 6
    assert (await client.inspect_container("web-1"))["State"]["Health"]["Status"] == "healthy"
    broken = await client.inspect_container("broken")
    assert broken["State"]["Health"]["Status"] == "unhealthy"
    assert broken["State"]["Health"]["Log"][0]["ExitCode"] == 1


@simulated
async def test_an_exit_knob_makes_a_crash_loop_under_a_restart_policy(
        client: DockerClient, _engine: SimulatedEngine, clock: Clock) -> None:
    await client.pull_image(f"{WEB}:v1")
    for name, policy in (("once", "no"), ("loop", "always")):
        created = await client.create_container(name, {
            "Image": f"{WEB}:v1", "Env": ["FLEET_SIM_EXIT=3"],
            "HostConfig": {"RestartPolicy": {"Name": policy}}})
        await client.start_container(created["Id"])
    clock.now += 5
    once = await client.inspect_container("once")
    assert (once["State"]["Status"], once["State"]["ExitCode"]) == ("exited", 3)
    loop = await client.inspect_container("loop")
    assert loop["State"]["Status"] == "restarting" and loop["RestartCount"] >= 1
    logs = await client.container_logs("once")
    assert "exiting with code 3" in logs.stderr


@simulated
async def test_rename_update_remove(
        client: DockerClient, _engine: SimulatedEngine, _clock: Clock) -> None:
    await _run_web(client)
    await client.update_container("web-1", {"Memory": 64 * 1024 * 1024})
    assert (await client.inspect_container("web-1"))["HostConfig"]["Memory"] == 64 * 1024 * 1024
    await client.rename_container("web-1", "web-1-old")
    with pytest.raises(DockerError, match="cannot remove a running container"):
        await client.remove_container("web-1-old")
    await client.remove_container("web-1-old", force=True)
    with pytest.raises(DockerNotFoundError):
        await client.inspect_container("web-1-old")


@simulated
async def test_networks_and_volumes(
        client: DockerClient, _engine: SimulatedEngine, _clock: Clock) -> None:
    names = {n["Name"] for n in await client.list_networks()}
    assert names == {"bridge", "host", "none"}
    await client.create_network({"Name": "p_default", "Driver": "bridge",
                                 "Labels": {"com.docker.compose.project": "p"}})
    with pytest.raises(DockerError, match="already exists"):
        await client.create_network({"Name": "p_default"})
    await client.pull_image(f"{WEB}:v1")
    created = await client.create_container("db", {
        "Image": f"{WEB}:v1", "HostConfig": {"NetworkMode": "p_default"},
        "NetworkingConfig": {"EndpointsConfig": {"p_default": {"Aliases": ["db"]}}}})
    await client.create_network({"Name": "p_back"})
    await client.connect_network("p_back", created["Id"])
    inspected = await client.inspect_container("db")
    assert inspected["HostConfig"]["NetworkMode"] == "p_default"
    with pytest.raises(DockerNotFoundError, match="network gone not found"):
        await client.create_container("x", {"Image": f"{WEB}:v1",
                                            "HostConfig": {"NetworkMode": "gone"}})
    volume = await client.create_volume({"Name": "p_data", "Labels": {"a": "b"}})
    assert volume["Name"] == "p_data"
    assert (await client.create_volume({"Name": "p_data"}))["Labels"] == {"a": "b"}
    assert [v["Name"] for v in (await client.list_volumes())["Volumes"]] == ["p_data"]


@simulated
async def test_pull_errors_arrive_before_the_stream(
        client: DockerClient, _engine: SimulatedEngine, _clock: Clock) -> None:
    with pytest.raises(DockerNotFoundError, match="manifest unknown"):
        await client.pull_image(f"{WEB}:v9")
    with pytest.raises(DockerError, match="no such host"):
        await client.pull_image("other.example:5000/x:1")


@simulated
async def test_api_versions_beyond_its_own_are_refused_as_dockerd_does(
        client: DockerClient, _engine: SimulatedEngine, _clock: Clock) -> None:
    with pytest.raises(DockerError, match=r"client version 1\.43 is too new\. Maximum "
                                          r"supported API version is 1\.41"):
        await client._call("GET", "/v1.43/containers/json", versioned=False)
    response, body = await client._call("HEAD", "/_ping", versioned=False)
    assert (response.headers.get("Api-Version"), body) == ("1.41", b"")
