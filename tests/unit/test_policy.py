"""Rollout decisions and health judgements: pure, over recorded outcomes and an injected clock."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from docker_fixtures import body
from planner_support import DIGEST_MOVED, WEB_V1, plan_of, project, recorded, snapshot

from fleet.config.service import UpdatePolicy
from fleet.core import labels, policy
from fleet.core.health import MonitorWatch, ReadyWatch, run_identity
from fleet.core.plan import ActionKind
from fleet.core.policy import HostOutcome, HostReport, Next


def reports(*outcomes: HostOutcome) -> list[HostReport]:
    return [HostReport(f"h{i}", "web", outcome) for i, outcome in enumerate(outcomes)]


def test_failures_within_the_budget_go_on() -> None:
    decision = policy.after_batch("web", UpdatePolicy(max_failures=1),
                                  reports(HostOutcome.FAILED, HostOutcome.CHANGED), 4)
    assert decision.next == Next.GO_ON and decision.why == ""


def test_beyond_the_budget_on_failure_decides() -> None:
    failed = reports(HostOutcome.FAILED, HostOutcome.BLOCKED, HostOutcome.CHANGED)
    why = "web: 1 host(s) failed, more than max_failures (0); on_failure: "
    for on_failure, expected in (("rollback", Next.ROLL_BACK), ("pause", Next.STOP),
                                 ("continue", Next.GO_ON)):
        decision = policy.after_batch("web", UpdatePolicy(on_failure=on_failure), failed, 3)
        assert (decision.next, decision.why) == (expected, why + on_failure)


def test_a_percentage_budget_rounds_down() -> None:
    four_failed = reports(*[HostOutcome.FAILED] * 4)
    assert policy.after_batch("web", UpdatePolicy(max_failures="50%"), four_failed[:3],
                              7).next == Next.GO_ON
    assert policy.after_batch("web", UpdatePolicy(max_failures="50%"), four_failed,
                              7).next == Next.ROLL_BACK


def test_a_canary_is_watched_for_the_longer_of_monitor_and_canary_wait() -> None:
    assert policy.monitor_seconds(UpdatePolicy(monitor=5, canary_wait=30), canary=True) == 30
    assert policy.monitor_seconds(UpdatePolicy(monitor=5, canary_wait=30), canary=False) == 5


def test_undoing_a_replacement_returns_to_the_recorded_revision(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    observed = snapshot(recorded("inspect_running_healthy", state, "web"),
                        networks=("shop_default", "shop_backend"))
    recreate = next(a for a in plan_of(state, observed, moved={WEB_V1: DIGEST_MOVED}).actions
                    if a.kind == ActionKind.RECREATE)
    report = HostReport("h1", "web", HostOutcome.FAILED, "gate failed", [recreate],
                        {"shop-web-1": "f" * 64})
    undo, problems = policy.undo_plan(report, "shop", state.secrets, 120.0)
    assert problems == []
    assert [a.heading() for a in undo] == ["recreate shop-web-1 (stop-first): rollback"]
    back = undo[0]
    assert back.revision == 3 and back.observed is not None
    assert back.observed.id == "f" * 64  # the container the rollout made, by its id
    assert back.image.endswith(body("inspect_running_healthy")["Config"]["Image"][-64:])
    assert back.desired is not None and back.desired.options["image"] == WEB_V1
    assert [s.kind for s in back.steps][:2] == ["rename", "stop"]  # stop-first, kept aside


def test_undoing_a_create_removes_what_it_made_and_nothing_else(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    create = next(a for a in plan_of(state, snapshot()).actions
                  if a.kind == ActionKind.CREATE)
    made = HostReport("h1", "web", HostOutcome.FAILED, "", [create], {"shop-web-1": "a" * 64})
    undo, _ = policy.undo_plan(made, "shop", state.secrets, 120.0)
    assert [(a.heading(), a.steps[-1].target) for a in undo] == [
        ("remove shop-web-1: rollback", "a" * 64)]
    never = HostReport("h1", "web", HostOutcome.FAILED, "", [create], {})
    assert policy.undo_plan(never, "shop", state.secrets, 120.0) == ([], [])


def state_of(fixture: str, **changes: object) -> dict[str, object]:
    data = body(fixture)
    data["State"] = {**data["State"], **changes}
    return data


def test_ready_with_a_healthcheck_is_healthy_at_once() -> None:
    watch = ReadyWatch(started=0.0, timeout=10)
    assert not watch.observe(0.0, body("inspect_running_starting")).done
    assert watch.observe(0.5, body("inspect_running_healthy")).passed


def test_without_a_healthcheck_running_must_settle_without_a_restart() -> None:
    running = state_of("inspect_created", Status="running", Running=True)
    watch = ReadyWatch(started=0.0, timeout=10, settle=1.0)
    assert not watch.observe(0.0, running).done
    assert watch.observe(1.0, running).passed
    restarted = ReadyWatch(started=0.0, timeout=10, settle=1.0)
    restarted.observe(0.0, running)
    verdict = restarted.observe(0.5, state_of("inspect_created", Status="running",
                                              StartedAt="2026-12-01T00:00:09Z"))
    assert verdict.done and verdict.failure == "restarted while starting"


def test_unhealthy_or_exited_fail_and_a_slow_start_times_out() -> None:
    assert ReadyWatch(0.0, 10).observe(0.0, body("inspect_unhealthy")).failure == ""
    assert not ReadyWatch(0.0, 10).observe(0.0, body("inspect_unhealthy")).passed
    assert ReadyWatch(0.0, 10).observe(0.0, body("inspect_exited")).done
    slow = ReadyWatch(0.0, 10)
    assert not slow.observe(9.0, body("inspect_running_starting")).done
    assert slow.observe(10.5, body("inspect_running_starting")).failure == "not ready after 10s"


def test_monitoring_fails_on_a_restart_or_a_lost_health() -> None:
    healthy = body("inspect_running_healthy")
    watch = MonitorWatch(until=5.0, identities={"c": run_identity(healthy)})
    assert not watch.observe("c", healthy).done and not watch.over(4.9) and watch.over(5.0)
    again = {**healthy, "RestartCount": 1}
    assert watch.observe("c", again).failure == "restarted during monitoring"
    assert watch.observe("c", body("inspect_unhealthy")).failure == "did not stay healthy"


def test_undo_refuses_a_recorded_spec_that_names_a_secret_the_host_is_not_given(
        tmp_path: Path) -> None:
    """A host's forged fleet.spec label cannot make an automatic rollback send it a value."""
    state = project(tmp_path, "web")
    old = recorded("inspect_running_healthy", state, "web")
    spec = json.loads(old.labels[labels.SPEC])
    spec["environment"] = {"STOLEN": "<secret:FLEET_SECRET_KEY:0000>"}
    forged = dataclasses.replace(old, labels={**old.labels, labels.SPEC: json.dumps(spec)})
    observed = snapshot(forged, networks=("shop_default", "shop_backend"))
    recreate = next(a for a in plan_of(state, observed, moved={WEB_V1: DIGEST_MOVED}).actions
                    if a.kind == ActionKind.RECREATE)
    report = HostReport("h1", "web", HostOutcome.FAILED, "gate failed", [recreate],
                        {"shop-web-1": "f" * 64})
    for store in (state.secrets, state.secrets_for("h1")):
        undo, problems = policy.undo_plan(report, "shop", store, 120.0)
        assert undo == []
        assert problems == ["shop-web-1: its recorded spec uses secret "
                            "'FLEET_SECRET_KEY', which the playbook does not give this host"]


def test_a_create_waits_until_its_container_is_ready_and_the_gate_knows(tmp_path: Path) -> None:
    state = project(tmp_path, "web")
    create = next(a for a in plan_of(state, snapshot()).actions
                  if a.kind == ActionKind.CREATE)
    assert policy.waited_ready([create]) == frozenset(policy.gated_names([create]))
    assert policy.waited_ready([]) == frozenset()
