"""Diff cases, and properties of diff + plan over random states run through a simulated
engine (the planner's case-by-case plan texts are in test_planner.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reconcile_sim import apply_plan, make_container

from fleet.config.project import ProjectFiles, read_project
from fleet.core import labels
from fleet.core.desired import DesiredContainer, DesiredState, desired_state
from fleet.core.diff import DiffContext, Kind, diff_host
from fleet.core.observed import HostSnapshot, ObservedContainer, container_from_list
from fleet.core.plan import plan_host
from fleet.docker.bodies import create_body

DIGEST_V1 = "sha256:" + "1" * 64
DIGEST_V2 = "sha256:" + "2" * 64
HOST = "h1"


@pytest.fixture()
def state(tmp_path: Path) -> DesiredState:
    (tmp_path / "inv.yml").write_text(
        "hosts:\n  h1: {address: 198.18.9.1, labels: {cloud: aws}}\n")
    (tmp_path / "pb.yml").write_text("""
project: shop
inventory: inv.yml
services:
  web:
    image: reg.example:5000/demo/web:v1
    ports: ["8080:8080"]
    environment: {A: "1", TOKEN: "{{ secret('TOKEN') }}"}
    mem_limit: 64m
  worker:
    image: reg.example:5000/demo/worker:v1
    replicas: 2
