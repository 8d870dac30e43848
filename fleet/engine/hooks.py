"""Hooks: a one-off command per rollout, on exactly one host, in its service's new image.

The container is the service's desired container for that host (image pinned as the
rollout pins it, environment, volumes, first network) with the hook's argv as its command,
no published ports and no restart policy, named `PROJECT-hook-NAME` and labelled with the
project only (a leftover of a crashed run is an orphan the next apply removes). It is pulled,
created, started, waited for within the hook's timeout, and removed; the outcome is an entry
of that host's journal (`hook pre_deploy`, service `hook:NAME`)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from fleet.config.references import pinned_image
from fleet.core import labels
from fleet.core.desired import DesiredContainer, PlacedHook
from fleet.core.journal import JournalEntry
from fleet.core.plan import Plan
from fleet.docker.bodies import create_body, network_body
from fleet.engine.health import wait_exit
from fleet.engine.run import Observation, Run
from fleet.errors import DockerNotFoundError, FleetError
from fleet.hoststate.journal import Journal
from fleet.hoststate.lease import current_operator
from fleet.text import one_line

HOOK_LABEL = "fleet.hook"
LAST_LINES = 20  # of a failed hook's output, told


@dataclass(frozen=True)
class HookResult:
    name: str
    phase: str
    host: str  # "" when it found no host to run on
    ok: bool
    detail: str = ""
    output: str = ""  # the last lines of a failed hook's output


def due_hooks(hooks: Sequence[PlacedHook], plan: Plan) -> list[PlacedHook]:
    """The hooks whose service this plan changes somewhere (so: once per rollout of it)."""
    changed = {a.service for h in plan.hosts for a in h.actions if a.service}
    return [h for h in hooks if h.hook.service in changed]


def _container(run: Run, placed: PlacedHook, host: str) -> DesiredContainer:
    desired = next(c for c in run.state.containers[host] if c.service == placed.hook.service)
    options = {**desired.options, "command": list(placed.hook.command), "ports": [],
               "restart": "no", "container_name": None}
    if placed.hook.entrypoint is not None:
        options["entrypoint"] = list(placed.hook.entrypoint)
    return replace(desired, options=options)


async def _networks(run: Run, host: str, container: DesiredContainer) -> None:
    """The project networks the hook joins, made now if the host lacks them (a first
    rollout would make them anyway, as the plan's first steps)."""
    wanted = [run.state.networks[name] for name in container.options.get("networks") or {}
              if name in run.state.networks and not run.state.networks[name].external]
    if not wanted:
        return
    docker = run.docker(host)
    present = {str(n.get("Name")) for n in await docker.list_networks() if isinstance(n, dict)}
    for spec in wanted:
        if spec.name not in present:
            await docker.create_network(network_body(spec, run.state.project))


async def run_hook(run: Run, observation: Observation, placed: PlacedHook, phase: str
                   ) -> HookResult:
    hook = placed.hook
    hosts = [h for h in placed.hosts if h in observation.snapshots]
    if not hosts:
        return HookResult(hook.name, phase, "", False,
                          f"no reachable host of service '{hook.service}' to run it on")
    host = hosts[0]
    docker = run.docker(host)
    container = _container(run, placed, host)
    configured = str(container.options["image"])
    digest = observation.host_digests.get(host, {}).get(configured,
                                                        observation.digests.get(configured))
    image = pinned_image(configured, digest)
    name = f"{run.state.project}-hook-{hook.name}"
    ok, detail, output = False, "", ""
    try:
        await docker.pull_image(image, auth=run.auth.for_image(image))
        with contextlib.suppress(DockerNotFoundError):  # a crashed run's leftover
            await docker.remove_container(name, force=True)
        await _networks(run, host, container)
        body = create_body(container, run.state.secrets_for(host), digest, 0,
                           run.file_root(host))
        body["Image"] = image
        body["Labels"] = {labels.PROJECT: run.state.project, HOOK_LABEL: hook.name}
        made = await docker.create_container(name, body)
        cid = str(made.get("Id") or name) if isinstance(made, dict) else name
        await docker.start_container(cid)
        failure = await wait_exit(docker, cid, hook.timeout)
        ok, detail = failure is None, failure or "exited 0"
        if not ok:
            logs = await docker.container_logs(cid, tail=LAST_LINES)
            output = "\n".join(one_line(line) for line in
                               (logs.stdout + logs.stderr).splitlines()[-LAST_LINES:])
    except (FleetError, ValueError) as exc:
        detail = str(exc)
    finally:
        with contextlib.suppress(FleetError):
            await docker.remove_container(name, force=True)
    entry = JournalEntry(command=f"hook {phase}", service=f"hook:{hook.name}", replica=0,
                         revision=0, image=configured, digest=digest or "",
                         spec={"command": list(hook.command)}, spec_hash="",
                         outcome="ok" if ok else "failed", detail=detail[:4096],
                         operator=current_operator())
    try:
        await Journal(run.pool.connected[host], run.state.project,
                      run.hosts[host].state_dir).append([entry])
    except FleetError as exc:
        detail += f" (not journaled: {exc})"
    return HookResult(hook.name, phase, host, ok, detail, output)


async def run_hooks(run: Run, observation: Observation, hooks: Sequence[PlacedHook],
                    phase: str) -> list[HookResult]:
    """In order, each once; the first that fails ends the phase."""
    results = []
    for placed in hooks:
        result = await run_hook(run, observation, placed, phase)
        results.append(result)
        if not result.ok:
            break
    return results
