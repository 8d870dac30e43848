"""`fleet plan`, `fleet apply`, `fleet check` and `fleet status`: the reconciler's commands."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from fleet.cli.common import (
    console,
    invocation_of,
    json_option,
    print_json,
    project_options,
    targeting_given,
)
from fleet.cli.session import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    confirm,
    converge_with_hooks,
    hooks_json,
    load_state,
    lock_wait_option,
    plan_changes,
    plan_json,
    print_hooks,
    print_plan,
    print_report,
    require_confirmation_possible,
    rollout_json,
    run_async,
    run_options,
    session,
    unreachable_json,
    warn_unresolved,
)
from fleet.cli.terminal import echo, one_line
from fleet.core.diff import Kind
from fleet.core.plan import Plan
from fleet.core.seed_plan import plan_seeds
from fleet.engine.run import Observation, Run, RunOptions

if TYPE_CHECKING:  # the rollout's modules load only for a command that changes hosts
    from fleet.engine.hooks import HookResult
    from fleet.engine.rollout import RolloutResult


@click.command()
@project_options
@run_options
@json_option
@click.option("--out", "out", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also save the plan, with a fingerprint of each host, for `fleet apply "
                   "FILE` to apply exactly (or refuse if anything moved).")
def plan(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
         forks: int, connect_timeout: float, as_json: bool, out: str | None) -> None:
    """Show, per host, what apply would change. Exit 0 no changes, 2 changes, 1 error."""
    state = load_state(inventories, playbooks, limit, as_json)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout)

    async def go() -> tuple[Plan, dict[str, str], dict[tuple[str, str], str]]:
        async with session(state, options, "planning", as_json,
                           for_changes=True) as (run, observation):
            plan_ = await plan_changes(run, observation)
            if out is not None:
                from fleet.cli.saved_plan_cmd import save_plan
                save_plan(out, state, observation, plan_,
                          invocation_of(inventories, playbooks, limit))
            return plan_, observation.digest_failures, plan_seeds(plan_, run.hosts, state.seeds)

    plan_, failures, seeds = run_async(go())
    if as_json:
        print_json(plan_json(plan_, seeds))
    else:
        print_plan(plan_, failures, seeds)
        print_hooks(state, plan_, {h.host for h in plan_.hosts})
    if plan_.unreachable or not state.targeted_hosts:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if plan_.has_changes else EXIT_OK)


@click.command()
@project_options
@run_options
@json_option
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--no-prune", is_flag=True,
              help="Keep containers of services removed from the playbook, and extra replicas.")
@lock_wait_option
def apply(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
          forks: int, connect_timeout: float, as_json: bool, yes: bool, no_prune: bool,
          lock_wait: float | None) -> None:
    """Converge the targeted hosts to the playbook, rolling out per each service's `update:`
    policy. Exit 0 converged, 1 otherwise.

    Given a file saved by `fleet plan --out FILE` instead, apply exactly that plan, without
    asking, and only if every host still runs what it ran then (else exit 1, nothing
    changed)."""
    from fleet.cli.saved_plan_cmd import apply_saved, looks_saved
    if looks_saved(playbooks):
        given = targeting_given(inventories, limit) + (["--no-prune"] if no_prune else [])
        if given:
            raise click.UsageError(f"a saved plan carries its own playbooks and targeting: "
                                   f"drop {', '.join(given)}")
        apply_saved(playbooks[0], forks, connect_timeout, as_json, lock_wait)
        return
    state = load_state(inventories, playbooks, limit, as_json)
    require_confirmation_possible(yes)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout, prune=not no_prune)

    async def go() -> tuple[Plan, RolloutResult, list[HookResult]]:
        from fleet.engine.rollout import RolloutResult
        async with session(state, options, "observing", as_json, for_changes=True,
                            lock="apply", lock_wait=lock_wait) as (run, observation):
            plan_ = await plan_changes(run, observation)
            if not as_json:
                print_plan(plan_, observation.digest_failures,
                           plan_seeds(plan_, run.hosts, state.seeds))
                print_hooks(state, plan_, observation.snapshots)
            if not plan_.has_changes:
                return plan_, RolloutResult(), []
            await confirm(yes)
            return (plan_, *await converge_with_hooks(run, observation, plan_, as_json,
                                                      "apply"))

    plan_, result, hooks = run_async(go())
    converged = result.ok and not plan_.unreachable
    if as_json:
        print_json({"converged": converged, **rollout_json(plan_, result),
                    "hooks": hooks_json(hooks)})
    elif plan_.has_changes:
        print_report(result, dict(plan_.unreachable))
    sys.exit(EXIT_OK if converged else EXIT_ERROR)


@click.command()
@project_options
@run_options
@json_option
def check(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
          forks: int, connect_timeout: float, as_json: bool) -> None:
    """Drift check. Exit 0 in sync, 2 drift found, 1 when a host could not be checked."""
    state = load_state(inventories, playbooks, limit, as_json)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout)

    async def go() -> tuple[Run, Observation]:
        async with session(state, options, "checking", as_json) as (run, observation):
            return run, observation

    run, observation = run_async(go())
    # Without a digest a moved tag can't be seen: say so, whatever the output format.
    warn_unresolved(observation.digest_failures)
    findings = [f for host_findings in run.diff(observation).values() for f in host_findings
                if f.kind != Kind.IN_SYNC]
    # Nothing targeted (a --limit that matches no host) is nothing checked, not "in sync".
    in_sync = not findings and not observation.unreachable and bool(state.targeted_hosts)
    if as_json:
        print_json({"project": state.project, "in_sync": in_sync,
                    "hosts_checked": len(observation.snapshots),
                    "findings": [f.as_json() for f in findings],
                    "unreachable": unreachable_json(observation.unreachable)})
    else:
        for f in findings:
            replica = f"/{f.replica}" if f.replica else ""
            echo(one_line(f"{f.host}: {f.service}{replica}: {f.kind}: {f.detail}"))
        for host, error in sorted(observation.unreachable.items()):
            echo(one_line(f"{host}: unreachable: {error}"), err=True)
        verdict = "in sync" if in_sync else (
            f"{len(findings)} finding(s)" if findings else
            "no host is targeted, so nothing is known to be in sync"
            if not state.targeted_hosts else "could not check every host")
        echo(f"Checked {len(observation.snapshots)} host(s): {verdict}.")
    if observation.unreachable or not state.targeted_hosts:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if findings else EXIT_OK)


@click.command()
@project_options
@run_options
@json_option
def status(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
           forks: int, connect_timeout: float, as_json: bool) -> None:
    """Services x hosts, grouped by cloud and region: state, image, health, uptime, revision."""
    state = load_state(inventories, playbooks, limit, as_json)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout)

    async def go() -> Observation:
        async with session(state, options, "reading", as_json,
                           with_files=False) as (run, observation):
            if state.proxies:  # their routes: admin sockets beside the hosts' files
                await run.look_at_files(observation)
                await run.look_at_proxies(observation)
            return observation

    observation = run_async(go())
    from fleet.cli.status_view import routes_table, status_table  # rich: this command only
    table, rows = status_table(state, observation)
    routes, route_rows = routes_table(state, observation)
    if as_json:
        print_json({"project": state.project, "containers": rows, "routes": route_rows,
                    "unreachable": unreachable_json(observation.unreachable)})
    else:
        console().print(table)
        if route_rows:
            console().print(routes)
        for host, error in sorted(observation.unreachable.items()):
            echo(one_line(f"{host}: unreachable: {error}"), err=True)
    sys.exit(EXIT_ERROR if observation.unreachable else EXIT_OK)
