"""What `depends_on` means at run time (pure): the order services roll out in, the conditions
a service waits for on each host, which services are one-shot jobs, and what is refused
before any host is touched.

Compose runs one host; fleet applies the same rules on every host:

- Services roll out one after another in a topological order of their dependencies
  (`depends_on`, and `links`/`volumes_from`/`ipc`/`pid` naming a service, which count as
  `service_started`, as Compose counts them); independent services keep playbook order.
- Before a service's containers are created or started on a host, each dependency that runs
  on that host must meet its condition there: `service_started` running,
  `service_healthy` healthy, `service_completed_successfully` exited with code 0. Where the
  dependency does not run, there is nothing to wait for (a dependency that shares no host
  with its dependent is a warning: it still rolls out first).
- A service some dependent waits for with `service_completed_successfully` is a job: its
  container runs once to exit code 0 and stays exited, which is its desired state.
- `restart: true`: when a dependency is replaced or restarted on a host, the dependent's
  running containers there are restarted after it (planned in fleet.core.plan).

The rollout driver (fleet.engine.rollout) follows the order; fleet.core.policy decides what a
dependency's outcome on a host means for its dependents, fleet.core.health judges the
conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleet.config.compose_fields import Dependency
from fleet.config.playbook import LoadedPlaybook
from fleet.config.problems import KeyPath, Problem
from fleet.core.refs import ServiceRefs, entry_path

if TYPE_CHECKING:
    from fleet.core.desired import DesiredContainer

STARTED = "service_started"
HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"
WORDS = {STARTED: "started", HEALTHY: "healthy", COMPLETED: "completed successfully"}
RESTARTS_A_JOB = ("always", "unless-stopped")


def waits_of(refs: ServiceRefs) -> dict[str, Dependency]:
    """Every service this one waits for, with its condition: `depends_on` as written, and
    the services it links to or shares volumes or namespaces with (service_started, unless
    depends_on says more)."""
    found = dict(refs.depends_on)
    for target in sorted(refs.targets() - set(found)):
        found[target] = Dependency()
    return found


def project_waits(refs: Mapping[str, ServiceRefs]) -> dict[str, dict[str, Dependency]]:
    """Per service, the services of the project it waits for (a missing one, allowed by
    `required: false`, is skipped)."""
    return {name: {target: dep for target, dep in waits_of(own).items() if target in refs}
            for name, own in refs.items()}


def rollout_order(services: Sequence[str], waits: Mapping[str, Mapping[str, Dependency]]
                  ) -> list[str]:
    """Each service after the ones it waits for; among services free to go, playbook order
    (so the order is deterministic, and unchanged for a playbook without dependencies).
    References are checked acyclic at validation; a cycle left in anyway is broken at its
    first service in playbook order rather than losing a service."""
    index = {name: number for number, name in enumerate(services)}
    pending = {name: {t for t in waits.get(name, {}) if t in index and t != name}
               for name in services}
    order: list[str] = []
    while pending:
        ready = [name for name, before in pending.items() if not before]
        chosen = min(ready or pending, key=index.__getitem__)
        order.append(chosen)
        del pending[chosen]
        for before in pending.values():
            before.discard(chosen)
    return order


def job_services(waits: Mapping[str, Mapping[str, Dependency]]) -> frozenset[str]:
    """The services some dependent waits for with service_completed_successfully."""
    return frozenset(target for own in waits.values() for target, dep in own.items()
                     if dep.condition == COMPLETED)


def waiters_for(job: str, waits: Mapping[str, Mapping[str, Dependency]]) -> list[str]:
    return sorted(name for name, own in waits.items()
                  if own.get(job) is not None and own[job].condition == COMPLETED)


def after_note(service: str, waits: Mapping[str, Mapping[str, Dependency]],
               here: set[str]) -> str:
    """`after db (healthy), migrate (completed successfully)`: what a service's containers
    wait for on a host where these services (`here`) run; "" when nothing."""
    parts = [f"{target} ({WORDS[dep.condition]})"
             for target, dep in sorted(waits.get(service, {}).items()) if target in here]
    return f"after {', '.join(parts)}" if parts else ""


def restarted_by(waits: Mapping[str, Mapping[str, Dependency]]) -> dict[str, list[str]]:
    """Per dependency, the services that `restart: true` restarts when it is replaced."""
    found: dict[str, list[str]] = {}
    for name, own in sorted(waits.items()):
        for target, dep in sorted(own.items()):
            if dep.restart:
                found.setdefault(target, []).append(name)
    return found


# -- refused before any host is touched -------------------------------------------------------


def _never_healthy(options: Mapping[str, Any]) -> bool:
    check = options.get("healthcheck")
    return not check or bool(check.get("disable")) or check.get("test") == ["NONE"]


def _restart_path(pb: LoadedPlaybook, service: str) -> KeyPath:
    raw = pb.raw_service(service)
    if "restart" in raw:
        return ("services", service, "restart")
    deploy = raw.get("deploy")
    if isinstance(deploy, dict) and "restart_policy" in deploy:
        return ("services", service, "deploy", "restart_policy")
    return ("services", service)


def dependency_problems(containers: Mapping[str, Sequence[DesiredContainer]],
                        placed: Mapping[str, Sequence[str]],
                        waits: Mapping[str, Mapping[str, Dependency]],
                        docs: Mapping[str, LoadedPlaybook]) -> list[Problem]:
    """Conditions that can never be met, and dependencies that never meet: a
    service_healthy dependency without a healthcheck, a job that would be restarted (or is
    also waited for as healthy), a dependency that shares no host with its dependent.
    `containers`: per host, the rendered containers; `placed`: per service, its hosts;
    `waits`: each service's `depends_on` as written, on services of the project."""
    options: dict[str, list[Mapping[str, Any]]] = {}
    for host_containers in containers.values():
        for container in host_containers:
            options.setdefault(container.service, []).append(container.options)
    jobs = job_services(waits)
    problems: list[Problem] = []
    for name, own in waits.items():
        pb = docs[name]
        for target, dep in own.items():
            path, at_key = entry_path(pb, name, "depends_on", target)
            severity = "error" if dep.required else "warning"
            shared = set(placed.get(name, ())) & set(placed.get(target, ()))
            if placed.get(name) and placed.get(target) and not shared:
                problems.append(pb.doc.problem(
                    path, f"service '{name}' depends on '{target}', but no host runs both: "
                    f"its condition ({dep.condition}) is checked only on hosts where both "
                    f"run, so never; '{target}' still rolls out before '{name}'",
                    at_key=at_key, severity="warning"))
            if dep.condition != HEALTHY:
                continue
            if target in jobs:
                problems.append(pb.doc.problem(
                    path, f"service '{name}' waits for '{target}' to be healthy, but "
                    f"'{target}' is a one-shot job (service '{waiters_for(target, waits)[0]}' "
                    "waits for it with condition: service_completed_successfully): a job "
                    "exits, it is never healthy", at_key=at_key, severity=severity))
            elif any(_never_healthy(o) for o in options.get(target, [])):
                problems.append(pb.doc.problem(
                    path, f"service '{name}' waits for '{target}' to be healthy (condition: "
                    f"service_healthy), but '{target}' has no healthcheck, so it can never "
                    f"become healthy: give '{target}' a healthcheck (a HEALTHCHECK only in "
                    "its image is not seen before it runs; `healthcheck: {interval: 5s}` "
                    "declares that one), or wait for condition: service_started",
                    at_key=at_key, severity=severity))
    for job in sorted(jobs):
        restart = {str(o.get("restart")) for o in options.get(job, [])} & set(RESTARTS_A_JOB)
        if restart and job in docs:
            problems.append(docs[job].doc.problem(
                _restart_path(docs[job], job),
                f"service '{job}' is a one-shot job (service '{waiters_for(job, waits)[0]}' "
                f"waits for it with condition: service_completed_successfully), so it must "
                f"run to completion and stay exited; restart: {sorted(restart)[0]} would "
                "start it again: use 'no' or 'on-failure'"))
    return problems