""")
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]),
                                      environ={"TOKEN": "t0p"}))


def ctx(state: DesiredState, digests: dict[str, str | None] | None = None) -> DiffContext:
    return DiffContext("shop", frozenset(state.services), state.secrets,
                       digests if digests is not None else {
                           "reg.example:5000/demo/web:v1": DIGEST_V1,
                           "reg.example:5000/demo/worker:v1": DIGEST_V1})


def running(state: DesiredState, container: DesiredContainer, **overrides: Any
            ) -> ObservedContainer:
    digest = DIGEST_V1
    body = create_body(container, state.secrets, digest, 1)
    body["Image"] = f"{str(container.options['image']).rsplit(':', 1)[0]}@{digest}"
    for key, value in overrides.items():
        body[key] = value
    return make_container(container.name, body)


def in_sync_snapshot(state: DesiredState) -> HostSnapshot:
    return HostSnapshot(HOST, tuple(running(state, c) for c in state.containers[HOST]))


def plan_text(state: DesiredState, snapshot: HostSnapshot, **kw: Any) -> str:
    c = ctx(state, **kw)
    findings = diff_host(state.containers[HOST], snapshot, c)
    return plan_host(findings, snapshot, "shop", c.digests).text()


def test_in_sync_plans_nothing(state: DesiredState) -> None:
    snapshot = in_sync_snapshot(state)
    kinds = {f.kind for f in diff_host(state.containers[HOST], snapshot, ctx(state))}
    assert kinds == {Kind.IN_SYNC}
    assert plan_text(state, snapshot) == ""


def test_env_changed_by_hand_is_config_changed_with_field(state: DesiredState) -> None:
    containers = list(in_sync_snapshot(state).containers)
    web = next(c for c in containers if c.name == "shop-web-1")
    containers[containers.index(web)] = ObservedContainer(
        **{**web.__dict__, "env": {**web.env, "A": "2", "TOKEN": "stolen"}})
    findings = diff_host(state.containers[HOST], HostSnapshot(HOST, tuple(containers)),
                         ctx(state))
    finding = next(f for f in findings if f.service == "web")
    assert finding.kind == Kind.CONFIG_CHANGED
    assert "environment.A: 2 -> 1" in finding.detail
    assert "stolen" not in finding.detail and "t0p" not in finding.detail


# -- properties -----------------------------------------------------------------------------

service_names = st.sampled_from(["web", "worker", "gone"])


@st.composite
def observed_states(draw: st.DrawFn, state: DesiredState) -> HostSnapshot:
    containers: list[ObservedContainer] = []
    desired = state.containers[HOST]
    for index in range(draw(st.integers(0, 6))):
        template = draw(st.sampled_from(desired))
        service = draw(service_names)
        replica = draw(st.integers(1, 3))
        body = create_body(template, state.secrets, draw(st.sampled_from([DIGEST_V1, DIGEST_V2,
                                                                          None])), 1)
        body["Labels"] = {**body["Labels"], labels.SERVICE: service, labels.REPLICA: str(replica)}
        if draw(st.booleans()):
            body["Labels"][labels.SPEC_HASH] = "stale"
        if draw(st.booleans()):
            body["Env"] = [*body["Env"], "A=changed"]
        if draw(st.booleans()):
            body["HostConfig"] = {**body["HostConfig"], "Memory": 5}
        name = draw(st.sampled_from([f"shop-{service}-{replica}", f"shop-{service}-{replica}--r2",
                                     f"x{index}"]))
        state_text = draw(st.sampled_from(["running", "exited", "created"]))
        containers.append(make_container(name, body, state_text))
    for index in range(draw(st.integers(0, 2))):
        containers.append(container_from_list({
            "Id": f"foreign{index}", "Names": [f"/other{index}"], "State": "running",
            "Labels": draw(st.sampled_from([{}, {labels.PROJECT: "other"}])), "Ports": []}))
    return HostSnapshot(HOST, tuple(containers))


def _converge(state: DesiredState, snapshot: HostSnapshot) -> tuple[HostSnapshot, int]:
    c = ctx(state)
    findings = diff_host(state.containers[HOST], snapshot, c)
    plan = plan_host(findings, snapshot, "shop", c.digests)
    for action in plan.actions:
        assert action.observed is None or action.observed.project == "shop"
    return apply_plan(snapshot, plan, state.secrets), len(plan.actions)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_applying_the_plan_converges(state: DesiredState, data: st.DataObject) -> None:
    snapshot = data.draw(observed_states(state))
    converged, _ = _converge(state, snapshot)
    _, second = _converge(state, converged)
    assert second == 0, (_debug(state, snapshot), _debug(state, converged))
    findings = diff_host(state.containers[HOST], converged, ctx(state))
    assert {f.kind for f in findings} == {Kind.IN_SYNC}
    foreign_before = {c.id for c in snapshot.foreign("shop")}
    assert foreign_before <= {c.id for c in converged.containers}


def _debug(state: DesiredState, snapshot: HostSnapshot) -> list[str]:  # pragma: no cover
    c = ctx(state)
    findings = diff_host(state.containers[HOST], snapshot, c)
    return [f"{f.service}/{f.replica} {f.kind} {f.detail}" for f in findings]


def test_no_restart_policy_reads_the_same_from_any_docker(state: DesiredState) -> None:
    # Docker < 25 reports no policy as "", later versions as "no": both are in sync.
    snapshot = in_sync_snapshot(state)
    worker = next(c for c in snapshot.containers if c.name == "shop-worker-1")
    for name in ("", "no"):
        resources = {**worker.resources, "RestartPolicy": {"Name": name or "no",
                                                           "MaximumRetryCount": 0}}
        changed = HostSnapshot(HOST, tuple(
            ObservedContainer(**{**c.__dict__, "resources": resources}) if c is worker else c
            for c in snapshot.containers))
        assert plan_text(state, changed) == ""


def test_a_removed_limit_recreates_and_a_changed_one_updates(state: DesiredState) -> None:
    containers = list(in_sync_snapshot(state).containers)
    worker = next(c for c in containers if c.name == "shop-worker-1")
    limited = ObservedContainer(**{**worker.__dict__,
                                   "resources": {**worker.resources, "Memory": 1 << 20,
                                                 "MemorySwap": 2 << 20}})
    containers[containers.index(worker)] = limited
    c = ctx(state)
    snapshot = HostSnapshot(HOST, tuple(containers))
    plan = plan_host(diff_host(state.containers[HOST], snapshot, c), snapshot, "shop", c.digests)
    assert [a.heading() for a in plan.actions] == [
        f"pull reg.example:5000/demo/worker@{DIGEST_V1[:19]}: needed by shop-worker-1",
        "recreate shop-worker-1 (start-first): config_changed: limits.Memory: 1048576 -> 0; "
        "limits.MemorySwap: 2097152 -> 0"]


def test_an_unlabelled_containers_environment_is_never_shown(state: DesiredState) -> None:
    containers = list(in_sync_snapshot(state).containers)
    web = next(c for c in containers if c.name == "shop-web-1")
    bare = {k: v for k, v in web.labels.items() if k != labels.SPEC}
    containers[containers.index(web)] = ObservedContainer(
        **{**web.__dict__, "labels": bare, "env": {**web.env, "A": "hunter2"}})
    findings = diff_host(state.containers[HOST], HostSnapshot(HOST, tuple(containers)),
                         ctx(state))
    detail = next(f.detail for f in findings if f.service == "web")
    assert "hunter2" not in detail and "environment.A: <redacted> -> 1" in detail


def test_plan_json_lists_every_field_level_change(state: DesiredState) -> None:
    from fleet.cli.session import plan_json
    from fleet.core.plan import Plan

    containers = list(in_sync_snapshot(state).containers)
    web = next(c for c in containers if c.name == "shop-web-1")
    containers[containers.index(web)] = ObservedContainer(
        **{**web.__dict__, "env": {**web.env, "A": "2"}})
    snapshot = HostSnapshot(HOST, tuple(containers))
    c = ctx(state)
    host_plan = plan_host(diff_host(state.containers[HOST], snapshot, c), snapshot, "shop",
                          c.digests)
    data = plan_json(Plan("shop", (host_plan,)))
    finding = data["hosts"][0]["findings"][0]
    assert finding["kind"] == "config_changed"
    assert finding["changes"] == [{"field": "environment.A", "observed": "2", "desired": "1"}]
