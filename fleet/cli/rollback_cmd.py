"""`fleet rollback`: return a service to an earlier revision recorded on its hosts."""

from __future__ import annotations

import dataclasses
import sys

import click

from fleet.cli.common import json_option, print_json, project_options
from fleet.cli.session import (
    EXIT_ERROR,
    EXIT_OK,
    confirm,
    converge,
    load_state,
    lock_wait_option,
    print_plan,
    print_report,
    require_confirmation_possible,
    rollout_json,
    run_async,
    run_options,
    session,
)
from fleet.cli.terminal import echo
from fleet.core.desired import DesiredState
from fleet.core.files import delivered_names
from fleet.core.journal import JournalEntry
from fleet.core.observed import HostSnapshot
from fleet.core.plan import ActionKind, HostPlan, Plan
from fleet.core.policy import PREPARATIONS
from fleet.core.releases import ReleaseChoice, choose_release
from fleet.core.revisions import choose_revision, desired_from_entry, revision_of_release
from fleet.core.seed_plan import plan_seeds
from fleet.engine.rollout import RolloutResult
from fleet.engine.run import RunOptions
from fleet.errors import FleetError
from fleet.text import one_line


def only_service(plan: Plan, service: str) -> Plan:
    """The plan's actions for one service (and the pulls they need), nothing else."""
    hosts = []
    for host_plan in plan.hosts:
        kept = [a for a in host_plan.actions
                if a.kind not in PREPARATIONS and a.service == service]
        images = {a.image for a in kept}
        files = {n for a in kept if a.desired is not None
                 for n in delivered_names(a.desired.options)}
        pulls = [a for a in host_plan.actions if a.kind in (ActionKind.NETWORK, ActionKind.VOLUME)
                 or (a.kind == ActionKind.PULL and a.image in images)
                 or (a.kind == ActionKind.LOAD and a.digest in images)
                 or (a.kind == ActionKind.DELIVER and a.target in files)]
        findings = tuple(f for f in host_plan.findings if f.service == service)
        hosts.append(HostPlan(host_plan.host, findings, tuple(pulls + kept)))
    return Plan(plan.project, tuple(hosts), plan.unreachable)


@dataclasses.dataclass
class Targets:
    state: DesiredState  # `service` at its earlier revision on every host
    digests: dict[str, dict[str, str | None]]  # host -> image -> digest to pin
    problems: list[str]  # what forbids the rollback
    release: ReleaseChoice | None  # the fleet-wide target (None: one revision back per host)


def _targets(state: DesiredState, service: str, snapshots: dict[str, HostSnapshot],
             journals: dict[str, list[JournalEntry]], to: int | None) -> Targets:
    """The desired state with `service` at its earlier revision on every host (rolled out
    with the service's rollback policy: Compose's deploy.rollback_config, else its update
    policy), the digests to pin per host, and the problems that forbid the rollback."""
    containers = {h: list(c) for h, c in state.containers.items()}
    digests: dict[str, dict[str, str | None]] = {}
    problems: list[str] = []
    running = {host: {c.replica: c.revision for c in snapshot.of_project(state.project)
                      if c.service == service and c.replica is not None}
               for host, snapshot in snapshots.items()}
    # One target for the fleet, so hosts a rollback already returned stay where they are.
    release = None if to is not None else choose_release(journals, running, service)
    for host in snapshots:
        wanted = [c for c in containers[host] if c.service == service]
        replicas = sorted({c.replica for c in wanted} | set(running[host]))
        if not replicas:
            continue
        kept = [c for c in containers[host] if c.service != service]
        entries = journals.get(host, [])
        for replica in replicas:
            if release is not None:
                target = revision_of_release(entries, service, replica, release.target)
            else:
                # Without a release to return to, one revision back per host, but only to a
                # revision recorded before releases existed: a release the choice passed
                # over (failed, rolled back, or newer) is not returned to by another road.
                usable = entries if to is not None else [e for e in entries if not e.release]
                target = choose_revision(usable, service, replica,
                                         running[host].get(replica), to)
            if target.entry is None:
                problems.append(one_line(f"{host}: {target.reason}"))
                continue
            made = desired_from_entry(target.entry, host, state.project, state.secrets_for(host))
            if isinstance(made, str):
                problems.append(one_line(f"{host}: {made}"))
                continue
            kept.append(dataclasses.replace(made, job=service in state.jobs))
            if target.entry.digest:
                digests.setdefault(host, {})[target.entry.image] = target.entry.digest
        containers[host] = sorted(kept, key=lambda c: (c.service, c.replica))
    if problems and release is None and to is None and any(
            e.release for entries in journals.values() for e in entries if e.service == service):
        problems.append(f"the journals record no release of {service} deployed before the one "
                        "running that did not fail or get rolled back; `--to REVISION` returns "
                        "a host to a revision of its journal (`fleet history`)")
    services = dict(state.services)
    placement = services[service]
    if placement.rollback is not None:
        services[service] = dataclasses.replace(placement, update=placement.rollback)
    return Targets(dataclasses.replace(state, containers=containers, services=services),
                   digests, problems, release)


