"""What the commands that touch hosts share: options, loading, a session with the fleet
(connect, lock, observe), plan and report output, and carrying out a plan as a rollout."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fleet.cli.common import (
    CONNECT_TIMEOUT,
    FORKS,
    console,
    project_files,
    report_warnings,
)
from fleet.cli.progress import HostProgress
from fleet.cli.terminal import echo, one_line
from fleet.config.project import read_project
from fleet.config.units import parse_duration
from fleet.core.desired import DesiredState, desired_state
from fleet.core.plan import Action, Plan, Step, short_id
from fleet.core.policy import HostOutcome, HostReport
from fleet.core.seed_plan import seed_summary
from fleet.engine.run import Observation, Run, RunOptions
from fleet.errors import FleetError, LockHeld
from fleet.hoststate.multi import fleet_lock, state_dirs
from fleet.text import printable
from fleet.transport.ssh import DEFAULT_FORKS

if TYPE_CHECKING:  # the rollout's modules load only for a command that changes hosts
    from fleet.engine.hooks import HookResult
    from fleet.engine.rollout import RolloutResult

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


_HOST_TIMEOUT = "fleet.host_timeout"


def run_options(func: F) -> F:
    func = click.option("--forks", type=FORKS, default=DEFAULT_FORKS,
                        show_default=True, help="Hosts worked on at once.")(func)
    func = click.option("--connect-timeout", type=CONNECT_TIMEOUT, default=10.0,
                        show_default=True,
                        help="Seconds to wait for a host's SSH connection.")(func)
    # Reaches session() through the context, as --env-file reaches the project.
    func = click.option("--host-timeout", metavar="DURATION", default="60s",
                        show_default=True, expose_value=False, callback=_remember_host_timeout,
                        help="Longest one host may take to be read (its containers, "
                             "journal, files); a slower host is reported unreachable.")(func)
    return func


def duration_value(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _remember_host_timeout(ctx: click.Context, param: click.Parameter, value: str) -> None:
    seconds = duration_value(ctx, param, value)
    if seconds is None or seconds <= 0:
        raise click.BadParameter("must be a positive duration, e.g. 30s")
    ctx.meta[_HOST_TIMEOUT] = seconds


def with_host_timeout(options: RunOptions) -> RunOptions:
    """`options` with the command line's --host-timeout, when the command has one."""
    ctx = click.get_current_context(silent=True)
    seconds = ctx.meta.get(_HOST_TIMEOUT) if ctx is not None else None
    return dataclasses.replace(options, host_timeout=seconds) if seconds else options


def lock_wait_option(func: F) -> F:
    return click.option("--lock-wait", metavar="DURATION", callback=duration_value,
                        help="If another run holds the project's lock, wait up to this long "
                             "(e.g. 5m) instead of failing at once.")(func)


def load_state(inventories: tuple[str, ...], playbooks: tuple[str, ...], limit: str | None,
          quiet: bool) -> DesiredState:
    state = desired_state(read_project(project_files(inventories, playbooks, limit)))
    if not quiet:
        report_warnings(state.problems)
    return state


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def session(state: DesiredState, options: RunOptions, title: str, quiet: bool, *,
                   for_changes: bool = False, with_journals: bool = False,
                   lock: str | None = None,
                   lock_wait: float | None = None, with_files: bool = True
                   ) -> AsyncIterator[tuple[Run, Observation]]:
    """Connect to the targeted hosts, take the project's lock on them when `lock` names the
    command (before anything is read, so the plan can't go stale), and observe (the
    delivered files too, unless not `with_files`)."""
    run = Run(state, with_host_timeout(options))
    async with contextlib.AsyncExitStack() as stack:
        with HostProgress(title, len(state.targeted_hosts), quiet=quiet,
                          plain_lines=False) as progress:
            def report(host: str, message: str) -> None:
                progress.update(host, message)
                progress.host_done(host)

            run.report = report
            await stack.enter_async_context(run)
            if lock:
                def waiting(refused: LockHeld) -> None:
                    if not quiet:
                        echo(one_line(f"waiting for the lock: {refused}"), err=True)

                run.lock = await stack.enter_async_context(fleet_lock(
                    run.pool.connected, state.project, lock, wait=lock_wait,
                    state_dirs=state_dirs(state.targeted_hosts), on_wait=waiting))
            # Only the commands that change hosts (and so hold the lock) may pull.
            observation = await run.observe(for_changes=for_changes,
                                            with_journals=with_journals,
                                            about_to_pull=lock is not None,
                                            with_files=with_files)
            warn_hosts(observation.warnings)
        yield run, observation


