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
from fleet.core.desired import DesiredState
from fleet.core.journal import JournalEntry
from fleet.core.observed import HostSnapshot
from fleet.core.plan import ActionKind, HostPlan, Plan
from fleet.core.policy import PREPARATIONS
from fleet.core.revisions import choose_revision, desired_from_entry
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
        pulls = [a for a in host_plan.actions if a.kind in (ActionKind.NETWORK, ActionKind.VOLUME)
                 or (a.kind == ActionKind.PULL and a.image in images)]
        findings = tuple(f for f in host_plan.findings if f.service == service)
        hosts.append(HostPlan(host_plan.host, findings, tuple(pulls + kept)))
    return Plan(plan.project, tuple(hosts), plan.unreachable)


def _targets(state: DesiredState, service: str, snapshots: dict[str, HostSnapshot],
             journals: dict[str, list[JournalEntry]], to: int | None
             ) -> tuple[DesiredState, dict[str, dict[str, str]], list[str]]:
    """The desired state with `service` at its earlier revision on every host, the digests
    to pin per host, and the problems that forbid the rollback."""
    containers = {h: list(c) for h, c in state.containers.items()}
    digests: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for host, snapshot in snapshots.items():
        running = {c.replica: c.revision for c in snapshot.of_project(state.project)
                   if c.service == service and c.replica is not None}
        wanted = [c for c in containers[host] if c.service == service]
        replicas = sorted({c.replica for c in wanted} | set(running))
        if not replicas:
            continue
        kept = [c for c in containers[host] if c.service != service]
        for replica in replicas:
            target = choose_revision(journals.get(host, []), service, replica,
                                     running.get(replica), to)
            if target.entry is None:
                problems.append(one_line(f"{host}: {target.reason}"))
                continue
            made = desired_from_entry(target.entry, host, state.project, state.secrets_for(host))
            if isinstance(made, str):
                problems.append(one_line(f"{host}: {made}"))
                continue
            kept.append(made)
            if target.entry.digest:
                digests.setdefault(host, {})[target.entry.image] = target.entry.digest
        containers[host] = sorted(kept, key=lambda c: (c.service, c.replica))
    return dataclasses.replace(state, containers=containers), digests, problems


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

    async def go() -> tuple[Plan, RolloutResult]:
        async with session(state, options, "observing", as_json, for_changes=True,
                            lock="rollback", lock_wait=lock_wait) as (run, observation):
            # Read by the observation (a host whose journal can't be read is unreachable).
            journals = run.journals
            target_state, digests, problems = _targets(state, service, observation.snapshots,
                                                       journals, to_revision)
            if problems:
                raise FleetError("cannot roll back; nothing was changed:\n  "
                                 + "\n  ".join(problems))
            run.state = target_state
            pinned = dataclasses.replace(observation, host_digests=digests)
            plan_ = only_service(run.plan(pinned), service)
            if not as_json:
                print_plan(plan_, {})
            if not plan_.actions:
                return plan_, RolloutResult()
            await confirm(yes)
            return plan_, await converge(run, plan_, as_json, "rollback", [service])

    plan_, result = run_async(go())
    done = result.ok and not plan_.unreachable
    if as_json:
        print_json({"service": service, "rolled_back": done, **rollout_json(plan_, result)})
    elif plan_.actions:
        print_report(result, dict(plan_.unreachable))
    sys.exit(EXIT_OK if done else EXIT_ERROR)
