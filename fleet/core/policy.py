"""Rollout decisions over recorded outcomes (pure): how a service's hosts are stepped
through, whether a batch's failures stop the rollout or roll it back, which hosts a
rollback returns and with which actions. The driver (fleet.engine.rollout) does the I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from fleet.config.compose_fields import Dependency
from fleet.config.secrets import SecretStore
from fleet.config.service import UpdatePolicy
from fleet.core import labels
from fleet.core.desired import DesiredContainer, spec_hash
from fleet.core.files import delivered_names
from fleet.core.host_resources import named_volumes
from fleet.core.observed import ObservedContainer
from fleet.core.plan import (
    BRINGS_UP,
    Action,
    ActionKind,
    Order,
    StepKind,
    create_action,
    recreate_action,
    remove_action,
    update_action,
)
from fleet.core.resources import options_from_resources
from fleet.core.revisions import recorded_container
from fleet.core.schedule import Batch, failure_budget

# Done everywhere before any change.
PREPARATIONS = (ActionKind.PULL, ActionKind.LOAD, ActionKind.NETWORK, ActionKind.VOLUME,
                ActionKind.DELIVER)


class HostOutcome(StrEnum):
    CHANGED = "changed"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    BLOCKED = "blocked"  # could not start: a conflict or a failed pull (nothing was changed)
    UNTOUCHED = "untouched"  # not reached: the rollout stopped before it


@dataclass
class HostReport:
    """What happened to one service on one host."""

    host: str
    service: str
    outcome: HostOutcome
    detail: str = ""
    done: list[Action] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # name -> id made on the host
    previous_kept: bool = False  # failed, but the old container was kept or restarted


class Next(StrEnum):
    GO_ON = "go-on"
    STOP = "stop"
    ROLL_BACK = "roll-back"  # return the changed hosts, then stop


@dataclass(frozen=True)
class Decision:
    next: Next
    why: str = ""


def after_batch(service: str, policy: UpdatePolicy, reports: Sequence[HostReport],
                hosts: int) -> Decision:
    """After each batch: the failures so far against the budget (max_failures of `hosts`)."""
    failed = sum(1 for r in reports if r.outcome == HostOutcome.FAILED)
    budget = failure_budget(policy, hosts)
    if failed <= budget:
        return Decision(Next.GO_ON)
    why = (f"{service}: {failed} host(s) failed, more than max_failures ({budget}); "
           f"on_failure: {policy.on_failure}")
    if policy.on_failure == "continue":
        return Decision(Next.GO_ON, why)
    return Decision(Next.ROLL_BACK if policy.on_failure == "rollback" else Next.STOP, why)


def first_deployment(actions: Mapping[str, Sequence[Action]]) -> bool:
    """Nothing is replaced, so there is no service to keep up: every host at once (still
    gated on health)."""
    return all(a.kind == ActionKind.CREATE for acts in actions.values() for a in acts)


def steps_for(actions: Mapping[str, Sequence[Action]], batches: list[Batch],
              hosts: Sequence[str]) -> list[Batch]:
    if first_deployment(actions):
        return [Batch("all", tuple(hosts))]
    return batches


def unprepared_reason(actions: Sequence[Action], unprepared: Mapping[str, str]) -> str:
    """Why a host can't start this service's change: an image, network, volume or delivered
    file it needs failed to prepare (image, network, volume or file name -> why)."""
    needed = {a.image for a in actions if a.image} | {
        n for a in actions if a.desired is not None
        for n in [*a.desired.options["networks"], *named_volumes(a.desired.options),
                  *delivered_names(a.desired.options)]}
    return "; ".join(reason for target, reason in unprepared.items() if target in needed)


def monitor_seconds(policy: UpdatePolicy, canary: bool) -> float:
    return max(policy.monitor, policy.canary_wait) if canary else policy.monitor


def waited_ready(done: Sequence[Action]) -> frozenset[str]:
    """The containers these actions waited for until ready (their wait-ready steps)."""
    return frozenset(step.target for action in done for step in action.steps
                     if step.kind == StepKind.WAIT_READY)


def gated_names(done: Sequence[Action]) -> list[str]:
    """The containers a health gate watches after these actions. Not a one-shot job's: it
    was done when it exited with code 0 (its wait-exit step), and is not meant to stay up;
    nor a proxied container's that passed its gate before it took traffic (a gate step)."""
    return sorted({a.desired.name for a in done if a.desired is not None
                   and not a.desired.job
                   and not any(s.kind == StepKind.GATE for s in a.steps)
                   and a.kind in (ActionKind.CREATE, ActionKind.RECREATE, ActionKind.START,
                                  ActionKind.RESTART, ActionKind.RENAME)})


# -- dependencies (fleet.core.dependencies) --------------------------------------------------

# What a dependency's outcome on a host means for its dependents there.
_HAPPENED = {HostOutcome.FAILED: "it failed", HostOutcome.ROLLED_BACK: "it was rolled back",
             HostOutcome.ROLLBACK_FAILED: "its rollback failed",
             HostOutcome.BLOCKED: "it is blocked", HostOutcome.UNTOUCHED: "it was not reached"}


@dataclass(frozen=True)
class DependencyWait:
    """A dependency whose containers on a host must meet a condition first."""

    service: str
    condition: str
    containers: tuple[str, ...]  # its container names on the host
    timeout: float  # the dependency's update timeout
    required: bool = True
    job: bool = False

    @property
    def label(self) -> str:
        return f"{self.service} ({self.condition})"


