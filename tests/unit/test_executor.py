"""The executor against httpx.MockTransport answering with recorded dockerd answers: it sends
exactly the plan's steps, in order, and on a failure exactly their undos."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from docker_fixtures import body, load
from planner_support import DIGEST_MOVED, WEB_V1, plan_of, project, recorded, snapshot

from fleet.core.desired import DesiredState
from fleet.core.plan import Action, network_action, pull_action
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
        docker = DockerClient("h1", httpx.MockTransport(engine), api_version="1.41")
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
