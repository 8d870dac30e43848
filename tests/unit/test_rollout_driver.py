"""The rollout driver against httpx.MockTransport engines answering with recorded dockerd
answers: a batch that fails its gate rolls the changed hosts back, with the very calls the
policy's undo plan names."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import httpx
from docker_fixtures import body
from http_fake import MockTransport
from planner_support import DIGEST_MOVED, WEB_V1, digests, playbook, project_network, recorded

from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import DesiredState, desired_state
from fleet.core.diff import DiffContext, diff_host
from fleet.core.journal import EntryOutcome
from fleet.core.observed import HostSnapshot
from fleet.core.plan import Action, ActionKind, Plan, plan_host
from fleet.core.policy import HostOutcome
from fleet.docker.client import DockerClient
from fleet.docker.registry_auth import RegistryAuth
from fleet.engine.controller_images import ControllerImages
from fleet.engine.journaling import JournalBook
from fleet.engine.rollout import Rollout
from fleet.engine.run import Run

OLD_ID = body("inspect_running_healthy")["Id"]


class Engine:
    """One host's dockerd: new containers get fresh ids; each inspects as `health` says."""

    def __init__(self, host: str, new_health: str) -> None:
        self.host = host
        self.new_health = new_health
        self.calls: list[str] = []
        self._ids = (f"{host}{n}".ljust(64, "0") for n in itertools.count(1))
        self.names: dict[str, str] = {"shop-web-1": OLD_ID}

    def _inspect(self, ref: str) -> httpx.Response:
        container_id = self.names.get(ref, ref)
        fixture = ("inspect_unhealthy" if container_id != OLD_ID and self.new_health ==
                   "unhealthy" else "inspect_running_healthy")
        return httpx.Response(200, json={**body(fixture), "Id": container_id})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1.41")
        name = request.url.params.get("name")
        self.calls.append(f"{request.method} {path}" + (f"?name={name}" if name else ""))
        parts = path.strip("/").split("/")
        if path == "/containers/create":
            new = next(self._ids)
            self.names[str(name)] = new
            return httpx.Response(201, json={"Id": new, "Warnings": []})
        if parts[0] == "containers" and parts[-1] == "json":
            return self._inspect(parts[1])
        if parts[0] == "containers" and parts[-1] == "rename":
            self.names = {k: v for k, v in self.names.items() if v != parts[1]}
            self.names[str(name)] = parts[1]
        if parts[-1] == "logs":
            return httpx.Response(200, content=body("logs_unhealthy"))
        return httpx.Response(204)


class FakeRun:
    """What the driver uses of a Run: the state, one Docker client per host, the bound."""

    def __init__(self, state: DesiredState, engines: dict[str, Engine]) -> None:
        self.state = state
        self.engines = engines
        self.clients = {h: DockerClient(h, MockTransport(e), api_version="1.41")
                        for h, e in engines.items()}
        self.auth = RegistryAuth({}, state.secrets)
        self.images = ControllerImages({})  # no image from the controller in these plans
        self.forks = asyncio.Semaphore(10)
        self.lock = None
        self.pool = type("Pool", (), {"connected": {h: type("C", (), {"ssh": None})()
                                                    for h in engines}})()

    def docker(self, host: str) -> DockerClient:
        return self.clients[host]

    def file_store(self, host: str) -> None:
        return None  # no delivered files in these plans

    def proxy_admin(self, host: str) -> None:
        return None

    def file_root(self, host: str) -> None:
        return None


class Notes(JournalBook):
    """The journal, kept in memory."""

    def __init__(self, run: Run) -> None:
        super().__init__(run, "apply", lambda host, message: None)
        self.notes: list[tuple[str, str, str]] = []

    def note(self, host: str, action: Action, outcome: EntryOutcome, detail: str) -> None:
        self.notes.append((host, action.heading(), outcome))

    async def start(self, host: str, actions: Sequence[Action]) -> str | None:
        self.notes += [(host, a.heading(), "started") for a in actions
                       if a.kind in (ActionKind.CREATE, ActionKind.RECREATE, ActionKind.UPDATE)]
        return None

    async def flush(self) -> None:
        pass


def two_hosts(tmp_path: Path) -> DesiredState:
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 198.18.9.1}\n"
                                      "  h2: {address: 198.18.9.2}\n")
    text = playbook("web").replace("services:\n", "update: {batch: 1, monitor: 0s}\nservices:\n")
    (tmp_path / "pb.yml").write_text(text)
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))