@dataclass(frozen=True)
class DependencyCheck:
    refusal: str = ""  # why the service can't change on this host (nothing to wait for then)
    waits: tuple[DependencyWait, ...] = ()
    notes: tuple[str, ...] = ()  # optional dependencies skipped


def dependency_check(host: str, actions: Sequence[Action], waits: Mapping[str, Dependency],
                     reports: Sequence[HostReport],
                     here: Mapping[str, Sequence[DesiredContainer]],
                     policies: Mapping[str, UpdatePolicy]) -> DependencyCheck:
    """Before a service's containers come up on a host: a dependency whose own change did
    not succeed there blocks it; the others that run there are waited for. `waits`: what
    the service waits for; `reports`: the earlier services' outcomes (they rolled out
    first); `here`: the host's desired containers per service. A dependency that does not
    run on the host has nothing to wait for; an optional one (required: false) never
    blocks, and is noted instead."""
    if not any(a.kind in BRINGS_UP for a in actions):
        return DependencyCheck()
    found: list[DependencyWait] = []
    notes: list[str] = []
    for target, dep in sorted(waits.items()):
        containers = here.get(target, ())
        if not containers:
            continue
        label = f"{target} ({dep.condition})"
        outcome = next((r for r in reversed(reports)
                        if r.host == host and r.service == target), None)
        if outcome is not None and outcome.outcome != HostOutcome.CHANGED:
            why = f"{_HAPPENED[outcome.outcome]} on this host" + (
                f" ({outcome.detail})" if outcome.detail else "")
            if dep.required:
                return DependencyCheck(f"by dependency {label}: {why}")
            notes.append(f"optional dependency {label}: {why}; going on")
            continue
        policy = policies.get(target) or UpdatePolicy()
        found.append(DependencyWait(target, dep.condition, tuple(c.name for c in containers),
                                    policy.timeout, dep.required,
                                    any(c.job for c in containers)))
    return DependencyCheck("", tuple(found), tuple(notes))


# -- rollback -------------------------------------------------------------------------------


def with_live_resources(container: DesiredContainer, resources: Mapping[str, object]
                        ) -> DesiredContainer:
    """`container` with the resource limits and restart policy a running container has."""
    if not resources:
        return container
    options = {**container.options, **options_from_resources(resources)}
    return replace(container, options=options)


def previous_container(observed: ObservedContainer, host: str, project: str,
                       secrets: SecretStore, *, job: bool = False
                       ) -> tuple[DesiredContainer, str, str | None] | str:
    """The desired container `observed` was made from (its recorded spec, with the limits
    it has live, since `docker update` changes those without labels), its pinned image and
    digest; or why there is none. `secrets` is the host's store (DesiredState.secrets_for);
    `job`: the service is a one-shot job."""
    spec = observed.spec
    if spec is None:
        return "it has no recorded spec to return to"
    recorded = recorded_container(spec, host, project, observed.service or "",
                                  observed.replica or 1, secrets)
    if isinstance(recorded, str):
        return recorded
    options = dict(with_live_resources(recorded, observed.resources).options)
    source = labels.FROM_CONTROLLER if observed.delivered_image else "registry"
    previous = DesiredContainer(host, project, recorded.service, recorded.replica, options,
                                spec_hash(options, secrets), job, image_source=source)
    return previous, observed.pin, observed.image_digest or None


def _made(action: Action, created: Mapping[str, str], secrets: SecretStore
          ) -> ObservedContainer | None:
    """The container an action made, as the host now has it (from the execution record)."""
    container_id = created.get(action.target)
    if container_id is None or action.desired is None:
        return None
    made = labels.fleet_labels(action.desired, secrets, action.digest, action.revision)
    return ObservedContainer(container_id, action.target, "running", made)


def undo_action(report: HostReport, action: Action, project: str, secrets: SecretStore,
                timeout: float) -> Action | str | None:
    """The action that undoes `action` on the report's host: None when there is nothing to
    undo, a string when it can't be undone (why)."""
    host = report.host
    if action.kind == ActionKind.CREATE:
        made = _made(action, report.created, secrets)
        return remove_action(host, made, "rollback") if made is not None else None
    if action.kind in (ActionKind.RECREATE, ActionKind.REMOVE):
        assert action.observed is not None
        found = previous_container(action.observed, host, project, secrets,
                                   job=action.desired is not None and action.desired.job)
        if isinstance(found, str):
            return f"{action.target}: {found}"
        previous, image, digest = found
        current = _made(action, report.created, secrets) \
            if action.kind == ActionKind.RECREATE else None
        revision = action.revision + 1
        if current is None:
            return create_action(host, previous, image, digest, revision, "rollback", timeout)
        return recreate_action(host, previous, current, image, digest, revision,
                               Order.STOP_FIRST, "rollback", timeout)
    if action.kind == ActionKind.UPDATE and action.observed is not None:
        assert action.desired is not None
        before = with_live_resources(action.desired, action.observed.resources)
        return update_action(host, before, action.observed, "rollback")
    return None


def undo_plan(report: HostReport, project: str, secrets: SecretStore,
              timeout: float) -> tuple[list[Action], list[str]]:
    """What undoes, newest first, everything the rollout did on a host; and what can't be."""
    actions: list[Action] = []
    problems: list[str] = []
    for action in reversed(report.done):
        undo = undo_action(report, action, project, secrets, timeout)
        if isinstance(undo, str):
            problems.append(undo)
        elif undo is not None:
            actions.append(undo)
    return actions, problems
