"""depends_on in the rollout driver, against httpx.MockTransport engines: services roll out
after what they wait for, a job must exit 0 before its dependents start, and a dependency
that fails on a host blocks its dependents there, saying why."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any, cast

import httpx
from docker_fixtures import body
from http_fake import MockTransport
from planner_support import WEB_V1
from test_rollout_driver import FakeRun, Notes

from fleet.config.project import ProjectFiles, read_project
from fleet.core import labels
from fleet.core.dependencies import rollout_order
from fleet.core.desired import DesiredState, desired_state
from fleet.core.diff import DiffContext, diff_host
from fleet.core.observed import HostSnapshot
from fleet.core.plan import Plan, plan_host
from fleet.core.policy import HostOutcome
from fleet.docker.client import DockerClient
from fleet.engine.health import wait_condition
from fleet.engine.rollout import Rollout, RolloutResult
from fleet.engine.run import Run

PROJECT = f"""
project: shop
inventory: inv.yml
update: {{monitor: 0s, timeout: 5s}}
services:
  web:
    image: {WEB_V1}
    depends_on:
      db: {{condition: service_healthy}}
      migrate: {{condition: service_completed_successfully}}
  migrate:
    image: {WEB_V1}
    command: [migrate]
    update: {{monitor: 0s, timeout: 5s, on_failure: continue}}
    depends_on: [db]
  db:
    image: {WEB_V1}
    hosts: h1
    healthcheck: {{test: [CMD, "true"], interval: 1s}}
