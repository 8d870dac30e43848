"""The rollout driver: a plan carried out service by service, in waves and batches, each host
gated on health, with automatic rollback when failures exceed the budget. Every decision
(batches, budget, what to undo) is fleet.core.policy's; this module does the I/O.

Order of work: images are pulled on every host first (no container changes yet; on a first
deployment, where nothing runs that could be hurt, each host goes on once its own are); then
containers of services no longer in the playbook are removed; then each service of the
playbook rolls out with its own `update:` policy, after the services it depends on
(fleet.core.dependencies); on each host, its containers come up only once the dependencies
there meet their conditions. Ctrl-C starts no new batch: the batch in flight settles
(finishes, or is reverted), and every host's state is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleet.config.compose_fields import Dependency
from fleet.config.service import UpdatePolicy
from fleet.core import policy as decide
from fleet.core.dependencies import rollout_order
from fleet.core.desired import DesiredContainer
from fleet.core.plan import Action, ActionKind, HostPlan, Plan
from fleet.core.policy import PREPARATIONS, HostOutcome, HostReport, Next
from fleet.core.proxy_plan import with_routes
from fleet.core.releases import AUTOMATIC_ROLLBACK
from fleet.core.reporting import Reporter, silent
from fleet.core.schedule import Batch, schedule
from fleet.core.seed_plan import plan_seeds
from fleet.engine.delivery import Delivery
from fleet.engine.executor import ExecutionResult, Executor, Gate, send_image
from fleet.engine.health import health_gate, wait_condition
from fleet.engine.journaling import JournalBook
from fleet.engine.run import Run
from fleet.engine.seeding import SeedHost, Seeding
from fleet.errors import DockerError, FleetError, LockLost
from fleet.images.archive import ArchiveImage


@dataclass
class RolloutResult:
    reports: list[HostReport] = field(default_factory=list)
    stopped: str = ""  # why the rollout stopped early, if it did
    interrupted: bool = False
    loaded: dict[str, list[Delivery]] = field(default_factory=dict)  # host -> images sent

    @property
    def ok(self) -> bool:
        return not self.stopped and all(
            r.outcome in (HostOutcome.CHANGED, HostOutcome.UNTOUCHED) for r in self.reports
        ) and not self.interrupted


class Rollout:
    def __init__(self, run: Run, plan: Plan, *, interrupted: asyncio.Event | None = None,
                 report: Reporter = silent, command: str = "apply",
                 services: Sequence[str] | None = None,
                 journal: JournalBook | None = None) -> None:
        self.run = run
        self.plan = plan
        self.interrupted = interrupted or asyncio.Event()
        self.report = report
        self.command = command
        self.only = list(services) if services is not None else None
        self.result = RolloutResult()
        self.journal = journal or JournalBook(run, command, self.report)
        self.waits: dict[str, dict[str, Dependency]] = {}
        self.preparing: dict[str, asyncio.Task[None]] = {}  # host -> its preparations
        self.seeding = self._seeding()

    def _seeding(self) -> Seeding | None:
        """The run's region seeds, if the playbook sets them and a group of hosts would
        receive an image from the controller more than once without."""
        policy, images = self.run.state.seeds, self.run.images
        registry_image = images.image_id(policy.image) if policy is not None else None
        if policy is None or registry_image is None:
            return None
        through = plan_seeds(self.plan, self.run.hosts, policy)
        if not through:
            return None

        def host(name: str) -> SeedHost:
            return SeedHost(name, self.run.hosts[name].address, self.run.docker(name),
                            self.run.pool.connected[name], self.run.hosts[name].state_dir)

        async def send(name: str, image: ArchiveImage) -> Delivery:
            return await send_image(self.run.docker(name), images, image, (), self.report,
                                    f"seed: load {(image.repo_tags or (image.image_id[:19],))[0]}")

        return Seeding(policy, through, host, registry_image, images.archive, send)

    # -- helpers --------------------------------------------------------------------------

    def _policy(self, service: str) -> UpdatePolicy:
        placement = self.run.state.services.get(service)
        return placement.update if placement else UpdatePolicy()

    async def _execute(self, host: str, actions: Sequence[Action],
                       gate: Gate | None = None) -> ExecutionResult:
        async with self.run.forks:
            return await self._execute_holding_fork(host, actions, gate)

    async def _execute_holding_fork(self, host: str, actions: Sequence[Action],
                                    gate: Gate | None = None) -> ExecutionResult:
        executor = Executor(self.run.docker(host), self.run.state.secrets_for(host),
                            self.run.auth, self.run.state.project, self.report,
                            self.run.file_store(host), self.run.file_root(host),
                            self.run.images, self.seeding, self.run.proxy_admin(host), gate)
        result = await executor.run(host, actions)
        if result.failed is not None:
            self.journal.note(host, result.failed, "failed", result.error or "")
        return result

    def _check_lock(self) -> None:
        """Stop like an interrupt if this run's lock was lost (taken over, released by force):
        another run may be changing the same hosts."""
        if self.run.lock is None or self.result.stopped:
            return
        try:
            self.run.lock.check()
        except LockLost as exc:
            self.result.stopped = f"the project's lock was lost: {exc}"

    async def _execute_service(self, host: str, actions: Sequence[Action],
                               gate: Gate | None = None) -> ExecutionResult:
        """A service's actions on one host, in order; but the replicas of a service that
        does not run here yet (only creates: nothing to keep up) start side by side."""
        if len(actions) < 2 or any(a.kind != ActionKind.CREATE for a in actions):
            return await self._execute(host, actions, gate)
        async with self.run.forks:
            results = await asyncio.gather(*(self._execute_holding_fork(host, [action], gate)
                                             for action in actions))
        merged = ExecutionResult(host)
        for result in results:  # in the plan's order: the first failure is the one told
            merged.done += result.done
            merged.created.update(result.created)
            if result.error is not None and merged.error is None:
                merged.error, merged.failed = result.error, result.failed
        return merged

    def _gate_before_traffic(self, service: str, host: str, policy: UpdatePolicy,
                             monitor: float) -> Gate:
        """The gate a proxied container passes before the proxy sends it requests."""
        async def gate(container: str) -> str | None:
            self.report(host, f"{service}: health gate ({monitor:g}s) before it takes traffic")
            return await self._gate(host, [container], policy, monitor,
                                    settled=frozenset({container}))
        return gate

    async def _gate(self, host: str, names: list[str], policy: UpdatePolicy,
                    monitor: float, settled: frozenset[str] = frozenset()) -> str | None:
        try:
            return await health_gate(self.run.docker(host), self.run.pool.connected[host].ssh,
                                     names,
                                     probe=policy.probe, monitor=monitor,
                                     timeout=policy.timeout, settled=settled)
        except DockerError as exc:
            return exc.reason

    # -- phases ---------------------------------------------------------------------------

    def _start_preparing(self) -> tuple[dict[str, dict[str, str]], dict[str, asyncio.Task[None]]]:
        """Pull images, create networks and volumes, deliver the files next to the compose
        file, on every host, as one task per host. Per host, what failed to prepare (image,
        network, volume or file name -> why), filled in as the tasks end; each preparation
        is tried, so one bad image blocks only the services that need it."""
        failures: dict[str, dict[str, str]] = {}

        async def one(host: str, actions: Sequence[Action]) -> None:
            for action in actions:
                result = await self._execute_holding_fork(host, [action])
                if result.error:
                    # What the changes name it by: a loaded image, by its ID (their pin).
                    needed_as = action.digest if action.kind == ActionKind.LOAD else None
                    failures.setdefault(host, {})[needed_as or action.target] = result.error

        async def prepare(host_plan: HostPlan) -> None:
            # One fork per host (--forks counts hosts); within it, each image pulls side by
            # side with the others and with the networks, volumes and files, which keep
            # their order.
            actions = [a for a in host_plan.actions if a.kind in PREPARATIONS]
            images = (ActionKind.PULL, ActionKind.LOAD)
            pulls = [a for a in actions if a.kind in images]
            others = [a for a in actions if a.kind not in images]
            if not actions:
                return
            async with self.run.forks:
                await asyncio.gather(one(host_plan.host, others),
                                     *(one(host_plan.host, [pull]) for pull in pulls))

        return failures, {h.host: asyncio.create_task(prepare(h)) for h in self.plan.hosts}

    def _only_creates(self) -> bool:
        """Nothing runs yet that this plan would replace, stop or remove anywhere."""
        return decide.first_deployment({h.host: [a for a in h.actions
                                                 if a.kind not in PREPARATIONS]
                                        for h in self.plan.hosts})

    async def execute(self) -> RolloutResult:
        unprepared, self.preparing = self._start_preparing()
        if not self._only_creates():
            # Something runs already: no container changes anywhere until every host has
            # what it needs. On a first deployment each host goes on once it is prepared.
            await asyncio.gather(*self.preparing.values())
        self.waits = self.run.state.waits()
        services = self.only if self.only is not None else rollout_order(
            list(self.run.state.services), self.waits)
        try:
            # Containers of services gone from the playbook go first: they may hold names
            # or host ports a renamed service needs.
            if self.only is None and not self.interrupted.is_set():
                self._check_lock()
                if not self.result.stopped:
                    await self._remove_orphans()
            await self._roll_side_by_side(services, unprepared)
        finally:
            # nothing is left running; a preparation's own crash is raised below
            ended = await asyncio.gather(*self.preparing.values(), return_exceptions=True)
            if self.seeding is not None:
                for host, problem in await self.seeding.close():
                    self.report(host, problem)
            await self.journal.flush()
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome
        if self.interrupted.is_set():
            self.result.interrupted = True
        self.result.loaded = self.run.images.deliveries
        return self.result

    async def _roll_side_by_side(self, services: list[str],
                                 unprepared: dict[str, dict[str, str]]) -> None:
        """Each service rolls out once the services it depends on have (Compose's order);
        services that do not depend on each other roll side by side, each under its own
        policy. A stop (a failure's decision, Ctrl-C) lets the batches in flight settle and
        starts nothing more. Reports keep the rollout order."""
        finished = {service: asyncio.Event() for service in services}
        position = {service: index for index, service in enumerate(services)}

        async def one(service: str) -> None:
            try:
                for before in self.waits.get(service, {}):
                    # only what comes before in the order: a cycle left in can't deadlock
                    if position.get(before, len(services)) < position[service]:
                        await finished[before].wait()
                if not (self.result.stopped or self.interrupted.is_set()):
                    await self._roll_service(service, unprepared)
            except Exception as exc:
                # e.g. the lock lost: the other services start no new batch, and the
                # error is raised once the batches in flight have settled
                self.result.stopped = self.result.stopped or f"{service}: {exc}"
                raise
            finally:
                finished[service].set()

        outcomes = await asyncio.gather(*(one(service) for service in services),
                                        return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise errors[0]
        self.result.reports.sort(key=lambda report: position.get(report.service, -1))

    def _actions_for(self, service: str) -> dict[str, list[Action]]:
        found: dict[str, list[Action]] = {}
        for host_plan in self.plan.hosts:
            actions = [a for a in host_plan.actions
                       if a.kind not in PREPARATIONS and a.service == service]
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
        hosts = [h for h in self.run.state.targeted_hosts if h.name in by_host]
        batches = decide.steps_for(by_host, schedule(hosts, policy,
                                                     self.run.state.inventory.groups),
                                   [h.name for h in hosts])
        blocked = {h.host: "; ".join(f.detail for f in h.blocked if f.service == service)
                   for h in self.plan.hosts}
        reports: list[HostReport] = []
        for index, batch in enumerate(batches):
            self._check_lock()
            if self.interrupted.is_set() or self.result.stopped:
                break
            self._announce(service, batch, index, len(batches))
            reports += await asyncio.gather(*(
                self._change_prepared_host(service, host, by_host[host], policy, batch,
                                           unprepared, blocked.get(host, ""))
                for host in batch.hosts))
            await self.journal.flush()
            decision = decide.after_batch(service, policy, reports, len(hosts))
            if decision.next == Next.ROLL_BACK:
                await self._roll_back(service, reports, policy)
            if decision.next != Next.GO_ON:
                self.result.stopped = decision.why
                break
            if index + 1 < len(batches) and policy.delay and not self.interrupted.is_set():
                await asyncio.sleep(policy.delay)
        reached = {r.host for r in reports}
        reports += [HostReport(h.name, service, HostOutcome.UNTOUCHED) for h in hosts
                    if h.name not in reached]
        self.result.reports += reports

    def _announce(self, service: str, batch: Batch, index: int, total: int) -> None:
        kind = "canary" if batch.canary else f"batch {index + 1}/{total}"
        for host in batch.hosts:
            self.report(host, f"{service}: wave {batch.wave}, {kind}")

    async def _change_prepared_host(self, service: str, host: str, actions: list[Action],
                                    policy: UpdatePolicy, batch: Batch,
                                    unprepared: dict[str, dict[str, str]],
                                    blocked: str) -> HostReport:
        if host in self.preparing:
            await self.preparing[host]
        refusal = decide.unprepared_reason(actions, unprepared.get(host, {})) or blocked
        return await self._change_host(service, host, actions, policy, batch, refusal)

    async def _change_host(self, service: str, host: str, actions: list[Action],
                           policy: UpdatePolicy, batch: Batch, refusal: str) -> HostReport:
        if refusal:
            # Known before any change (a foreign container in the way, an image that would
            # not pull): reported, but not a failure of the new version, so not counted.
            return HostReport(host, service, HostOutcome.BLOCKED, refusal)
        waiting = await self._wait_dependencies(service, host, actions)
        if waiting:
            # A dependency failed here: nothing of this service changes on this host.
            return HostReport(host, service, HostOutcome.BLOCKED, waiting)
        unrecorded = await self.journal.start(host, actions)
        if unrecorded:
            return HostReport(host, service, HostOutcome.BLOCKED, unrecorded)
        monitor = decide.monitor_seconds(policy, batch.canary)
        result = await self._execute_service(
            host, actions, self._gate_before_traffic(service, host, policy, monitor))
        report = HostReport(host, service, HostOutcome.CHANGED, "", result.done,
                            result.created, previous_kept=result.previous_kept)
        failure = result.error or ""
        names = decide.gated_names(result.done)
        if not failure and names:
            self.report(host, f"{service}: health gate ({monitor:g}s)")
            failure = await self._gate(host, names, policy, monitor,
                                       settled=decide.waited_ready(result.done)) or ""
        for action in result.done:
            self.journal.note(host, action, "failed" if failure else "ok", failure)
        if failure:
            report.outcome, report.detail = HostOutcome.FAILED, failure
        else:
            self.report(host, f"{service}: done")
        return report

    async def _wait_dependencies(self, service: str, host: str, actions: list[Action]) -> str:
        """Wait until the dependencies that run on this host meet their conditions; or why
        the service can't change here ("" when it can)."""
        state = self.run.state
        here: dict[str, list[DesiredContainer]] = {}
        for container in state.containers.get(host, []):
            here.setdefault(container.service, []).append(container)
        check = decide.dependency_check(
            host, actions, self.waits.get(service, {}), self.result.reports, here,
            {name: placement.update for name, placement in state.services.items()})
        for note in check.notes:
            self.report(host, f"{service}: {note}")
        if check.refusal:
            return check.refusal
        for wait in check.waits:
            self.report(host, f"{service}: waiting for {wait.label}")
            try:
                why = await wait_condition(self.run.docker(host), wait.containers,
                                           wait.condition, wait.timeout, job=wait.job)
            except DockerError as exc:
                why = exc.reason
            if why and wait.required:
                return f"by dependency {wait.label}: {why}"
            if why:
                self.report(host, f"{service}: optional dependency {wait.label}: {why}; "
                                  "going on")
        return ""

    # -- rollback -------------------------------------------------------------------------

    async def _roll_back(self, service: str, reports: list[HostReport],
                         policy: UpdatePolicy) -> None:
        """Every host this rollout changed returns to its previous revision, in reverse order."""
        for report in reversed(reports):
            if not report.done:
                if report.outcome == HostOutcome.FAILED and report.previous_kept:
                    # The replacement failed and the executor kept (or restarted) the old
                    # container: the host is already on its previous revision.
                    report.outcome = HostOutcome.ROLLED_BACK
                    report.detail = (f"failed: {report.detail}; the previous revision was "
                                     "kept running")
                continue
            self.report(report.host, f"{service}: rolling back")
            try:
                reverted = await self._revert_host(report, policy)
            except (FleetError, OSError) as exc:
                report.outcome = HostOutcome.ROLLBACK_FAILED
                report.detail = f"{report.detail}; rollback failed: {exc}".lstrip("; ")
                continue
            was_failed = report.outcome == HostOutcome.FAILED
            for action in report.done:
                self.journal.note(report.host, action, "rolled-back", AUTOMATIC_ROLLBACK)
            for action in reverted:
                self.journal.note(report.host, action, "ok", AUTOMATIC_ROLLBACK)
            report.outcome = HostOutcome.ROLLED_BACK
            report.detail = (f"failed: {report.detail}; returned to the previous revision"
                             if was_failed else "returned to the previous revision")

    async def _revert_host(self, report: HostReport, policy: UpdatePolicy) -> list[Action]:
        """Carry out the undo plan of a host. Each undo is tried even if another fails (a
        container just created is removed even if an older one can't come back); the
        failures are raised together at the end."""
        host = report.host
        undo, errors = decide.undo_plan(report, self.run.state.project,
                                        self.run.state.secrets_for(host), policy.timeout)
        proxy = self.run.state.proxies.get(host)
        if proxy is not None:  # the previous revision takes traffic back through the proxy
            undo = [with_routes(a, proxy.routes_of(a.service or "")) for a in undo]
        gate = self._gate_before_traffic(report.service, host, policy, min(policy.monitor, 2.0))
        done: list[Action] = []
        for action in undo:
            result = await self._execute(host, [action], gate)
            if result.error:
                errors.append(result.error)
                continue
            done.append(action)
            names = decide.gated_names([action])
            if names:
                failure = await self._gate(host, names, policy, min(policy.monitor, 2.0))
                if failure:
                    errors.append(f"{action.target}: previous revision is not healthy "
                                  f"either: {failure}")
        if errors:
            raise FleetError("; ".join(errors))
        return done

    async def _remove_orphans(self) -> None:
        services = set(self.run.state.services)

        async def one(host_plan: HostPlan) -> None:
            orphans = [a for a in host_plan.actions if a.kind == ActionKind.REMOVE
                       and a.service not in services]
            if orphans:
                result = await self._execute(host_plan.host, orphans)
                for action in result.done:
                    self.journal.note(host_plan.host, action, "ok", "")
                outcome = HostOutcome.FAILED if result.error else HostOutcome.CHANGED
                self.result.reports.append(HostReport(host_plan.host, "(orphans)", outcome,
                                                      result.error or "", result.done))

        await asyncio.gather(*(one(h) for h in self.plan.hosts))
