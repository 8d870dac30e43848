"""What Compose's fields change at run time: pull_policy and platform in plans and in the calls
the executor makes, links as network aliases, inactive profiles left alone, and the policy
`fleet rollback` rolls out with."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
from http_fake import MockTransport
from planner_support import HOST, WEB_V1, digests, recorded, snapshot

from fleet.config.project import ProjectFiles, read_project
from fleet.config.service import UpdatePolicy
from fleet.core.desired import DesiredState, desired_state
from fleet.core.diff import DiffContext, Kind, diff_host
from fleet.core.plan import ActionKind, StepKind, plan_host
from fleet.core.pulls import ImageIndex, images_to_resolve, uses_local_image
from fleet.docker.bodies import endpoint_config
from fleet.docker.client import DockerClient
from fleet.docker.registry_auth import RegistryAuth
from fleet.engine.executor import Executor

HUB = "docker.io/library/nginx:1.25"


def state_of(tmp_path: Path, services: str, *, profiles: tuple[str, ...] = ()) -> DesiredState:
    (tmp_path / "inv.yml").write_text(f"hosts:\n  {HOST}: {{address: 198.18.41.9}}\n")
    (tmp_path / "compose.yaml").write_text(f"name: shop\nnetworks: {{default: {{}}, "
                                           f"backend: {{}}}}\nservices:\n{services}")
    files = ProjectFiles([str(tmp_path / "compose.yaml")], [str(tmp_path / "inv.yml")],
                         profiles=list(profiles))
    return desired_state(read_project(files, environ={}))


def plan(state: DesiredState, *, images: tuple[str, ...] = (),
         pins: dict[str, str | None] | None = None) -> tuple[list[str], object]:
    observed = snapshot(networks=("shop_default", "shop_backend"), images=images)
    resolved = {**digests(), **(pins or {})}
    context = DiffContext(state.project, frozenset(state.services), state.secrets, resolved)
    findings = diff_host(state.containers[HOST], observed, context)
    pulls = {name: s.pull_policy for name, s in state.services.items()}
    host_plan = plan_host(findings, observed, state.project, resolved, pull_policies=pulls,
                          networks=state.networks)
    return [a.heading() for a in host_plan.actions], host_plan


# -- pull_policy ------------------------------------------------------------------------------

def test_an_image_is_found_by_its_normalised_name() -> None:
    index = ImageIndex(["nginx:1.25", "nginx@sha256:" + "a" * 64])
    assert index.has(HUB) and index.has("nginx:1.25")
    assert index.has("docker.io/library/nginx@sha256:" + "a" * 64)
    assert not index.has("nginx:1.26")


def test_which_tags_are_resolved_by_a_registry() -> None:
    index = ImageIndex(["nginx:1.25", "busybox:latest"])
    assert not uses_local_image("always", "nginx:1.25", index)
    assert uses_local_image("missing", "nginx:1.25", index)
    assert not uses_local_image("missing", "nginx:1.26", index)  # not there: pulled
    assert not uses_local_image("missing", "busybox", index)  # latest: always pulled
    assert uses_local_image("never", "nginx:1.26", index)


def test_an_image_two_services_share_is_resolved_if_either_asks(tmp_path: Path) -> None:
    state = state_of(tmp_path, f"  a: {{image: {WEB_V1}, pull_policy: missing}}\n"
                               f"  b: {{image: {WEB_V1}}}\n  c: {{image: 'nginx:1.25', "
                               "pull_policy: missing}\n")
    policies = {name: s.pull_policy for name, s in state.services.items()}
    resolve, local = images_to_resolve(state.containers[HOST], [WEB_V1, "nginx:1.25"],
                                       policies)
    assert resolve == {WEB_V1} and local == {"nginx:1.25": None}


def test_never_blocks_a_host_without_the_image_and_pulls_nothing(tmp_path: Path) -> None:
    state = state_of(tmp_path, f"  web: {{image: {WEB_V1}, pull_policy: never}}\n")
    headings, host_plan = plan(state)
    assert headings == []
    assert host_plan.text() == (  # type: ignore[attr-defined]
        f"{HOST}:\n  blocked shop-web-1: pull_policy: never, and image {WEB_V1} is not on "
        "this host")


def test_never_uses_the_image_the_host_has(tmp_path: Path) -> None:
    state = state_of(tmp_path, f"  web: {{image: {WEB_V1}, pull_policy: never}}\n")
    # The run pins it to None on a host that has it (images_to_resolve): created from the tag.
    headings, host_plan = plan(state, images=(WEB_V1,), pins={WEB_V1: None})
    assert headings == ["create shop-web-1: missing"]
    create = host_plan.actions[0].steps[0]  # type: ignore[attr-defined]
    assert create.image == WEB_V1


def test_a_platform_is_pulled_and_created_for(tmp_path: Path) -> None:
    state = state_of(tmp_path, f"  web: {{image: {WEB_V1}, platform: linux/arm64}}\n")
    _, host_plan = plan(state)
    pulls = [a for a in host_plan.actions if a.kind == ActionKind.PULL]  # type: ignore
    assert pulls[0].steps[0].platform == "linux/arm64"
    assert pulls[0].heading().endswith("needed by shop-web-1 (linux/arm64)")
    calls: list[tuple[str, dict[str, str]]] = []

    def engine(request: httpx.Request) -> httpx.Response:
        calls.append((f"{request.method} {request.url.path.removeprefix('/v1.41')}",
                      dict(request.url.params)))
        if request.url.path.endswith("/containers/create"):
            return httpx.Response(201, json={"Id": "f" * 64, "Warnings": []})
        return httpx.Response(200, json={"status": "ok"})

    async def go() -> None:
        docker = DockerClient(HOST, MockTransport(engine), api_version="1.41")
        executor = Executor(docker, state.secrets, RegistryAuth({}, state.secrets), "shop")
        steps = [s for a in host_plan.actions for s in a.steps  # type: ignore[attr-defined]
                 if s.kind in (StepKind.PULL, StepKind.CREATE)]
        for step in steps:
            await executor.perform(step, {})
        await docker.aclose()

    asyncio.run(go())
    assert calls[0][0] == "POST /images/create" and calls[0][1]["platform"] == "linux/arm64"
    assert calls[1] == ("POST /containers/create", {"name": "shop-web-1",
                                                    "platform": "linux/arm64"})


# -- links, profiles, container_name ----------------------------------------------------------

def test_a_links_alias_is_the_linked_services_alias_on_every_network(tmp_path: Path) -> None:
    state = state_of(tmp_path, f"""\
  db: {{image: {WEB_V1}, networks: [default, backend]}}
  web: {{image: {WEB_V1}, links: ["db:database"], networks: [backend]}}
