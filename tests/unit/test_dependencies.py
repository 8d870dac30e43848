"""depends_on at run time, the pure half: the rollout order, the conditions judged from what
a host reports, one-shot jobs in the diff and the plan, restart: true, and what validation
refuses (fleet.core.dependencies, fleet.core.health, fleet.core.policy)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from textwrap import dedent
from typing import Any

from config_support import playbook, problems
from docker_fixtures import body
from planner_support import REGISTRY, WEB_V1, digests, recorded

from fleet.config.compose_fields import Dependency
from fleet.config.project import ProjectFiles, read_project
from fleet.config.service import UpdatePolicy
from fleet.core import labels, policy
from fleet.core.dependencies import (
    COMPLETED,
    HEALTHY,
    STARTED,
    job_services,
    project_waits,
    rollout_order,
    waits_of,
)
from fleet.core.desired import DesiredState, desired_state
from fleet.core.diff import DiffContext, Kind, diff_host
from fleet.core.health import NOT_DONE, ConditionWatch, ExitWatch, condition_met
from fleet.core.observed import HostSnapshot, ObservedContainer
from fleet.core.plan import ActionKind, HostPlan, Plan, StepKind, plan_host
from fleet.core.policy import HostOutcome, HostReport
from fleet.core.refs import ServiceRefs

PINNED = f"{REGISTRY}/demo/web@sha256:70636840d081"
READY = "running, and healthy if it has a healthcheck"
DONE = "a one-shot job: exited with code 0"
LIVE = "mem_limit: 64m, cpus: 0.5, restart: 'on-failure:3'"  # as the recorded container runs
APP = f"""
project: shop
inventory: inv.yml
services:
  web:
    image: {WEB_V1}
    x-live: &live {{{LIVE}}}
    <<: *live
    depends_on:
      db: {{condition: service_healthy, restart: true}}
      migrate: {{condition: service_completed_successfully}}
  migrate:
    image: {WEB_V1}
    command: [migrate]
    depends_on: [db]
  db:
    image: {WEB_V1}
    <<: *live
    healthcheck: {{test: [CMD, "true"], interval: 1s}}
"""


def expect(text: str) -> str:
    return dedent(text).strip("\n")


def app(tmp_path: Path, text: str = APP) -> DesiredState:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 198.18.9.1}\n")
    (tmp_path / "pb.yml").write_text(text)
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))


def plan(state: DesiredState, *containers: ObservedContainer) -> tuple[HostPlan, Plan]:
    observed = HostSnapshot("h1", containers)
    context = DiffContext("shop", frozenset(state.services), state.secrets, digests())
    waits = state.waits()
    host = plan_host(diff_host(state.containers["h1"], observed, context), observed, "shop",
                     digests(), policies={n: s.update for n, s in state.services.items()},
                     waits=waits)
    return host, Plan("shop", (host,), order=tuple(rollout_order(list(state.services), waits)))


def job_exited(state: DesiredState, code: int) -> ObservedContainer:
    exited = {**body("inspect_exited")["State"], "ExitCode": code}
    return recorded("inspect_exited", state, "migrate",
                    change={"State": exited, "Name": "/shop-migrate-1"})


def running(state: DesiredState, service: str) -> ObservedContainer:
    """The recorded running container, as `service`'s (db gets an id of its own)."""
    change: dict[str, Any] = {"Name": f"/shop-{service}-1"}
    if service == "db":
        change["Id"] = "d" * 64
    return recorded("inspect_running_healthy", state, service, change=change)


def stale(container: ObservedContainer) -> ObservedContainer:
    """`container` as made from an older spec (another command)."""
    spec = {**json.loads(container.labels[labels.SPEC]), "command": ["old"]}
    return dataclasses.replace(container, labels={
        **container.labels, labels.SPEC_HASH: "0" * 64, labels.SPEC: json.dumps(spec)})


# -- the order ---------------------------------------------------------------------------------


def waits(**given: dict[str, str]) -> dict[str, dict[str, Dependency]]:
    return {name: {t: Dependency(condition=c) for t, c in own.items()}
            for name, own in given.items()}