async def plan_changes(run: Run, observation: Observation) -> Plan:
    """The plan, the journals of the hosts it changes read (Run.plan_changes), and what
    those journals held that fleet skipped, told."""
    before = set(observation.warnings)
    plan = await run.plan_changes(observation)
    warn_hosts({h: notes for h, notes in observation.warnings.items() if h not in before})
    return plan


def warn_hosts(warnings: dict[str, list[str]]) -> None:
    """What a host's state files held that fleet skipped (a torn journal line, say)."""
    for host, notes in sorted(warnings.items()):
        for note in notes:
            echo(one_line(f"warning: {host}: {note}"), err=True)


def step_json(step: Step) -> dict[str, Any]:
    return {"kind": str(step.kind), "target": step.target, "container": step.shown or None,
            "what": step.what(), "cause": step.cause,
            "undo": [u.what() for u in step.undo], "commit": step.commit}


def action_json(action: Action) -> dict[str, Any]:
    return {"kind": str(action.kind), "target": action.target, "cause": action.cause,
            "order": str(action.order) if action.order else None,
            "revision": action.revision or None, "image": action.image or None,
            "steps": [step_json(s) for s in action.steps]}


def unreachable_json(unreachable: dict[str, str]) -> list[dict[str, str]]:
    return [{"host": h, "error": e} for h, e in sorted(unreachable.items())]


def plan_json(plan: Plan, seeds: Mapping[tuple[str, str], str] | None = None
              ) -> dict[str, Any]:
    return {
        "project": plan.project,
        "changes": plan.has_changes,
        "hosts_checked": len(plan.hosts),
        "order": list(plan.order),
        "hosts": [{"host": h.host, "actions": [action_json(a) for a in h.actions],
                   "findings": [{**f.as_json(), "changes": [
                       {"field": c.field, "observed": c.observed, "desired": c.desired}
                       for c in f.changes]} for f in h.drift]} for h in plan.hosts],
        "unreachable": unreachable_json(dict(plan.unreachable)),
        "seeds": [{"seed": seed, "image_id": image_id, "hosts": peers}
                  for seed, image_id, peers in seed_summary(seeds or {})],
    }


def warn_unresolved(digest_failures: dict[str, str]) -> None:
    for image, reason in sorted(digest_failures.items()):
        echo(one_line(f"warning: could not resolve {image} to a digest ({reason}); a moved "
                      "tag can't be detected, and the tag is used as is"), err=True)


def _no_changes(plan: Plan) -> str:
    """What an empty plan means: only the hosts observed are known to be in sync."""
    if not plan.hosts and not plan.unreachable:
        return "No host is targeted: nothing was planned."
    if not plan.unreachable:
        return "No changes: every targeted host is in sync."
    checked, missing = len(plan.hosts), len(plan.unreachable)
    if not checked:
        return f"No host could be checked ({missing} unreachable): nothing is known to be in sync."
    return (f"No changes on the {checked} host(s) checked; {missing} could not be checked, "
            "so nothing is known of them.")