""")
    db = next(c for c in state.containers[HOST] if c.service == "db")
    assert endpoint_config(db, "shop_backend") == {"Aliases": ["db", "database"]}
    _, host_plan = plan(state)
    connect = [s for a in host_plan.actions for s in a.steps  # type: ignore[attr-defined]
               if s.kind == StepKind.CONNECT]
    # networks are joined by priority, then name: backend at create, default connected after
    assert [(s.target, s.network) for s in connect] == [("shop-db-1", "shop_default")]
    assert connect[0].container is not None
    assert endpoint_config(connect[0].container, "shop_default") == {
        "Aliases": ["db", "database"]}


def test_containers_of_an_inactive_profile_are_left_alone(tmp_path: Path) -> None:
    both = state_of(tmp_path, f"  web: {{image: {WEB_V1}}}\n  debug: {{image: {WEB_V1}, "
                              "profiles: [debug]}\n", profiles=("debug",))
    running = recorded("inspect_running_healthy", both, "debug")
    state = state_of(tmp_path, f"  web: {{image: {WEB_V1}}}\n  debug: {{image: {WEB_V1}, "
                               "profiles: [debug]}\n")
    assert state.inactive_services == {"debug"}
    context = DiffContext(state.project, frozenset(state.services), state.secrets, digests(),
                          inactive=state.inactive_services)
    findings = diff_host(state.containers[HOST], snapshot(running), context)
    assert [(f.service, f.kind) for f in findings] == [("web", Kind.MISSING)]


def test_a_container_name_is_created_and_found_under_that_name(tmp_path: Path) -> None:
    state = state_of(tmp_path, f"  web: {{image: {WEB_V1}, container_name: shop-frontend}}\n")
    headings, _ = plan(state)
    assert headings[-1] == "create shop-frontend: missing"
    running = recorded("inspect_running_healthy", state, "web")
    context = DiffContext(state.project, frozenset(state.services), state.secrets, digests())
    renamed = dataclasses.replace(running, name="shop-frontend")
    findings = diff_host(state.containers[HOST], snapshot(renamed), context)
    assert [f.kind for f in findings] == [Kind.CONFIG_CHANGED]  # the recorded spec is web's old
    assert findings[0].desired is not None and findings[0].desired.name == "shop-frontend"


# -- rollback_config --------------------------------------------------------------------------

def test_fleet_rollback_rolls_out_with_the_rollback_config(tmp_path: Path) -> None:
    from fleet.cli.rollback_cmd import _targets

    state = state_of(tmp_path, f"""\
  web:
    image: {WEB_V1}
    deploy:
      update_config: {{parallelism: 1}}
      rollback_config: {{parallelism: 0, order: stop-first, monitor: 1s}}
""")
    assert state.services["web"].update == UpdatePolicy(batch=1)
    targets = _targets(state, "web", {}, {}, None)
    assert targets.problems == []
    assert targets.state.services["web"].update == UpdatePolicy(batch="100%", order="stop-first",
                                                         monitor=1.0)