def test_services_roll_out_after_what_they_wait_for_else_in_playbook_order() -> None:
    found = waits(web={"db": HEALTHY, "migrate": COMPLETED}, migrate={"db": STARTED}, db={})
    assert rollout_order(["web", "migrate", "db"], found) == ["db", "migrate", "web"]
    assert rollout_order(["b", "a", "c"], {}) == ["b", "a", "c"]
    # Free services keep playbook order; a waiting one goes as soon as it can.
    assert rollout_order(["web", "cache", "db", "worker"], waits(web={"db": STARTED})) == [
        "cache", "db", "web", "worker"]
    # A dependency that is not in the project (required: false) orders nothing.
    assert rollout_order(["web", "db"], waits(web={"gone": STARTED})) == ["web", "db"]


def test_a_cycle_left_in_loses_no_service() -> None:
    assert rollout_order(["a", "b", "c"], waits(a={"b": STARTED}, b={"a": STARTED})) == [
        "c", "a", "b"]


def test_links_and_shared_namespaces_are_waited_for_as_started() -> None:
    refs = ServiceRefs({"db": Dependency(condition=HEALTHY)}, ("cache:kv", "db:database"),
                       (("volumes_from", 0, "files"),))
    assert waits_of(refs) == {"db": Dependency(condition=HEALTHY), "cache": Dependency(),
                              "files": Dependency()}
    # Only services of the project are waited for.
    assert project_waits({"web": refs, "db": ServiceRefs()}) == {
        "web": {"db": Dependency(condition=HEALTHY)}, "db": {}}


def test_a_job_is_what_a_dependent_waits_for_to_complete(tmp_path: Path) -> None:
    state = app(tmp_path)
    assert state.jobs == {"migrate"} == job_services(state.waits())
    assert {c.service: c.job for c in state.containers["h1"]} == {
        "db": False, "migrate": True, "web": False}
    # What waits for a service is not part of its containers' spec.
    alone = app(tmp_path / "alone", APP.replace("service_completed_successfully",
                                                "service_started"))
    assert not any(c.job for c in alone.containers["h1"])
    assert ([c.spec_hash for c in alone.containers["h1"]]
            == [c.spec_hash for c in state.containers["h1"]])


# -- the plan ----------------------------------------------------------------------------------


def test_the_plan_shows_the_order_and_what_each_container_waits_for(tmp_path: Path) -> None:
    _, whole = plan(app(tmp_path))
    assert whole.text() == expect(f"""
        rollout order: db, migrate, web
        h1:
          pull {PINNED}: needed by shop-db-1
          create shop-db-1: missing
            1. create shop-db-1 from {PINNED}, revision 1: the new container [undo: remove shop-db-1]
            2. start shop-db-1: start the new container
            3. wait-ready shop-db-1 (up to 120s): {READY} [commit]
          create shop-migrate-1: missing; after db (started)
            1. create shop-migrate-1 from {PINNED}, revision 1: the new container [undo: remove shop-migrate-1]
            2. start shop-migrate-1: start the new container
            3. wait-exit shop-migrate-1 (up to 120s): {DONE} [commit]
          create shop-web-1: missing; after db (healthy), migrate (completed successfully)
            1. create shop-web-1 from {PINNED}, revision 1: the new container [undo: remove shop-web-1]
            2. start shop-web-1: start the new container
            3. wait-ready shop-web-1 (up to 120s): {READY} [commit]
        """)  # noqa: E501


def test_without_dependencies_the_plan_is_as_before(tmp_path: Path) -> None:
    state = app(tmp_path, APP.replace("    depends_on: [db]\n", "").replace(
        "    depends_on:\n      db: {condition: service_healthy, restart: true}\n"
        "      migrate: {condition: service_completed_successfully}\n", ""))
    host, _ = plan(state)
    observed = HostSnapshot("h1", ())
    context = DiffContext("shop", frozenset(state.services), state.secrets, digests())
    before = plan_host(diff_host(state.containers["h1"], observed, context), observed, "shop",
                       digests(), policies={n: s.update for n, s in state.services.items()})
    assert host == before
    assert Plan("shop", (host,)).text() == host.text()
    assert "after" not in host.text() and "wait-exit" not in host.text()


