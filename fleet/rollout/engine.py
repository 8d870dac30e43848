"""The rollout: a plan carried out service by service, in waves and batches, each host gated
on health, with automatic rollback when failures exceed the budget.

Order of work: images are pulled on every host first (no container changes yet); then each
service of the playbook rolls out with its own `update:` policy; containers of services no
longer in the playbook are removed last. Ctrl-C starts no new batch: the batch in flight
settles (finishes, or is reverted), and every host's state is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fleet.config.inventory import Host
from fleet.config.secrets import tokens_from_digests
from fleet.config.service import UpdatePolicy
from fleet.desired import DesiredContainer, spec_hash
from fleet.engine_spec import pinned_image
from fleet.errors import DockerError, FleetError, LockLost
from fleet.executor import Executor, HostOutcome
from fleet.observed import ObservedContainer, container_from_inspect
from fleet.plan import Action, ActionKind, HostPlan, Order, Plan
from fleet.rollout.health import health_gate
from fleet.rollout.journaling import JournalBook
from fleet.rollout.schedule import Step, failure_budget, schedule
from fleet.runner import Run

Reporter = Callable[[str, str], None]


PREPARATIONS = (ActionKind.PULL, ActionKind.NETWORK)  # done everywhere before any change


class Outcome(StrEnum):
    CHANGED = "changed"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    BLOCKED = "blocked"  # could not start: a conflict or a failed pull (nothing was changed)
    UNTOUCHED = "untouched"  # not reached: the rollout stopped before it


@dataclass
class HostReport:
    host: str
    service: str
    outcome: Outcome
    detail: str = ""
    done: list[Action] = field(default_factory=list)
    previous_kept: bool = False  # failed, but the old container was kept or restarted


@dataclass
class RolloutResult:
    reports: list[HostReport] = field(default_factory=list)
    stopped: str = ""  # why the rollout stopped early, if it did
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.stopped and all(
            r.outcome in (Outcome.CHANGED, Outcome.UNTOUCHED) for r in self.reports
        ) and not self.interrupted


def service_of(action: Action) -> str | None:
    if action.desired is not None:
        return action.desired.service
    return action.observed.service if action.observed is not None else None


def previous_container(observed: ObservedContainer, host: str, project: str,
                       run: Run) -> tuple[DesiredContainer, str, str | None]:
    """The desired container that `observed` was made from (its recorded spec, its digest)."""
    spec = observed.spec
    if spec is None:
        raise FleetError(f"{host}: {observed.name} has no recorded spec to return to")
    options = tokens_from_digests(spec)
    # `docker update` changes limits without changing labels: the live values are the truth.
    recorded = DesiredContainer(host, project, observed.service or "", observed.replica or 1,
                                options, "")
    options = dict(with_live_resources(recorded, observed.resources).options)
    previous = DesiredContainer(host, project, recorded.service, recorded.replica, options,
                                spec_hash(options, run.state.secrets))
    digest = observed.image_digest or None
    return previous, pinned_image(observed.image_ref, digest), digest


class Rollout:
    def __init__(self, run: Run, plan: Plan, *, interrupted: asyncio.Event | None = None,
                 report: Reporter | None = None, command: str = "apply",
                 services: Sequence[str] | None = None) -> None:
        self.run = run
        self.plan = plan
        self.interrupted = interrupted or asyncio.Event()
        self.report = report or (lambda host, message: None)
        self.command = command
        self.only = list(services) if services is not None else None
        self.result = RolloutResult()
        self.hosts = {h.name: h for h in run.state.targeted_hosts}
        self.journal = JournalBook(run, command, self.report)
        self.forks = asyncio.Semaphore(max(1, run.options.forks))

    # -- helpers --------------------------------------------------------------------------

    def _executor(self, host: str) -> Executor:
        timeouts = [s.update.timeout for s in self.run.state.services.values()]
        return Executor(self.run.pool.connected[host].docker, self.run.state.secrets,
                        self.run.auth, self.report, ready_timeout=max(timeouts, default=120.0),
                        project=self.run.state.project)

    def _policy(self, service: str) -> UpdatePolicy:
        placement = self.run.state.services.get(service)
        return placement.update if placement else UpdatePolicy()

    async def _execute(self, host: str, actions: Sequence[Action]) -> HostOutcome:
        async with self.forks:
            outcome = await self._executor(host).run(HostPlan(host, (), tuple(actions)))
        if outcome.failed is not None:
            self.journal.note(host, outcome.failed, "failed", outcome.error or "")
        return outcome

    def _check_lock(self) -> None:
        """Stop like an interrupt if this run's lock was lost (taken over, released by force):
        another run may be changing the same hosts."""
        if self.run.lock is None or self.result.stopped:
            return
        try:
            self.run.lock.check()
        except LockLost as exc:
            self.result.stopped = f"the project's lock was lost: {exc}"

    # -- phases ---------------------------------------------------------------------------

    async def _prepare_everywhere(self) -> dict[str, dict[str, str]]:
        """Pull images and create networks on every host before any container changes.
        Per host, what failed to prepare (image or network -> why); each preparation is
        tried, so one bad image blocks only the services that need it."""
        failures: dict[str, dict[str, str]] = {}

        async def prepare(host_plan: HostPlan) -> None:
            for action in (a for a in host_plan.actions if a.kind in PREPARATIONS):
                outcome = await self._execute(host_plan.host, [action])
                if outcome.error:
                    failures.setdefault(host_plan.host, {})[action.target] = outcome.error

        await asyncio.gather(*(prepare(h) for h in self.plan.hosts))
        return failures

    async def execute(self) -> RolloutResult:
        unprepared = await self._prepare_everywhere()
        services = self.only if self.only is not None else list(self.run.state.services)
        try:
            # Containers of services gone from the playbook go first: they may hold names
            # or host ports a renamed service needs.
            if self.only is None and not self.interrupted.is_set():
                self._check_lock()
                if not self.result.stopped:
                    await self._remove_orphans()
            for service in services:
                if self.result.stopped or self.interrupted.is_set():
                    break
                await self._roll_service(service, unprepared)
        finally:
            await self.journal.flush()
        if self.interrupted.is_set():
            self.result.interrupted = True
        return self.result

    def _actions_for(self, service: str) -> dict[str, list[Action]]:
        found: dict[str, list[Action]] = {}
        for host_plan in self.plan.hosts:
            actions = [a for a in host_plan.actions
                       if a.kind not in PREPARATIONS and service_of(a) == service]
            blocked = [f for f in host_plan.blocked if f.service == service]
            if actions or blocked:
                found[host_plan.host] = actions
        return found

    async def _roll_service(self, service: str,
                            unprepared: dict[str, dict[str, str]]) -> None:
        by_host = self._actions_for(service)
        if not by_host:
            return
        policy = self._policy(service)
        hosts: list[Host] = [h for h in self.run.state.targeted_hosts if h.name in by_host]
        steps = schedule(hosts, policy, self.run.state.inventory.groups)
        if all(a.kind == ActionKind.CREATE for acts in by_host.values() for a in acts):
            # A first deployment replaces nothing, so there is no service to keep up: every
            # host at once, still gated on health.
            steps = [Step("all", tuple(h.name for h in hosts))]
        budget = failure_budget(policy, len(hosts))
        blocked = {h.host: "; ".join(f.detail for f in h.blocked if f.service == service)
                   for h in self.plan.hosts}
        reports: list[HostReport] = []
        failed = 0
        for index, step in enumerate(steps):
            self._check_lock()
            if self.interrupted.is_set() or self.result.stopped:
                break
            self._announce(service, step, index, len(steps))
            batch = await asyncio.gather(*(
                self._change_host(service, host, by_host[host], policy, step,
                                  _refusal(by_host[host], unprepared.get(host, {}))
                                  or blocked.get(host, ""))
                for host in step.hosts))
            reports += batch
            await self.journal.flush()
            failed += sum(1 for r in batch if r.outcome == Outcome.FAILED)
            if failed > budget:
                why = (f"{service}: {failed} host(s) failed, more than max_failures "
                       f"({budget}); on_failure: {policy.on_failure}")
                if policy.on_failure == "rollback":
                    await self._roll_back(service, reports, policy)
                if policy.on_failure != "continue":
                    self.result.stopped = why
                    break
            if index + 1 < len(steps) and policy.delay and not self.interrupted.is_set():
                await asyncio.sleep(policy.delay)
        reached = {r.host for r in reports}
        reports += [HostReport(h.name, service, Outcome.UNTOUCHED) for h in hosts
                    if h.name not in reached]
        self.result.reports += reports

    def _announce(self, service: str, step: Step, index: int, total: int) -> None:
        kind = "canary" if step.canary else f"batch {index + 1}/{total}"
        for host in step.hosts:
            self.report(host, f"{service}: wave {step.wave}, {kind}")

    async def _change_host(self, service: str, host: str, actions: list[Action],
                           policy: UpdatePolicy, step: Step, refusal: str) -> HostReport:
        if refusal:
            # Known before any change (a foreign container in the way, an image that would
            # not pull): reported, but not a failure of the new version, so not counted.
            return HostReport(host, service, Outcome.BLOCKED, refusal)
        outcome = await self._execute(host, actions)
        done, error = outcome.done, outcome.error or ""
        if error:
            for action in done:
                self.journal.note(host, action, "failed", error)
            return HostReport(host, service, Outcome.FAILED, error, done,
                              previous_kept=outcome.previous_kept)
        names = sorted({a.desired.name for a in done if a.desired is not None
                        and a.kind in (ActionKind.CREATE, ActionKind.RECREATE,
                                       ActionKind.START, ActionKind.RESTART,
                                       ActionKind.RENAME)})
        if names:
            monitor = max(policy.monitor, policy.canary_wait) if step.canary else policy.monitor
            self.report(host, f"{service}: health gate ({monitor:g}s)")
            connection = self.run.pool.connected[host]
            try:
                failure = await health_gate(connection.docker, connection.ssh, names,
                                            probe=policy.probe, monitor=monitor,
                                            timeout=policy.timeout)
            except DockerError as exc:
                failure = exc.reason
            if failure:
                for action in done:
                    self.journal.note(host, action, "failed", failure)
                return HostReport(host, service, Outcome.FAILED, failure, done)
        for action in done:
            self.journal.note(host, action, "ok", "")
        self.report(host, f"{service}: done")
        return HostReport(host, service, Outcome.CHANGED, "", done)

    # -- rollback -------------------------------------------------------------------------

    async def _roll_back(self, service: str, reports: list[HostReport],
                         policy: UpdatePolicy) -> None:
        """Every host this rollout changed returns to its previous revision, in reverse order."""
        for report in reversed(reports):
            if not report.done:
                if report.outcome == Outcome.FAILED and report.previous_kept:
                    # The replacement failed and the executor kept (or restarted) the old
                    # container: the host is already on its previous revision.
                    report.outcome = Outcome.ROLLED_BACK
                    report.detail = (f"failed: {report.detail}; the previous revision was "
                                     "kept running")
                continue
            self.report(report.host, f"{service}: rolling back")
            try:
                reverted = await self._revert_host(report, policy)
            except (FleetError, OSError) as exc:
                report.outcome = Outcome.ROLLBACK_FAILED
                report.detail = f"{report.detail}; rollback failed: {exc}".lstrip("; ")
                continue
            was_failed = report.outcome == Outcome.FAILED
            for action in report.done:
                self.journal.note(report.host, action, "rolled-back", "automatic rollback")
            for action in reverted:
                self.journal.note(report.host, action, "ok", "automatic rollback")
            report.outcome = Outcome.ROLLED_BACK
            report.detail = (f"failed: {report.detail}; returned to the previous revision"
                             if was_failed else "returned to the previous revision")

    async def _revert_host(self, report: HostReport, policy: UpdatePolicy) -> list[Action]:
        """Undo, newest first, what the rollout did on a host. Each step is tried even if
        another fails (a container just created is removed even if an older one can't come
        back); the failures are raised together at the end."""
        host = report.host
        connection = self.run.pool.connected[host]
        errors: list[str] = []
        done: list[Action] = []
        for action in reversed(report.done):
            try:
                undo = await self._undo(host, action)
                if undo is None:
                    continue
                outcome = await self._execute(host, [undo])
                if outcome.error:
                    errors.append(outcome.error)
                    continue
                done.append(undo)
                if undo.kind in (ActionKind.CREATE, ActionKind.RECREATE):
                    failure = await health_gate(connection.docker, connection.ssh,
                                                [undo.target], probe=policy.probe,
                                                monitor=min(policy.monitor, 2.0),
                                                timeout=policy.timeout)
                    if failure:
                        errors.append(f"{undo.target}: previous revision is not healthy "
                                      f"either: {failure}")
            except (FleetError, OSError) as exc:
                errors.append(f"{action.target}: {exc}")
        if errors:
            raise FleetError("; ".join(errors))
        return done

    async def _undo(self, host: str, action: Action) -> Action | None:
        """The action that undoes `action` (None when there is nothing to undo)."""
        if action.kind == ActionKind.CREATE:
            current = await self._current(host, action.target)
            return (Action(host, ActionKind.REMOVE, action.target, "rollback", observed=current)
                    if current is not None else None)
        if action.kind in (ActionKind.RECREATE, ActionKind.REMOVE):
            assert action.observed is not None
            previous, image, digest = previous_container(action.observed, host,
                                                         self.run.state.project, self.run)
            current = await self._current(host, previous.name)
            revision = (current.revision if current else action.revision) + 1
            kind = ActionKind.RECREATE if current else ActionKind.CREATE
            return Action(host, kind, previous.name, "rollback", previous, current,
                          image=image, digest=digest, revision=revision,
                          order=Order.STOP_FIRST)
        if action.kind == ActionKind.UPDATE and action.observed is not None:
            assert action.desired is not None
            before = with_live_resources(action.desired, action.observed.resources)
            return Action(host, ActionKind.UPDATE, action.target, "rollback", before,
                          action.observed)
        return None

    async def _current(self, host: str, name: str) -> ObservedContainer | None:
        try:
            data = await self.run.pool.connected[host].docker.inspect_container(name)
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise
        return container_from_inspect(data)

    async def _remove_orphans(self) -> None:
        services = set(self.run.state.services)

        async def one(host_plan: HostPlan) -> None:
            orphans = [a for a in host_plan.actions if a.kind == ActionKind.REMOVE
                       and service_of(a) not in services]
            if orphans:
                result = await self._execute(host_plan.host, orphans)
                for action in result.done:
                    self.journal.note(host_plan.host, action, "ok", "")
                outcome = Outcome.FAILED if result.error else Outcome.CHANGED
                self.result.reports.append(HostReport(host_plan.host, "(orphans)", outcome,
                                                      result.error or "", result.done))

        await asyncio.gather(*(one(h) for h in self.plan.hosts))


def with_live_resources(container: DesiredContainer, resources: Mapping[str, Any]
                        ) -> DesiredContainer:
    """`container` with the resource limits and restart policy a running container has."""
    if not resources:
        return container
    restart = resources.get("RestartPolicy") or {}
    name = restart.get("Name") or "no"
    retries = restart.get("MaximumRetryCount") or 0
    options = {**container.options,
               "cpus": (resources.get("NanoCpus") or 0) / 1e9 or None,
               "mem_limit": resources.get("Memory") or None,
               "mem_reservation": resources.get("MemoryReservation") or None,
               "pids_limit": resources.get("PidsLimit") or None,
               "restart": f"{name}:{retries}" if name == "on-failure" and retries else name}
    return DesiredContainer(container.host, container.project, container.service,
                            container.replica, options, container.spec_hash)


def _refusal(actions: Sequence[Action], unprepared: dict[str, str]) -> str:
    """Why a host can't start this service's change: an image or network it needs failed."""
    needed = {a.image for a in actions if a.image} | {
        n for a in actions if a.desired is not None for n in a.desired.options["networks"]}
    return "; ".join(reason for target, reason in unprepared.items() if target in needed)