def plan_for(state: DesiredState) -> Plan:
    pins: dict[str, str | None] = {**digests(), WEB_V1: DIGEST_MOVED}
    context = DiffContext("shop", frozenset(state.services), state.secrets, pins)
    hosts = []
    for host in ("h1", "h2"):
        running = recorded("inspect_running_healthy", state, "web")
        observed = HostSnapshot(host, (running,), frozenset(),
                                {n: project_network(n) for n in ("shop_default", "shop_backend")})
        hosts.append(plan_host(diff_host(state.containers[host], observed, context), observed,
                               "shop", pins, policies={"web": state.services["web"].update},
                               networks=state.networks))
    return Plan("shop", tuple(hosts))


def roll(state: DesiredState, engines: dict[str, Engine]) -> tuple[Any, Notes]:
    run = cast(Run, FakeRun(state, engines))
    notes = Notes(run)

    async def go() -> Any:
        return await Rollout(run, plan_for(state), journal=notes).execute()
    return asyncio.run(go()), notes


def test_a_failed_batch_rolls_back_the_hosts_already_changed(tmp_path: Path) -> None:
    state = two_hosts(tmp_path)
    h1, h2 = Engine("h1", "healthy"), Engine("h2", "unhealthy")
    result, notes = roll(state, {"h1": h1, "h2": h2})
    outcomes = {r.host: (r.outcome, r.detail) for r in result.reports}
    assert outcomes["h1"] == (HostOutcome.ROLLED_BACK, "returned to the previous revision")
    assert outcomes["h2"][0] == HostOutcome.ROLLED_BACK
    assert outcomes["h2"][1].endswith("the previous revision was kept running")
    assert result.stopped == ("web: 1 host(s) failed, more than max_failures (0); "
                              "on_failure: rollback")
    new = "h11".ljust(64, "0")
    back = "h12".ljust(64, "0")
    # h1: the change, its gate, then the undo plan: the new container set aside, the
    # recorded revision created again, gated, and the new one removed.
    assert h1.calls == [
        "POST /images/create",  # pulled everywhere before any change
        f"POST /containers/{OLD_ID}/rename?name=shop-web-1--r1-old",
        f"POST /containers/{OLD_ID}/stop",
        "POST /containers/create?name=shop-web-1",
        "POST /networks/shop_default/connect",
        f"POST /containers/{new}/start",
        f"GET /containers/{new}/json",
        f"DELETE /containers/{OLD_ID}",
        "GET /containers/shop-web-1/json", "GET /containers/shop-web-1/json",
        "GET /containers/shop-web-1/json",
        f"POST /containers/{new}/rename?name=shop-web-1--r2-old",
        f"POST /containers/{new}/stop",
        "POST /containers/create?name=shop-web-1",
        "POST /networks/shop_default/connect",
        f"POST /containers/{back}/start",
        f"GET /containers/{back}/json",
        f"DELETE /containers/{new}",
        "GET /containers/shop-web-1/json", "GET /containers/shop-web-1/json",
        "GET /containers/shop-web-1/json",
    ]
    failed = f"{h2.calls[5].split()[1].split('/')[2]}"
    # h2: its new container never got healthy; the executor undid it at once.
    assert h2.calls[6:] == [
        f"GET /containers/{failed}/json", f"GET /containers/{failed}/logs",
        f"GET /containers/{failed}/json",
        f"DELETE /containers/{failed}",
        f"POST /containers/{OLD_ID}/start",
        f"POST /containers/{OLD_ID}/rename?name=shop-web-1",
    ]
    change = ("recreate shop-web-1 (stop-first): image_changed: 198.18.6.1:5000/demo/web:v1 "
              "now resolves to sha256:222222222222 (running sha256:70636840d081)")
    assert notes.notes == [("h1", change, "started"), ("h1", change, "ok"),
                           ("h2", change, "started"), ("h2", change, "failed"),
                           ("h1", change, "rolled-back"),
                           ("h1", "recreate shop-web-1 (stop-first): rollback", "ok")]


def test_within_the_budget_every_host_changes(tmp_path: Path) -> None:
    state = two_hosts(tmp_path)
    result, notes = roll(state, {"h1": Engine("h1", "healthy"), "h2": Engine("h2", "healthy")})
    assert result.ok and {r.outcome for r in result.reports} == {HostOutcome.CHANGED}
    assert sorted(n[0] for n in notes.notes if n[2] == "ok") == ["h1", "h2"]