def test_a_job_that_exited_0_is_in_sync_one_that_failed_runs_again(tmp_path: Path) -> None:
    state = app(tmp_path)
    done = (running(state, "db"), job_exited(state, 0), running(state, "web"))
    host, whole = plan(state, *done)
    assert [f.kind for f in host.findings] == [Kind.IN_SYNC] * 3
    assert whole.text() == ""
    failed = (running(state, "db"), job_exited(state, 3), running(state, "web"))
    host, _ = plan(state, *failed)
    assert [(f.service, f.kind, f.detail) for f in host.findings if f.kind != Kind.IN_SYNC] == [
        ("migrate", Kind.STOPPED, "job exited with code 3")]
    assert host.text() == expect(f"""
        h1:
          start shop-migrate-1: job exited with code 3; after db (started)
            1. start shop-migrate-1 [4dfe246afe28]: job exited with code 3
            2. wait-exit shop-migrate-1 [4dfe246afe28] (up to 120s): {DONE}
        """)
    # Still running is in sync too (it is doing what it should); never started is not.
    still = recorded("inspect_exited", state, "migrate", change={
        "Name": "/shop-migrate-1", "State": body("inspect_running_healthy")["State"]})
    never = recorded("inspect_created", state, "migrate", change={"Name": "/shop-migrate-1"})
    assert [f.kind for f in plan(state, still)[0].findings if f.service == "migrate"] == [
        Kind.IN_SYNC]
    assert [(f.kind, f.detail) for f in plan(state, never)[0].findings
            if f.service == "migrate"] == [(Kind.STOPPED, "job container is created")]


def test_a_changed_job_is_replaced_start_first_and_waited_for_to_exit(tmp_path: Path) -> None:
    state = app(tmp_path)
    host, _ = plan(state, running(state, "db"), stale(job_exited(state, 0)),
                   running(state, "web"))
    recreate = next(a for a in host.actions if a.kind == ActionKind.RECREATE)
    assert [(s.kind, s.target, s.commit) for s in recreate.steps] == [
        (StepKind.CREATE, "shop-migrate-1--r2", False),
        (StepKind.START, "shop-migrate-1--r2", False),
        (StepKind.WAIT_EXIT, "shop-migrate-1--r2", True),
        (StepKind.STOP, body("inspect_exited")["Id"], False),
        (StepKind.REMOVE, body("inspect_exited")["Id"], False),
        (StepKind.RENAME, "shop-migrate-1--r2", False)]
    # Its run is not health-gated afterwards (it exited), the others are.
    assert policy.gated_names([recreate]) == []


def test_restart_true_restarts_the_dependent_when_its_dependency_is_replaced(tmp_path: Path
                                                                             ) -> None:
    state = app(tmp_path)
    db = stale(running(state, "db"))
    host, _ = plan(state, db, job_exited(state, 0), running(state, "web"))
    web_id = body("inspect_running_healthy")["Id"][:12]
    assert [a.heading() for a in host.actions] == [
        "pull 198.18.6.1:5000/demo/web@sha256:70636840d081: needed by shop-db-1",
        "recreate shop-db-1 (start-first): config_changed: command: ['old'] -> None",
        # migrate waits for db too, but without restart: true; an exited job is not
        # restarted anyway.
        "restart shop-web-1: db is replaced on this host (depends_on with restart: true); "
        "after db (healthy), migrate (completed successfully)"]
    restart = host.actions[-1]
    assert [s.what() for s in restart.steps] == [
        f"stop shop-web-1 [{web_id}] (grace 10s)", f"start shop-web-1 [{web_id}]",
        f"wait-ready shop-web-1 [{web_id}] (up to 120s)"]
    assert restart.service == "web"
    # A dependent replaced anyway is not restarted as well.
    host, _ = plan(state, db, job_exited(state, 0), stale(running(state, "web")))
    assert [a.kind for a in host.actions if a.service == "web"] == [ActionKind.RECREATE]


# -- validation --------------------------------------------------------------------------------


def _problems(tmp_path: Path, services: str) -> list[str]:
    return [f"{p.severity}: {'.'.join(map(str, p.path))}: {p.message}"
            for p in problems(tmp_path, playbook(tmp_path, services))]


