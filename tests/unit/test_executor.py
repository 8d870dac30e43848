"""The executor against httpx.MockTransport answering with recorded dockerd answers: it sends
exactly the plan's steps, in order, and on a failure exactly their undos."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from docker_fixtures import body, load
from http_fake import MockTransport
from planner_support import DIGEST_MOVED, WEB_V1, plan_of, project, recorded, snapshot

from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import DesiredState, desired_state
from fleet.core.plan import Action, network_action, pull_action, volume_action
from fleet.docker.client import DockerClient
from fleet.docker.registry_auth import RegistryAuth
from fleet.engine.executor import ExecutionResult, Executor

OLD_ID = body("inspect_running_healthy")["Id"]
NEW_ID = "f" * 64
Route = Callable[[httpx.Request], httpx.Response]


def answer(fixture: str) -> httpx.Response:
    """A recorded answer, as dockerd sent it."""
    record = load(fixture)
    status = int(record["status"])
    data = body(fixture)
    if isinstance(data, bytes):
        return httpx.Response(status, content=data)
    if isinstance(data, str):
        return httpx.Response(status, text=data)
    return httpx.Response(status, json=data)


class Engine:
    """Answers each call from `routes` ("METHOD /path" -> response), records the calls."""

    def __init__(self, routes: dict[str, Callable[[], httpx.Response]]) -> None:
        self.routes = routes
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1.41")
        query = "&".join(f"{k}={v}" for k, v in request.url.params.items()
                         if k in ("name", "fromImage", "tag"))
        call = f"{request.method} {path}" + (f"?{query}" if query else "")
        self.calls.append(call)
        for prefix, respond in self.routes.items():
            if call.startswith(prefix):
                return respond()
        return httpx.Response(204)


def run(state: DesiredState, engine: Engine, actions: list[Action]) -> ExecutionResult:
    async def go() -> ExecutionResult:
        docker = DockerClient("h1", MockTransport(engine), api_version="1.41")
        executor = Executor(docker, state.secrets, RegistryAuth({}, state.secrets), "shop")
        try:
            return await executor.run("h1", actions)
        finally:
            await docker.aclose()
    return asyncio.run(go())


def created(container_id: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(201, json={"Id": container_id, "Warnings": []})


def healthy(container_id: str) -> Callable[[], httpx.Response]:
    data = body("inspect_running_healthy")
    return lambda: httpx.Response(200, json={**data, "Id": container_id})


def _moved_web(tmp_path: Path) -> tuple[DesiredState, list[Action]]:
    state = project(tmp_path, "web")
    observed = snapshot(recorded("inspect_running_healthy", state, "web"),
                        networks=("shop_default", "shop_backend"))
    plan = plan_of(state, observed, moved={WEB_V1: DIGEST_MOVED})
    return state, [a for a in plan.actions if a.kind == "recreate"]


def test_a_stop_first_replacement_sends_its_steps_in_order(tmp_path: Path) -> None:
    state, actions = _moved_web(tmp_path)
    engine = Engine({"POST /containers/create": created(NEW_ID),
                     f"GET /containers/{NEW_ID}/json": healthy(NEW_ID)})
    result = run(state, engine, actions)
    assert result.ok and result.created == {"shop-web-1": NEW_ID}
    assert engine.calls == [
        f"POST /containers/{OLD_ID}/rename?name=shop-web-1--r1-old",
        f"POST /containers/{OLD_ID}/stop",
        "POST /containers/create?name=shop-web-1",
        "POST /networks/shop_default/connect",
        f"POST /containers/{NEW_ID}/start",  # by the id its create returned, not the name
        f"GET /containers/{NEW_ID}/json",
        f"DELETE /containers/{OLD_ID}",
    ]


def test_a_replacement_that_never_gets_healthy_is_undone(tmp_path: Path) -> None:
    state, actions = _moved_web(tmp_path)
    unhealthy = body("inspect_unhealthy")
    engine = Engine({"POST /containers/create": created(NEW_ID),
                     f"GET /containers/{NEW_ID}/json":
                         lambda: httpx.Response(200, json={**unhealthy, "Id": NEW_ID}),
                     f"GET /containers/{NEW_ID}/logs": lambda: answer("logs_unhealthy")})
    result = run(state, engine, actions)
    assert engine.calls[5:] == [
        f"GET /containers/{NEW_ID}/json",
        f"GET /containers/{NEW_ID}/logs",
        f"GET /containers/{NEW_ID}/json",  # API 1.41 logs: is it a TTY? (dockerd 20.10)
        # the undos, newest first: the new container goes, the old one comes back
        f"DELETE /containers/{NEW_ID}",
        f"POST /containers/{OLD_ID}/start",
        f"POST /containers/{OLD_ID}/rename?name=shop-web-1",
    ]
    assert result.previous_kept and result.done == [] and result.failed == actions[0]
    assert result.error is not None
    assert result.error.startswith("recreate shop-web-1: container running, health unhealthy")
    assert "last log lines: web v3: listening on 8080" in result.error


def test_a_taken_name_fails_with_dockers_reason_and_undoes_nothing_it_did_not_do(
        tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    actions = list(plan_of(state, snapshot(networks=("shop_default", "shop_backend"),
                                           images=("x",))).actions)
    creates = [a for a in actions if a.kind == "create"]
    engine = Engine({"POST /containers/create": lambda: answer("error_409_create_name_taken")})
    result = run(state, engine, creates)
    assert engine.calls == ["POST /containers/create?name=shop-web-1"]
    assert not result.previous_kept  # nothing was replaced
    message = json.loads(json.dumps(body("error_409_create_name_taken")))["message"]
    assert result.error is not None and message in result.error


def test_a_network_created_meanwhile_is_fine(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    engine = Engine({"POST /networks/create": lambda: answer("error_409_network_duplicate")})
    result = run(state, engine, [network_action("h1", state.networks["shop_default"])])
    assert result.ok and engine.calls == ["POST /networks/create"]


def _with_volume(tmp_path: Path) -> DesiredState:
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 198.18.9.1}\n")
    (tmp_path / "pb.yml").write_text(
        "project: shop\ninventory: inv.yml\nvolumes:\n  data: {labels: "
        "{com.example.backup: daily}}\nnetworks:\n  edge:\n    internal: true\n"
        "    enable_ipv6: false\n    driver_opts: {com.docker.network.bridge.enable_icc: "
        "'true'}\n    labels: {com.example.tier: edge}\n    ipam:\n      config:\n"
        "        - {subnet: 172.28.0.0/16, ip_range: 172.28.5.0/24, gateway: 172.28.5.254, "
        "aux_addresses: {host1: 172.28.1.5}}\nservices:\n  web: {image: busybox, "
        "volumes: ['data:/d'], networks: [edge]}\n")
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))


def test_networks_and_volumes_are_created_with_the_bodies_dockerd_was_recorded_with(
        tmp_path: Path) -> None:
    state = _with_volume(tmp_path)
    sent: list[object] = []

    engine = Engine({"POST /networks/create": lambda: answer("network_create_ipam"),
                     "POST /volumes/create": lambda: answer("volume_create")})

    def recording(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return engine(request)

    actions = [network_action("h1", state.networks["shop_edge"]),
               volume_action("h1", state.volumes["shop_data"])]
    result = asyncio.run(_run_with(state, recording, actions))
    assert result.ok, result.error
    assert sent == [load("network_create_ipam")["request_body"],
                    load("volume_create")["request_body"]]


def test_a_volume_name_taken_by_another_project_fails_its_creation(tmp_path: Path) -> None:
    """The Engine answers a taken name with the volume that has it (recorded): if that one
    is not the project's, fleet must not mount it as its own."""
    state = _with_volume(tmp_path)
    taken = load("volume_create_name_taken")
    taken["body"]["Labels"] = {"fleet.project": "blog"}
    engine = Engine({"POST /volumes/create": lambda: httpx.Response(201, json=taken["body"])})
    result = run(state, engine, [volume_action("h1", state.volumes["shop_data"])])
    assert result.error == ("volume shop_data: h1: volume shop_data exists on the host and is "
                            "not project shop's; fleet won't use it as its own")
    ours = Engine({"POST /volumes/create": lambda: answer("volume_create_name_taken")})
    assert run(state, ours, [volume_action("h1", state.volumes["shop_data"])]).ok