"""


class Engine:
    """A host's dockerd: a container started becomes what its service does here
    (`behaviour`: healthy, unhealthy, or exit:N for a process that exits with N). `turns`:
    once the container named first starts, the service named second behaves as the third
    says."""

    def __init__(self, host: str, behaviour: dict[str, str], events: list[str],
                 turns: tuple[str, str, str] | None = None) -> None:
        self.host = host
        self.behaviour = behaviour
        self.turns = turns
        self.events = events  # every host's starts, in the order they happened
        self.ids = (f"{host}{n}".ljust(64, "0") for n in itertools.count(1))
        self.containers: dict[str, dict[str, Any]] = {}  # id -> name, service, state

    def _find(self, ref: str) -> tuple[str, dict[str, Any]] | None:
        for container_id, found in self.containers.items():
            if ref in (container_id, found["name"]):
                return container_id, found
        return None

    def _state(self, found: dict[str, Any]) -> dict[str, Any]:
        if found["state"] != "started":
            return {"Status": "created", "ExitCode": 0}
        does = self.behaviour.get(found["service"], "healthy")
        if does.startswith("exit:"):
            return {"Status": "exited", "ExitCode": int(does[5:])}
        return {"Status": "running", "ExitCode": 0, "StartedAt": "2026-01-01T00:00:00Z",
                "Health": {"Status": does, "Log": []}}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1.41")
        parts = path.strip("/").split("/")
        if path == "/containers/create":
            made = next(self.ids)
            service = json.loads(request.content)["Labels"][labels.SERVICE]
            self.containers[made] = {"name": request.url.params["name"], "service": service,
                                     "state": "created"}
            return httpx.Response(201, json={"Id": made, "Warnings": []})
        if parts[0] != "containers" or len(parts) < 3:
            return httpx.Response(204)
        found = self._find(parts[1])
        if found is None:
            return httpx.Response(404, json={"message": f"No such container: {parts[1]}"})
        container_id, container = found
        match parts[-1]:
            case "json":
                data = {**body("inspect_running_healthy"), "Id": container_id,
                        "Name": f"/{container['name']}", "State": self._state(container)}
                return httpx.Response(200, json=data)
            case "start":
                container["state"] = "started"
                self.events.append(f"{self.host} {container['name']}")
                if self.turns and self.turns[0] == container["name"]:
                    self.behaviour[self.turns[1]] = self.turns[2]
            case "rename":
                container["name"] = request.url.params["name"]
            case "logs":
                return httpx.Response(200, content=body("logs_unhealthy"))
        return httpx.Response(204)


def two_hosts(tmp_path: Path) -> DesiredState:
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 198.18.9.1}\n"
                                      "  h2: {address: 198.18.9.2}\n")
    (tmp_path / "pb.yml").write_text(PROJECT)
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))


def first_deployment(state: DesiredState) -> Plan:
    waits = state.waits()
    hosts = []
    for host in ("h1", "h2"):
        empty = HostSnapshot(host, ())
        findings = diff_host(state.containers[host], empty,
                             DiffContext("shop", frozenset(state.services), state.secrets))
        hosts.append(plan_host(findings, empty, "shop", {}, waits=waits, policies={
            name: s.update for name, s in state.services.items()}))
    return Plan("shop", tuple(hosts), order=tuple(rollout_order(list(state.services), waits)))


def roll(state: DesiredState, behaviour: dict[str, dict[str, str]],
         turns: tuple[str, str, str] | None = None) -> tuple[RolloutResult, list[str]]:
    events: list[str] = []
    engines = {h: Engine(h, behaviour.get(h, {}), events, turns if h == "h1" else None)
               for h in ("h1", "h2")}
    run = cast(Run, FakeRun(state, engines))  # type: ignore[arg-type]

    async def go() -> RolloutResult:
        return await Rollout(run, first_deployment(state), journal=Notes(run)).execute()
    return asyncio.run(go()), events


def outcomes(result: RolloutResult) -> dict[tuple[str, str], tuple[HostOutcome, str]]:
    return {(r.service, r.host): (r.outcome, r.detail) for r in result.reports}


def test_services_start_after_what_they_wait_for_on_every_host(tmp_path: Path) -> None:
    state = two_hosts(tmp_path)
    result, events = roll(state, {"h1": {"migrate": "exit:0"}, "h2": {"migrate": "exit:0"}})
    assert result.ok, outcomes(result)
    assert {o for o, _ in outcomes(result).values()} == {HostOutcome.CHANGED}
    # db (h1 only) first, then the job everywhere, then web: each service is done on every
    # host before the next begins (a job is started under its own name: nothing to replace).
    assert events[0] == "h1 shop-db-1"
    assert sorted(events[1:3]) == ["h1 shop-migrate-1", "h2 shop-migrate-1"]
    assert sorted(events[3:]) == ["h1 shop-web-1", "h2 shop-web-1"]


def test_a_failed_job_blocks_its_dependents_on_that_host_only(tmp_path: Path) -> None:
    state = two_hosts(tmp_path)
    result, events = roll(state, {"h1": {"migrate": "exit:0"}, "h2": {"migrate": "exit:1"}})
    found = outcomes(result)
    assert found[("migrate", "h2")][0] == HostOutcome.FAILED
    assert found[("migrate", "h2")][1].startswith(
        "create shop-migrate-1: did not complete successfully: container exited with code 1")
    assert found[("web", "h1")] == (HostOutcome.CHANGED, "")
    outcome, why = found[("web", "h2")]
    assert outcome == HostOutcome.BLOCKED
    assert why.startswith("by dependency migrate (service_completed_successfully): it failed "
                          "on this host (create shop-migrate-1: did not complete "
                          "successfully: container exited with code 1")
    assert "h2 shop-web-1" not in events and not result.ok


def test_a_dependency_that_is_not_healthy_when_waited_for_blocks(tmp_path: Path) -> None:
    # db passed its own gate, then turned unhealthy before web came to h1: checked live.
    state = two_hosts(tmp_path)
    jobs_pass = {"h1": {"migrate": "exit:0"}, "h2": {"migrate": "exit:0"}}
    result, _ = roll(state, jobs_pass, ("shop-migrate-1", "db", "unhealthy"))
    found = outcomes(result)
    assert found[("db", "h1")] == (HostOutcome.CHANGED, "")
    outcome, why = found[("web", "h1")]
    assert outcome == HostOutcome.BLOCKED
    assert why.startswith("by dependency db (service_healthy): shop-db-1 is not healthy: "
                          "container running, health unhealthy")
    assert found[("web", "h2")] == (HostOutcome.CHANGED, "")  # db does not run on h2


def test_waiting_for_a_dependency_that_has_no_container_says_so() -> None:
    engine = Engine("h1", {}, [])
    docker = DockerClient("h1", MockTransport(engine), api_version="1.41")
    why = asyncio.run(wait_condition(docker, ["shop-db-1"], "service_started", 5.0))
    assert why == "shop-db-1 does not exist on this host"


SIDE_BY_SIDE = f"""
project: shop
inventory: inv.yml
update: {{monitor: 300ms, timeout: 5s}}
services:
  api: {{image: {WEB_V1}, depends_on: [cache]}}
  cache: {{image: {WEB_V1}}}
  worker: {{image: {WEB_V1}}}
"""


def test_services_that_do_not_depend_on_each_other_roll_side_by_side(
        tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 198.18.9.1}\n"
                                      "  h2: {address: 198.18.9.2}\n")
    (tmp_path / "pb.yml").write_text(SIDE_BY_SIDE)
    state = desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))
    events: list[str] = []
    said: list[str] = []
    engines = {h: Engine(h, {}, events) for h in ("h1", "h2")}
    run = cast(Run, FakeRun(state, engines))  # type: ignore[arg-type]

    async def go() -> RolloutResult:
        return await Rollout(run, first_deployment(state), journal=Notes(run),
                             report=lambda host, message: said.append(
                                 f"{host} {message}")).execute()
    result = asyncio.run(go())
    assert result.ok, outcomes(result)
    h1 = [line.removeprefix("h1 ") for line in said if line.startswith("h1 ")]
    # cache and worker start together; api only once cache is done (on every host)
    assert h1.index("worker: wave all, batch 1/1") < h1.index("cache: done")
    assert said.index("h1 api: wave all, batch 1/1") > max(
        said.index("h1 cache: done"), said.index("h2 cache: done"))
    # the report keeps the rollout order, whatever finished first
    assert [r.service for r in result.reports] == ["cache"] * 2 + ["api"] * 2 + ["worker"] * 2
