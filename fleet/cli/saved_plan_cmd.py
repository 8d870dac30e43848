"""`fleet plan --out FILE` and `fleet apply FILE`: a plan approved once, applied exactly.

`apply FILE` loads the project as the plan was made (its playbooks, inventories and
targeting), and refuses (exit 1, nothing changed) unless the desired state is the one
planned, every host still runs what it was observed to run, and the plan made now is the
saved one. Then it applies without asking: the plan was the question.
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.cli.common import print_json, replayed_project_files
from fleet.cli.session import (
    EXIT_ERROR,
    EXIT_OK,
    converge_with_hooks,
    hooks_json,
    plan_changes,
    plan_json,
    print_plan,
    print_report,
    rollout_json,
    run_async,
    session,
)
from fleet.cli.terminal import echo, one_line
from fleet.config.project import read_project
from fleet.core.desired import desired_state
from fleet.core.plan import Plan
from fleet.core.saved_plan import (
    FORMAT,
    MAX_BYTES,
    SavedPlan,
    SavedPlanError,
    desired_digest,
    host_fingerprint,
    is_saved_plan,
    moved_hosts,
    plan_digest,
    read_saved_plan,
    replanned_hosts,
)
from fleet.core.seed_plan import plan_seeds
from fleet.engine.run import Observation, RunOptions
from fleet.errors import FleetError

if TYPE_CHECKING:
    from fleet.core.desired import DesiredState
    from fleet.engine.hooks import HookResult
    from fleet.engine.rollout import RolloutResult


def looks_saved(paths: tuple[str, ...]) -> bool:
    """Whether `apply`'s one argument is a saved plan rather than a playbook."""
    if len(paths) != 1:
        return False
    try:
        with open(paths[0], "rb") as f:
            return is_saved_plan(f.read(4096))
    except OSError:
        return False  # the playbook loader says what is wrong with it


def host_plans(plan: Plan) -> dict[str, str]:
    return {h["host"]: plan_digest(h) for h in plan_json(plan)["hosts"]}


def save_plan(path: str, state: DesiredState, observation: Observation, plan: Plan,
              invocation: dict[str, Any]) -> None:
    """Write the plan beside its fingerprints, atomically (a reader never sees half)."""
    if plan.unreachable:
        raise FleetError(f"{path}: not saved: {len(plan.unreachable)} host(s) could not be "
                         "observed, so there is nothing to hold them to (see above)")
    plans = host_plans(plan)
    saved = SavedPlan(
        format=FORMAT, created=datetime.datetime.now(datetime.UTC).isoformat(),
        project=state.project, invocation=invocation, desired=desired_digest(state),
        hosts=[{"host": h.host, "fingerprint": host_fingerprint(observation.snapshots[h.host]),
                "plan": plans[h.host]} for h in plan.hosts],
        plan=plan_json(plan))
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(saved.model_dump_json(indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, target)


def _load(path: str) -> SavedPlan:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise FleetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return read_saved_plan(data)
    except SavedPlanError as exc:
        raise FleetError(f"{path}: {exc}") from None


def _refuse(path: str, why: str, hosts: list[str]) -> None:
    named = ", ".join(hosts[:20]) + (f" and {len(hosts) - 20} more" if len(hosts) > 20 else "")
    echo(one_line(f"refusing to apply {path}: {why}: {named}; nothing was changed "
                  "(make a new plan)"), err=True)
    sys.exit(EXIT_ERROR)


def apply_saved(path: str, forks: int, connect_timeout: float, as_json: bool,
                lock_wait: float | None) -> None:
    saved = _load(path)
    state = desired_state(read_project(replayed_project_files(saved.invocation.model_dump())))
    if desired_digest(state) != saved.desired:
        echo(one_line(f"refusing to apply {path}: the playbooks, inventory or secrets are not "
                      "what the plan was made from (or other hosts are targeted); nothing was "
                      "changed (make a new plan)"), err=True)
        sys.exit(EXIT_ERROR)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout,
                         prune=saved.invocation.prune)

    async def go() -> tuple[Plan, RolloutResult, list[HookResult]]:
        from fleet.engine.rollout import RolloutResult
        async with session(state, options, "observing", as_json, for_changes=True,
                           lock="apply", lock_wait=lock_wait) as (run, observation):
            if observation.unreachable:
                _refuse(path, "these hosts could not be observed", sorted(observation.unreachable))
            # Fingerprinted as `plan --out` does: after planning, which reads the journals
            # of the hosts it changes.
            plan = await plan_changes(run, observation)
            moved = moved_hosts(saved, {h: host_fingerprint(s)
                                        for h, s in observation.snapshots.items()})
            if moved:
                _refuse(path, "these hosts changed since the plan was made", moved)
            replanned = replanned_hosts(saved, host_plans(plan))
            if replanned:
                _refuse(path, "the plan made now differs on these hosts (an image tag moved, "
                              "or a container's health changed)", replanned)
            if not as_json:
                print_plan(plan, observation.digest_failures,
                           plan_seeds(plan, run.hosts, state.seeds))
            if not plan.has_changes:
                return plan, RolloutResult(), []
            return (plan, *await converge_with_hooks(run, observation, plan, as_json,
                                                     "apply"))

    plan, result, hooks = run_async(go())
    converged = result.ok and not plan.unreachable
    if as_json:
        print_json({"converged": converged, **rollout_json(plan, result),
                    "hooks": hooks_json(hooks)})
    elif plan.has_changes:
        print_report(result, dict(plan.unreachable))
    sys.exit(EXIT_OK if converged else EXIT_ERROR)