def files_gone(state: DesiredState, snapshots: dict[str, HostSnapshot], service: str
               ) -> list[str]:
    """The delivered files the target revisions mount that are neither on their hosts any
    more nor in the playbook (which could deliver them again)."""
    gone = []
    for host, snapshot in snapshots.items():
        present = snapshot.files.names if snapshot.files is not None else frozenset()
        deliverable = state.files.get(host, {})
        for container in state.containers.get(host, []):
            if container.service != service:
                continue
            missing = sorted(n for n in delivered_names(container.options)
                             if n not in present and n not in deliverable)
            if missing:
                gone.append(one_line(
                    f"{host}: {container.name}'s earlier revision mounts a file delivered then "
                    f"(fleet-file:{missing[0][:12]}…) that is no longer on the host; apply the "
                    "playbook of that revision instead"))
    return gone


def _announce(service: str, release: ReleaseChoice | None) -> None:
    if release is None:
        echo(f"{service}: each host returns to the revision before the one it runs")
        return
    images = ", ".join(release.target_images) or "unknown image"
    echo(f"{service}: returning from release {release.leaving} to release {release.target} "
         f"({images})")


@click.command()
@project_options
@run_options
@json_option
@click.option("--service", required=True, help="The service to roll back.")
@click.option("--to", "to_revision", type=int, metavar="REVISION",
              help="The revision to return to (default: the last one that succeeded before "
                   "the current one).")
@click.option("--yes", "-y", is_flag=True, help="Roll back without asking for confirmation.")
@lock_wait_option
def rollback(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
             forks: int, connect_timeout: float, as_json: bool, service: str,
             to_revision: int | None, yes: bool, lock_wait: float | None) -> None:
    """Return SERVICE to an earlier revision on every targeted host, with the service's
    waves, batches and health gates. Exit 0 when done, 1 otherwise."""
    state = load_state(inventories, playbooks, limit, as_json)
    if service not in state.services:
        raise click.BadParameter(f"no service '{service}' in the playbook", param_hint="--service")
    require_confirmation_possible(yes)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout, prune=False)

    chosen: list[ReleaseChoice | None] = [None]

    async def go() -> tuple[Plan, RolloutResult]:
        async with session(state, options, "observing", as_json, for_changes=True,
                            with_journals=True, lock="rollback",
                            lock_wait=lock_wait) as (run, observation):
            # Read by the observation (a host whose journal can't be read is unreachable).
            journals = run.journals
            targets = _targets(state, service, observation.snapshots, journals, to_revision)
            if targets.problems:
                raise FleetError("cannot roll back; nothing was changed:\n  "
                                 + "\n  ".join(targets.problems))
            run.state = targets.state
            await run.look_at_files(observation)  # the files the earlier revisions mount
            gone = files_gone(targets.state, observation.snapshots, service)
            if gone:
                raise FleetError("cannot roll back; nothing was changed:\n  "
                                 + "\n  ".join(gone))
            chosen[0] = targets.release
            pinned = dataclasses.replace(observation, host_digests=targets.digests)
            plan_ = only_service(run.plan(pinned), service)
            if not as_json:
                _announce(service, targets.release)
                print_plan(plan_, {}, plan_seeds(plan_, run.hosts, run.state.seeds))
            if not plan_.actions:
                return plan_, RolloutResult()
            await confirm(yes)
            release = targets.release
            releases = (release.target, release.leaving) if release else ("", "")
            return plan_, await converge(run, plan_, as_json, "rollback", [service], releases)

    plan_, result = run_async(go())
    done = result.ok and not plan_.unreachable
    if as_json:
        release = chosen[0]
        print_json({"service": service, "rolled_back": done,
                    "release": {"from": release.leaving, "to": release.target,
                                "images": list(release.target_images)} if release else None,
                    **rollout_json(plan_, result)})
    elif plan_.actions:
        print_report(result, dict(plan_.unreachable))
    sys.exit(EXIT_OK if done else EXIT_ERROR)