async def _run_with(state: DesiredState, handler: Route, actions: list[Action]
                    ) -> ExecutionResult:
    docker = DockerClient("h1", MockTransport(handler), api_version="1.41")
    executor = Executor(docker, state.secrets, RegistryAuth({}, state.secrets), "shop")
    try:
        return await executor.run("h1", actions)
    finally:
        await docker.aclose()


def test_a_pull_that_fails_in_its_stream_fails_the_action(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    image = "198.18.6.1:5000/demo/broken:v1"
    engine = Engine({"POST /images/create": lambda: answer("pull_failing_stream")})
    result = run(state, engine, [pull_action("h1", image, None, "shop-web-1")])
    assert engine.calls == ["POST /images/create?fromImage=198.18.6.1:5000/demo/broken&tag=v1"]
    assert result.error is not None and "unknown blob" in result.error
    assert result.failed is not None and result.done == []



def test_a_create_answer_without_an_id_fails_the_action_not_the_run(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    plan = plan_of(state, snapshot(networks=("shop_default", "shop_backend"), images=("x",)))
    engine = Engine({"POST /containers/create": lambda: httpx.Response(201, json={"Oops": 1})})
    result = run(state, engine, [a for a in plan.actions if a.kind == "create"])
    assert result.error == ("create shop-web-1: h1: create shop-web-1: the daemon's answer has "
                            "no container id")