def print_plan(plan: Plan, digest_failures: dict[str, str],
               seeds: Mapping[tuple[str, str], str] | None = None) -> None:
    out = console()
    warn_unresolved(digest_failures)
    out.print(printable(plan.text() or _no_changes(plan)), markup=False)
    for seed, image_id, peers in seed_summary(seeds or {}):
        out.print(printable(f"seed {seed}: receives {short_id(image_id)} and serves it to "
                            f"{', '.join(peers)}"), markup=False)
    for host, error in sorted(plan.unreachable.items()):
        echo(one_line(f"{host}: unreachable: {error}"), err=True)
    if plan.actions:
        kinds: dict[str, int] = {}
        for action in plan.actions:
            kinds[str(action.kind)] = kinds.get(str(action.kind), 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        hosts = sum(1 for h in plan.hosts if h.actions)
        out.print(f"Plan: {summary} on {hosts} host{'s' if hosts != 1 else ''}.", markup=False)


def warn_unkeyed_secrets(state: DesiredState) -> None:
    """Said once per change: without a key, what hosts store about secrets can be guessed at."""
    if state.secrets.keyed or not any(state.declared_secrets.values()):
        return
    echo("note: FLEET_SECRET_KEY is not set, so the digests of secrets that hosts store (in "
         "labels and journals) are unkeyed: whoever reads them can test guesses of a weak "
         "secret. Set FLEET_SECRET_KEY to a long random value, the same on every controller "
         "of the project (see SECURITY.md).", err=True)


def require_confirmation_possible(yes: bool) -> None:
    """Checked before any host is touched: without a terminal to ask on, --yes is required."""
    if not yes and not sys.stdin.isatty():
        raise FleetError("not a terminal to ask for confirmation on: pass --yes to go ahead "
                         "without one")


async def confirm(yes: bool) -> None:
    """Ask on the terminal (with the lock held and hosts connected); exit 1 on no.

    The prompt runs in a daemon thread: a thread blocked reading stdin must not keep the
    process alive after Ctrl-C."""
    if yes:
        return
    require_confirmation_possible(yes)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bool] = loop.create_future()

    def ask() -> None:
        try:
            result = click.confirm("Apply these changes?", default=False)
        except (click.Abort, EOFError):
            result = False
        def settle() -> None:
            if not answer.done():
                answer.set_result(result)

        loop.call_soon_threadsafe(settle)

    threading.Thread(target=ask, name="confirm", daemon=True).start()
    if not await answer:
        echo("Nothing changed.", err=True)
        sys.exit(EXIT_ERROR)


def interruptible(event: asyncio.Event) -> None:
    """First Ctrl-C (or SIGTERM, as a service manager or CI sends): start no new batch,
    settle the one in flight. Second: stop now."""
    loop = asyncio.get_running_loop()

    def on_interrupt() -> None:
        if event.is_set():
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            raise KeyboardInterrupt
        event.set()
        echo("\ninterrupt: finishing the batch in flight, starting no new one "
             "(Ctrl-C again to stop at once)", err=True)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_interrupt)


def report_json(result: RolloutResult) -> list[dict[str, Any]]:
    by_host: dict[str, list[HostReport]] = {}
    for report in result.reports:
        by_host.setdefault(report.host, []).append(report)
    rows = []
    for host, reports in sorted(by_host.items()):
        bad = [r for r in reports if r.outcome not in (HostOutcome.CHANGED, HostOutcome.UNTOUCHED)]
        rows.append({
            "host": host,
            "ok": not bad,
            "error": "; ".join(f"{r.service}: {r.outcome}: {r.detail}" for r in bad) or None,
            "actions": [action_json(a) for r in reports for a in r.done],
            "services": [{"service": r.service, "outcome": str(r.outcome), "detail": r.detail}
                         for r in reports],
            "images_loaded": [{"image_id": d.image_id, "layers_sent": d.layers_sent,
                               "layers_total": d.layers_total, "bytes_sent": d.bytes_sent,
                               **({"from_seed": d.seed} if d.seed else {})}
                              for d in result.loaded.get(host, [])],
        })
    return rows


def rollout_json(plan: Plan, result: RolloutResult) -> dict[str, Any]:
    """What `apply --json` and `rollback --json` share: each host's actions and outcomes."""
    return {"project": plan.project, "hosts": report_json(result),
            "stopped": result.stopped or None, "interrupted": result.interrupted,
            "unreachable": unreachable_json(dict(plan.unreachable))}


def print_report(result: RolloutResult, unreachable: dict[str, str]) -> None:
    for report in result.reports:
        if report.outcome != HostOutcome.CHANGED:
            detail = f": {report.detail}" if report.detail else ""
            echo(one_line(f"{report.host}: {report.service}: {report.outcome}{detail}"), err=True)
    if result.stopped:
        echo(one_line(f"rollout stopped: {result.stopped}"), err=True)
    if result.interrupted:
        echo("rollout interrupted: hosts not reached are untouched", err=True)
    changed = len({r.host for r in result.reports if r.outcome == HostOutcome.CHANGED})
    failed = len({r.host for r in result.reports
                  if r.outcome not in (HostOutcome.CHANGED, HostOutcome.UNTOUCHED)})
    echo(f"Applied: {changed} host(s) changed, {failed} failed or rolled back, "
               f"{len(unreachable)} unreachable.")