def test_service_healthy_needs_a_healthcheck_it_can_pass(tmp_path: Path) -> None:
    refused = ("error: services.web.depends_on.db: service 'web' waits for 'db' to be healthy "
               "(condition: service_healthy), but 'db' has no healthcheck, so it can never "
               "become healthy: give 'db' a healthcheck (a HEALTHCHECK only in its image is "
               "not seen before it runs; `healthcheck: {interval: 5s}` declares that one), or "
               "wait for condition: service_started")
    web = "web: {image: nginx, depends_on: {db: {condition: service_healthy}}}\n"
    assert _problems(tmp_path, web + "db: {image: postgres}\n") == [refused]
    assert _problems(tmp_path, web + "db: {image: postgres, healthcheck: {disable: true}}\n"
                     ) == [refused]
    assert _problems(tmp_path, web + "db: {image: postgres, healthcheck: {test: [NONE]}}\n"
                     ) == [refused]
    assert _problems(tmp_path, web + "db: {image: postgres, healthcheck: {interval: 5s}}\n"
                     ) == []
    optional = web.replace("service_healthy}", "service_healthy, required: false}")
    assert _problems(tmp_path, optional + "db: {image: postgres}\n") == [
        refused.replace("error:", "warning:", 1)]


def test_a_job_must_not_be_restarted_by_docker(tmp_path: Path) -> None:
    web = "web: {image: nginx, depends_on: {migrate: {condition: " \
          "service_completed_successfully}}}\n"
    why = ("service 'migrate' is a one-shot job (service 'web' waits for it with condition: "
           "service_completed_successfully), so it must run to completion and stay exited; "
           "restart: {} would start it again: use 'no' or 'on-failure'")
    assert _problems(tmp_path, web + "migrate: {image: busybox, restart: unless-stopped}\n") == [
        "error: services.migrate.restart: " + why.format("unless-stopped")]
    assert _problems(tmp_path, web + "migrate: {image: busybox, deploy: {restart_policy: "
                                     "{condition: any}}}\n") == [
        "error: services.migrate.deploy.restart_policy: " + why.format("always")]
    assert _problems(tmp_path, web + "migrate: {image: busybox, restart: on-failure:3}\n") == []


def test_a_dependency_on_no_host_of_its_dependent_is_a_warning(tmp_path: Path) -> None:
    text = ("web: {image: nginx, hosts: web, depends_on: [db]}\n"
            "db: {image: postgres, hosts: db}\n")
    assert _problems(tmp_path, text) == [
        "warning: services.web.depends_on.0: service 'web' depends on 'db', but no host runs "
        "both: its condition (service_started) is checked only on hosts where both run, so "
        "never; 'db' still rolls out before 'web'"]
    assert _problems(tmp_path, text.replace("hosts: db", "hosts: 'db,web1'")) == []


# -- the conditions, judged ----------------------------------------------------------------------


def state_of(status: str, exit_code: int = 0, health: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"Status": status, "ExitCode": exit_code}
    if health:
        state["Health"] = {"Status": health}
    return state


def test_each_condition_is_judged_from_the_containers_state() -> None:
    cases = [
        (STARTED, state_of("running"), (True, "")),
        (STARTED, state_of("created"), (False, "")),
        (STARTED, state_of("restarting"), (False, "")),
        (STARTED, state_of("exited", 0), (True, "is not running")),
        (HEALTHY, state_of("running", health="healthy"), (True, "")),
        (HEALTHY, state_of("running", health="starting"), (False, "")),
        (HEALTHY, state_of("running", health="unhealthy"), (True, "is not healthy")),
        (HEALTHY, state_of("running"),
         (True, "has no healthcheck, so it can never be healthy")),
        (HEALTHY, state_of("exited", 1), (True, "is not running")),
        (COMPLETED, state_of("exited", 0), (True, "")),
        (COMPLETED, state_of("exited", 1), (True, NOT_DONE)),
        (COMPLETED, state_of("dead"), (True, NOT_DONE)),
        (COMPLETED, state_of("running"), (False, "")),
    ]
    for condition, state, (done, why) in cases:
        verdict = condition_met(condition, state)
        assert (verdict.done, verdict.failure) == (done, why), (condition, state)
        assert verdict.passed == (done and not why)
    # A job that is waited for as merely started has started once it ran to exit code 0.
    assert condition_met(STARTED, state_of("exited", 0), job=True).passed
    assert condition_met(STARTED, state_of("exited", 2), job=True).failure == NOT_DONE


