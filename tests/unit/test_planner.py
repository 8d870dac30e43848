"""The planner, case by case: a project, an observed state made of real dockerd answers
(tests/fixtures/docker), and the whole plan text each must give, step by step."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from textwrap import dedent

from docker_fixtures import body
from planner_support import (
    DIGEST_MOVED,
    REGISTRY,
    WEB_V1,
    digest_of,
    plan_of,
    project,
    recorded,
    snapshot,
)

from fleet.core import labels
from fleet.core.desired import DesiredState
from fleet.core.diff import Kind
from fleet.core.observed import ObservedContainer
from fleet.core.plan import ActionKind, StepKind

NETWORKS = ("shop_default", "shop_backend")
WEB_ID = "13c34c1192dd"  # the recorded shop-web-1's id, as a plan shows it
READY = "running, and healthy if it has a healthcheck"


def expect(text: str) -> str:
    return dedent(text).strip("\n")


def with_host_config(fixture: str, **changes: object) -> dict[str, object]:
    return {"HostConfig": {**body(fixture)["HostConfig"], **changes}}


def test_a_container_as_dockerd_reports_it_is_in_sync(tmp_path: Path) -> None:
    # Real answers carry more than fleet set (the image's own env, MemorySwap, null
    # PidsLimit): none of it is drift.
    state = project(tmp_path, "web")
    plan = plan_of(state, snapshot(recorded("inspect_running_healthy", state, "web"),
                                   networks=NETWORKS))
    assert [f.kind for f in plan.findings] == [Kind.IN_SYNC]
    assert plan.text() == ""


def test_an_empty_host_gets_networks_pulls_then_creates(tmp_path: Path) -> None:
    state = project(tmp_path, "web", "job")
    assert plan_of(state, snapshot()).text() == expect(f"""
        h1:
          network shop_backend: driver bridge
          network shop_default: driver bridge
          pull {REGISTRY}/demo/web@sha256:70636840d081: needed by shop-job-1
          create shop-job-1: missing
            1. create shop-job-1 from {REGISTRY}/demo/web@sha256:70636840d081, revision 1: the new container [undo: remove shop-job-1]
            2. start shop-job-1: start the new container
            3. wait-ready shop-job-1 (up to 120s): {READY} [commit]
          create shop-web-1: missing
            1. create shop-web-1 from {REGISTRY}/demo/web@sha256:70636840d081, revision 1: the new container [undo: remove shop-web-1]
            2. connect shop-web-1 to shop_default: one network at create; the others now
            3. start shop-web-1: start the new container
            4. wait-ready shop-web-1 (up to 120s): {READY} [commit]
        """)  # noqa: E501


def test_only_missing_networks_are_created_and_present_images_not_pulled(tmp_path: Path
                                                                         ) -> None:
    state = project(tmp_path, "web")
    present = f"{REGISTRY}/demo/web@{digest_of(WEB_V1)}"
    plan = plan_of(state, snapshot(networks=("shop_default",), images=(present,)))
    assert [a.heading() for a in plan.actions] == [
        "network shop_backend: driver bridge", "create shop-web-1: missing"]
    assert plan.actions[0].steps[0].kind == StepKind.NETWORK_CREATE
    assert plan.actions[0].steps[0].tolerate == frozenset({409})  # created meanwhile: fine


def test_no_network_is_created_when_nothing_is(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    live = recorded("inspect_running_healthy", state, "web",
                    change=with_host_config("inspect_running_healthy", Memory=32 << 20))
    assert plan_of(state, snapshot(live)).text() == expect("""
        h1:
          update shop-web-1: in place: resources.Memory: 33554432 -> 67108864
        """)


def test_a_moved_tag_replaces_a_fixed_port_container_stop_first(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    running = snapshot(recorded("inspect_running_healthy", state, "web"), networks=NETWORKS)
    assert plan_of(state, running, moved={WEB_V1: DIGEST_MOVED}).text() == expect(f"""
        h1:
          pull {REGISTRY}/demo/web@sha256:222222222222: needed by shop-web-1
          recreate shop-web-1 (stop-first): image_changed: {WEB_V1} now resolves to sha256:222222222222 (running sha256:70636840d081)
            1. rename shop-web-1 [{WEB_ID}] -> shop-web-1--r1-old: set aside, so it can come back [undo: rename shop-web-1--r1-old [{WEB_ID}] -> shop-web-1]
            2. stop shop-web-1--r1-old [{WEB_ID}] (grace 10s): free its host port(s) and name [undo: start shop-web-1--r1-old [{WEB_ID}]]
            3. create shop-web-1 from {REGISTRY}/demo/web@sha256:222222222222, revision 2: the new container [undo: remove shop-web-1]
            4. connect shop-web-1 to shop_default: one network at create; the others now
            5. start shop-web-1: start the new container
            6. wait-ready shop-web-1 (up to 120s): {READY} [commit]
            7. remove shop-web-1--r1-old [{WEB_ID}]: replaced by the new container
        """)  # noqa: E501


def test_a_stop_first_replacement_interrupted_after_the_rename_goes_on(tmp_path: Path
                                                                       ) -> None:
    state = project(tmp_path, "web")
    aside = recorded("inspect_running_healthy", state, "web",
                     change={"Name": "/shop-web-1--r1-old",
                             "State": body("inspect_exited")["State"]})
    plan = plan_of(state, snapshot(aside, networks=NETWORKS), moved={WEB_V1: DIGEST_MOVED})
    assert plan.text() == expect(f"""
        h1:
          pull {REGISTRY}/demo/web@sha256:222222222222: needed by shop-web-1
          recreate shop-web-1 (stop-first): image_changed: {WEB_V1} now resolves to sha256:222222222222 (running sha256:70636840d081)
            1. stop shop-web-1--r1-old [{WEB_ID}] (grace 10s): free its host port(s) and name [undo: start shop-web-1--r1-old [{WEB_ID}]; rename shop-web-1--r1-old [{WEB_ID}] -> shop-web-1]
            2. create shop-web-1 from {REGISTRY}/demo/web@sha256:222222222222, revision 2: the new container [undo: remove shop-web-1]
            3. connect shop-web-1 to shop_default: one network at create; the others now
            4. start shop-web-1: start the new container
            5. wait-ready shop-web-1 (up to 120s): {READY} [commit]
            6. remove shop-web-1--r1-old [{WEB_ID}]: replaced by the new container
        """)  # noqa: E501


def _stale_job(state: DesiredState) -> ObservedContainer:
    job = recorded("inspect_exited", state, "job",
                   change={"State": body("inspect_running_healthy")["State"]})
    spec = {**json.loads(job.labels[labels.SPEC]), "command": ["old"]}
    return dataclasses.replace(job, labels={**job.labels, labels.SPEC_HASH: "0" * 64,
                                            labels.SPEC: json.dumps(spec)})


def test_a_container_without_a_fixed_port_is_replaced_start_first(tmp_path: Path) -> None:
    state = project(tmp_path, "job")
    plan = plan_of(state, snapshot(_stale_job(state), networks=NETWORKS))
    assert plan.text() == expect(f"""
        h1:
          pull {REGISTRY}/demo/web@sha256:70636840d081: needed by shop-job-1
          recreate shop-job-1 (start-first): config_changed: command: ['old'] -> None
            1. create shop-job-1--r2 from {REGISTRY}/demo/web@sha256:70636840d081, revision 2: the new container [undo: remove shop-job-1--r2]
            2. start shop-job-1--r2: start the new container
            3. wait-ready shop-job-1--r2 (up to 120s): {READY} [commit]
            4. stop shop-job-1 [4dfe246afe28] (grace 10s): replaced by the new container
            5. remove shop-job-1 [4dfe246afe28]: replaced by the new container
            6. rename shop-job-1--r2 -> shop-job-1: the new container takes the name
        """)  # noqa: E501


def test_a_temporary_name_held_by_a_kept_container_is_not_reused(tmp_path: Path) -> None:
    state = project(tmp_path, "job")
    squatter = recorded("inspect_paused", state, None, change={"Name": "/shop-job-1--r2"})
    plan = plan_of(state, snapshot(_stale_job(state), squatter),
                   prune=False)
    recreate = next(a for a in plan.actions if a.kind == ActionKind.RECREATE)
    assert [s.what() for s in recreate.steps] == [
        f"create shop-job-1--r2-2 from {REGISTRY}/demo/web@sha256:70636840d081, revision 2",
        "start shop-job-1--r2-2",
        "wait-ready shop-job-1--r2-2 (up to 120s)",
        "stop shop-job-1 [4dfe246afe28] (grace 10s)",
        "remove shop-job-1 [4dfe246afe28]",
        "rename shop-job-1--r2-2 -> shop-job-1",
    ]
    # With pruning, the leftover goes first and its name is free again.
    pruned = plan_of(state, snapshot(_stale_job(state), squatter))
    assert pruned.actions[0].heading() == (
        "remove shop-job-1--r2: orphan: service 'worker' is no longer in the playbook")
    assert "create shop-job-1--r2 from" in pruned.text()


def test_stopped_created_and_unhealthy_containers_are_started_or_restarted(tmp_path: Path
                                                                          ) -> None:
    state = project(tmp_path, "canary", "cron", "job")
    observed = snapshot(recorded("inspect_exited", state, "job"),
                        recorded("inspect_created", state, "cron"),
                        recorded("inspect_unhealthy", state, "canary"))
    assert plan_of(state, observed).text() == expect(f"""
        h1:
          restart shop-canary-1: healthcheck reports unhealthy
            1. stop shop-canary-1 [d0c67064a162] (grace 10s): healthcheck reports unhealthy
            2. start shop-canary-1 [d0c67064a162]: healthcheck reports unhealthy
            3. wait-ready shop-canary-1 [d0c67064a162] (up to 120s): {READY}
          start shop-cron-1: container is created
            1. start shop-cron-1 [0ee657f3dc14]: container is created
            2. wait-ready shop-cron-1 [0ee657f3dc14] (up to 120s): {READY}
          start shop-job-1: container is exited
            1. start shop-job-1 [4dfe246afe28]: container is exited
            2. wait-ready shop-job-1 [4dfe246afe28] (up to 120s): {READY}
        """)


def test_orphans_and_extras_are_removed_first_unless_no_prune(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    web = recorded("inspect_running_healthy", state, "web")
    extra = dataclasses.replace(web, id="e" * 64, name="shop-web-2",
                                labels={**web.labels, labels.REPLICA: "2"})
    orphan = recorded("inspect_paused", state)  # service 'worker', gone from the playbook
    observed = snapshot(web, orphan, extra, networks=NETWORKS)
    assert plan_of(state, observed).text() == expect("""
        h1:
          remove shop-web-2: extra: replica 2 is not desired on this host
            1. stop shop-web-2 [eeeeeeeeeeee] (grace 10s): extra: replica 2 is not desired on this host
            2. remove shop-web-2 [eeeeeeeeeeee]: extra: replica 2 is not desired on this host
          remove shop-worker-1: orphan: service 'worker' is no longer in the playbook
            1. stop shop-worker-1 [d7c0a28f38b1] (grace 10s): orphan: service 'worker' is no longer in the playbook
            2. remove shop-worker-1 [d7c0a28f38b1]: orphan: service 'worker' is no longer in the playbook
        """)  # noqa: E501
    assert plan_of(state, observed, prune=False).text() == ""


def test_a_foreign_container_on_the_port_blocks_and_is_never_touched(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    foreign = recorded("inspect_foreign", state, change=with_host_config(
        "inspect_foreign", PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}))
    plan = plan_of(state, snapshot(foreign, networks=NETWORKS))
    assert plan.text() == expect("""
        h1:
          blocked shop-web-1: container(s) not managed by project 'shop' hold its name or host port: legacy-proxy
        """)  # noqa: E501
    assert plan.actions == ()


def test_the_stop_grace_period_is_the_stopped_containers_own(tmp_path: Path) -> None:
    state = project(tmp_path, "job")
    job = _stale_job(state)
    spec = {**json.loads(job.labels[labels.SPEC]), "stop_grace_period": 42}
    job = dataclasses.replace(job, labels={**job.labels, labels.SPEC: json.dumps(spec)})
    recreate = next(a for a in plan_of(state, snapshot(job)).actions
                    if a.kind == ActionKind.RECREATE)
    assert recreate.steps[3].what() == "stop shop-job-1 [4dfe246afe28] (grace 42s)"
