"""The plan: per host, the actions that turn observed state into desired state.

Plain data with a cause for each action and one canonical text form. Images are pulled
on a host before any container there is replaced. Replacement is start-first unless the
container publishes a fixed host port (then the old one must let go of it first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from fleet.desired import DesiredContainer
from fleet.diff import Finding, Kind, only_updatable
from fleet.engine_spec import pinned_image
from fleet.observed import HostSnapshot, ObservedContainer


class ActionKind(StrEnum):
    PULL = "pull"
    CREATE = "create"  # create and start
    START = "start"
    RESTART = "restart"
    UPDATE = "update"  # in place: resource limits, restart policy
    RECREATE = "recreate"
    RENAME = "rename"
    REMOVE = "remove"  # stop and remove
    NETWORK = "network"  # create a network of the project


class Order(StrEnum):
    START_FIRST = "start-first"
    STOP_FIRST = "stop-first"


@dataclass(frozen=True)
class Action:
    host: str
    kind: ActionKind
    target: str  # container name, or image for pulls
    cause: str
    desired: DesiredContainer | None = None
    observed: ObservedContainer | None = None
    image: str = ""  # the pinned reference to create from / pull
    digest: str | None = None
    revision: int = 0
    order: Order | None = None

    def text(self) -> str:
        order = f" ({self.order})" if self.order else ""
        target = self.target
        if self.kind == ActionKind.PULL and "@sha256:" in target:
            target = target[: target.index("@sha256:") + len("@sha256:") + 12]
        return f"{self.kind} {target}{order}: {self.cause}"


@dataclass(frozen=True)
class HostPlan:
    host: str
    findings: tuple[Finding, ...]
    actions: tuple[Action, ...]

    @property
    def blocked(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == Kind.CONFLICT]

    @property
    def drift(self) -> list[Finding]:
        return [f for f in self.findings if f.kind != Kind.IN_SYNC]


@dataclass(frozen=True)
class Plan:
    project: str
    hosts: tuple[HostPlan, ...]
    unreachable: Mapping[str, str] = field(default_factory=dict)

    @property
    def actions(self) -> list[Action]:
        return [a for h in self.hosts for a in h.actions]

    @property
    def has_changes(self) -> bool:
        return bool(self.actions) or any(h.blocked for h in self.hosts)

    def text(self) -> str:
        lines: list[str] = []
        for host_plan in self.hosts:
            if not host_plan.actions and not host_plan.blocked:
                continue
            lines.append(f"{host_plan.host}:")
            lines += [f"  {a.text()}" for a in host_plan.actions]
            lines += [f"  blocked {f.desired.name if f.desired else f.service}: {f.detail}"
                      for f in host_plan.blocked]
        return "\n".join(lines)


def _order(desired: DesiredContainer, policy: str) -> Order:
    if policy == "stop-first":
        return Order.STOP_FIRST
    if policy == "start-first":
        return Order.START_FIRST
    fixed = any(p["published"] for p in desired.options["ports"])
    return Order.STOP_FIRST if fixed else Order.START_FIRST


def _next_revision(snapshot: HostSnapshot, project: str, service: str) -> int:
    revisions = [c.revision for c in snapshot.of_project(project) if c.service == service]
    return max([*revisions, snapshot.last_revisions.get(service, 0)]) + 1


def _networks_to_create(findings: Sequence[Finding], snapshot: HostSnapshot,
                        networks: Mapping[str, str]) -> list[Action]:
    needed = sorted({name for f in findings if f.desired is not None
                     for name in f.desired.options["networks"]
                     if name in networks and name not in snapshot.networks})
    return [Action(snapshot.host, ActionKind.NETWORK, name, f"driver {networks[name]}",
                   image=networks[name]) for name in needed]


def plan_host(findings: Sequence[Finding], snapshot: HostSnapshot, project: str,
              digests: Mapping[str, str | None], *, prune: bool = True,
              orders: Mapping[str, str] | None = None,
              networks: Mapping[str, str] | None = None) -> HostPlan:
    """`networks`: the project's networks fleet creates (name -> driver)."""
    orders = orders or {}
    pulls: dict[str, Action] = {}
    actions: list[Action] = []
    for finding in findings:
        want, have = finding.desired, finding.observed
        if have is not None and have.project != project:
            continue  # never touch what the project doesn't own (defence in depth)
        if finding.kind in (Kind.MISSING, Kind.IMAGE_CHANGED) or (
            finding.kind == Kind.CONFIG_CHANGED and not only_updatable(finding)
        ):
            assert want is not None
            configured = str(want.options["image"])
            digest = digests.get(configured)
            image = pinned_image(configured, digest)
            if image not in snapshot.images and image not in pulls:
                pulls[image] = Action(snapshot.host, ActionKind.PULL, image,
                                      f"needed by {want.name}", image=image, digest=digest)
            revision = _next_revision(snapshot, project, want.service)
            if finding.kind == Kind.MISSING:
                actions.append(Action(snapshot.host, ActionKind.CREATE, want.name,
                                      "missing", want, image=image, digest=digest,
                                      revision=revision))
            else:
                order = _order(want, orders.get(want.service, "auto"))
                actions.append(Action(snapshot.host, ActionKind.RECREATE, want.name,
                                      f"{finding.kind}: {finding.detail}", want, have,
                                      image=image, digest=digest, revision=revision,
                                      order=order))
            continue
        if finding.kind == Kind.CONFIG_CHANGED and have is not None and want is not None:
            actions.append(Action(snapshot.host, ActionKind.UPDATE, want.name,
                                  f"in place: {finding.detail}", want, have))
            if not have.running:
                actions.append(Action(snapshot.host, ActionKind.START, have.name,
                                      f"container is {have.state}", want, have))
        elif finding.kind == Kind.STOPPED and have is not None:
            actions.append(Action(snapshot.host, ActionKind.START, have.name, finding.detail,
                                  want, have))
        elif finding.kind == Kind.UNHEALTHY and have is not None:
            actions.append(Action(snapshot.host, ActionKind.RESTART, have.name, finding.detail,
                                  want, have))
        elif finding.kind in (Kind.EXTRA, Kind.ORPHAN) and have is not None and prune:
            actions.append(Action(snapshot.host, ActionKind.REMOVE, have.name,
                                  f"{finding.kind}: {finding.detail}", None, have))
        if (want is not None and have is not None and have.name != want.name
                and finding.kind in (Kind.IN_SYNC, Kind.STOPPED, Kind.UNHEALTHY,
                                     Kind.CONFIG_CHANGED)):
            actions.append(Action(snapshot.host, ActionKind.RENAME, have.name,
                                  f"to {want.name} (left by an interrupted run)", want, have))
    # Removals first (they free names and ports), then networks and pulls, then the rest.
    removals = [a for a in actions if a.kind == ActionKind.REMOVE]
    others = [a for a in actions if a.kind != ActionKind.REMOVE]
    creates = [a for a in others if a.kind in (ActionKind.CREATE, ActionKind.RECREATE)]
    ordered = (removals + (_networks_to_create(findings, snapshot, networks or {})
                           if creates else [])
               + sorted(pulls.values(), key=lambda a: a.target) + others)
    return HostPlan(snapshot.host, tuple(findings), tuple(ordered))