def test_a_condition_not_met_in_time_fails_with_the_timeout() -> None:
    watch = ConditionWatch(0.0, 30.0, HEALTHY)
    starting = {"State": state_of("running", health="starting")}
    assert not watch.observe(29.0, starting).done
    assert watch.observe(31.0, starting).failure == "is not healthy after 30s"
    assert ConditionWatch(0.0, 5.0, COMPLETED).observe(6.0, {"State": state_of(
        "running")}).failure == "is not done after 5s"


def test_a_job_is_ready_once_exited_with_code_0_within_its_timeout() -> None:
    watch = ExitWatch(0.0, 10.0)
    assert watch.observe(1.0, {"State": state_of("exited", 0)}).passed
    assert watch.observe(1.0, {"State": state_of("exited", 1)}).failure == NOT_DONE
    assert not watch.observe(1.0, {"State": state_of("running")}).done
    assert not watch.observe(1.0, {"State": state_of("restarting")}).done
    assert watch.observe(11.0, {"State": state_of("running")}).failure == (
        "still running after 10s")


# -- before a host's change: what blocks it, what it waits for ---------------------------------


def test_a_dependency_that_failed_on_the_host_blocks_the_dependent_there(tmp_path: Path
                                                                         ) -> None:
    state = app(tmp_path)
    host, _ = plan(state)
    web_actions = [a for a in host.actions if a.service == "web"]
    here: dict[str, list[Any]] = {}
    for container in state.containers["h1"]:
        here.setdefault(container.service, []).append(container)
    policies = {"db": UpdatePolicy(timeout=30), "migrate": UpdatePolicy(timeout=60)}
    own = state.waits()["web"]
    done = [HostReport("h1", "db", HostOutcome.CHANGED),
            HostReport("h2", "migrate", HostOutcome.FAILED, "exited 1"),
            HostReport("h1", "migrate", HostOutcome.CHANGED)]
    check = policy.dependency_check("h1", web_actions, own, done, here, policies)
    assert check.refusal == "" and check.notes == ()
    assert check.waits == (
        policy.DependencyWait("db", HEALTHY, ("shop-db-1",), 30.0),
        policy.DependencyWait("migrate", COMPLETED, ("shop-migrate-1",), 60.0, job=True))
    failed = [*done, HostReport("h1", "migrate", HostOutcome.FAILED,
                                "create shop-migrate-1: did not complete successfully")]
    assert policy.dependency_check("h1", web_actions, own, failed, here, policies).refusal == (
        "by dependency migrate (service_completed_successfully): it failed on this host "
        "(create shop-migrate-1: did not complete successfully)")
    undone = [*done, HostReport("h1", "db", HostOutcome.ROLLED_BACK)]
    assert policy.dependency_check("h1", web_actions, own, undone, here, policies).refusal == (
        "by dependency db (service_healthy): it was rolled back on this host")
    # Where the dependency does not run, there is nothing to wait for.
    elsewhere = {"web": here["web"]}
    assert policy.dependency_check("h1", web_actions, own, failed, elsewhere,
                                   policies) == policy.DependencyCheck()
    # An optional dependency never blocks: it is noted.
    optional = {**own, "migrate": Dependency(condition=COMPLETED, required=False)}
    check = policy.dependency_check("h1", web_actions, optional, failed, here, policies)
    assert check.refusal == "" and [w.service for w in check.waits] == ["db"]
    assert check.notes == (
        "optional dependency migrate (service_completed_successfully): it failed on this "
        "host (create shop-migrate-1: did not complete successfully); going on",)
    # A change that brings no container up (an in-place update) waits for nothing.
    assert policy.dependency_check("h1", [], own, failed, here,
                                   policies) == policy.DependencyCheck()