async def converge(run: Run, plan: Plan, as_json: bool, command: str,
                   services: list[str] | None = None,
                   releases: tuple[str, str] = ("", "")) -> RolloutResult:
    """Carry out a plan as a rollout, with progress and Ctrl-C settling the batch in flight.
    `releases`: for a rollback, the (target, leaving) releases its journal entries record."""
    from fleet.engine.journaling import JournalBook
    from fleet.engine.rollout import Rollout
    busy = [h for h in plan.hosts if h.actions or h.blocked]
    warn_unkeyed_secrets(run.state)
    interrupted = asyncio.Event()
    interruptible(interrupted)
    with HostProgress(command, len(busy), quiet=as_json) as progress:
        def report(host: str, message: str) -> None:
            progress.update(host, message)
            if message.endswith(": done"):
                progress.host_done(host)

        target, leaving = releases
        journal = JournalBook(run, command, report, target=target, leaving=leaving)
        rollout = Rollout(run, plan, interrupted=interrupted, report=report,
                          command=command, services=services, journal=journal)
        return await rollout.execute()


def _tell_hook(result: HookResult, quiet: bool) -> None:
    if quiet:
        return
    where = f" on {result.host}" if result.host else ""
    verdict = "ok" if result.ok else "failed"
    echo(one_line(f"hook {result.phase} {result.name}{where}: {verdict}: {result.detail}"),
         err=not result.ok)
    for line in result.output.splitlines():
        echo(f"  {line}", err=True)


def hooks_json(results: list[HookResult]) -> list[dict[str, Any]]:
    return [{"name": r.name, "phase": r.phase, "host": r.host or None, "ok": r.ok,
             "detail": r.detail, "output": r.output} for r in results]


async def converge_with_hooks(run: Run, observation: Observation, plan: Plan, as_json: bool,
                              command: str) -> tuple[RolloutResult, list[HookResult]]:
    """The rollout between the hooks its services have: a pre_deploy hook that fails stops
    it before any host changes; post_deploy hooks run once it succeeded."""
    from fleet.engine.hooks import due_hooks, run_hooks
    from fleet.engine.rollout import RolloutResult
    results: list[HookResult] = []
    pre = due_hooks(run.state.hooks.get("pre_deploy", ()), plan)
    if pre:
        results += await run_hooks(run, observation, pre, "pre_deploy")
        for result in results:
            _tell_hook(result, as_json)
        failed = [r for r in results if not r.ok]
        if failed:
            return RolloutResult(stopped=f"pre_deploy hook {failed[0].name} failed: "
                                         f"{failed[0].detail}; no host was changed"), results
    rollout = await converge(run, plan, as_json, command)
    post = due_hooks(run.state.hooks.get("post_deploy", ()), plan)
    if post and rollout.ok:
        done = await run_hooks(run, observation, post, "post_deploy")
        for result in done:
            _tell_hook(result, as_json)
        results += done
        failed = [r for r in done if not r.ok]
        if failed:
            rollout.stopped = f"post_deploy hook {failed[0].name} failed: {failed[0].detail}"
    return rollout, results


def print_hooks(state: DesiredState, plan: Plan, reachable: Collection[str]) -> None:
    """The hooks this plan's rollout would run, and where (as `apply` will choose)."""
    changed = {a.service for h in plan.hosts for a in h.actions if a.service}
    for phase in ("pre_deploy", "post_deploy"):
        for placed in state.hooks.get(phase, ()):
            if placed.hook.service not in changed:
                continue
            hosts = [h for h in placed.hosts if h in reachable]
            where = f"on {hosts[0]}" if hosts else "on no reachable host (it would fail)"
            echo(one_line(f"hook {phase} {placed.hook.name}: runs once, in "
                          f"{placed.hook.service}'s new image, {where}"))
