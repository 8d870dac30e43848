"""The plan: per host, the actions that turn observed state into desired state, each made of
steps that are one Docker Engine API call each (pure).

An action is one change as `fleet plan` shows it (create, recreate, remove...), with its cause;
its steps are the API calls that make it, in order, each with its own cause. A step may carry
an undo (the calls that put the previous state back if a later step of the action fails) and
may be the action's commit (once done, the new revision stands and nothing is undone). The
executor performs the steps and decides nothing; see fleet.engine.executor.

Order on a host: removals first (they free names and host ports), then networks, volumes,
the files next to the compose file the host lacks, and pulls, then the rest in desired
order. Replacement is start-first unless the container publishes a fixed host port or has a
fixed address (then the old one must let go of it first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from fleet.config.compose_fields import Dependency
from fleet.config.references import pinned_image
from fleet.config.service import UpdatePolicy
from fleet.core.dependencies import after_note, restarted_by
from fleet.core.desired import DesiredContainer
from fleet.core.diff import Finding, Kind, only_updatable
from fleet.core.files import Delivered, delivered_names
from fleet.core.host_resources import (
    NetworkSpec,
    VolumeSpec,
    named_volumes,
    network_order,
    static_addresses,
)
from fleet.core.observed import HostSnapshot, ObservedContainer
from fleet.core.proxy import Route
from fleet.core.pulls import NEVER, ImageIndex
from fleet.text import one_line

DEFAULT_STOP_GRACE = 10  # seconds; Docker's own default
READY = "running, and healthy if it has a healthcheck"
DONE = "a one-shot job: exited with code 0"


class ActionKind(StrEnum):
    PULL = "pull"
    LOAD = "load"  # send an image from the controller: the layers the host lacks
    CREATE = "create"  # create and start
    START = "start"
    RESTART = "restart"
    UPDATE = "update"  # in place: resource limits, restart policy
    RECREATE = "recreate"
    RENAME = "rename"
    REMOVE = "remove"  # stop and remove
    NETWORK = "network"  # create a network of the project
    VOLUME = "volume"  # create a named volume of the project
    DELIVER = "deliver"  # write a file next to the compose file to the host (fleet.core.files)
    ROUTES = "routes"  # give the host's proxy the routes it lacks (fleet.core.proxy)


class StepKind(StrEnum):
    PULL = "pull"
    LOAD = "load"  # POST /images/load of what the host lacks (fleet.engine.delivery)
    NETWORK_CREATE = "network-create"
    VOLUME_CREATE = "volume-create"
    DELIVER = "deliver"  # over SFTP, not the Engine API: a file or tree written whole
    CREATE = "create"
    CONNECT = "connect"
    START = "start"
    WAIT_READY = "wait-ready"  # polls the container's state: not one call
    WAIT_EXIT = "wait-exit"  # a job's readiness: polls until it exited with code 0
    STOP = "stop"
    RENAME = "rename"
    REMOVE = "remove"
    UPDATE = "update"
    # The host's proxy (fleet.core.proxy_plan): its admin API, not the Engine API.
    GATE = "gate"  # the service's health gate, before the container takes traffic
    ROUTE = "route"  # the proxy sends the service's requests to this container, not that one
    DRAIN = "drain"  # the requests in flight on the container taken out finish
    PROXY_LOAD = "proxy-load"  # a proxy's whole config (its routes and their upstreams)


class Order(StrEnum):
    START_FIRST = "start-first"
    STOP_FIRST = "stop-first"


def short_id(image_id: str | None) -> str:
    """An image ID as `docker images` shows it: 12 hex digits."""
    return (image_id or "").removeprefix("sha256:")[:12]


def short_image(image: str) -> str:
    """`name@sha256:` and 12 hex digits: enough to tell digests apart in a plan."""
    if "@sha256:" in image:
        return image[: image.index("@sha256:") + len("@sha256:") + 12]
    return image


@dataclass(frozen=True)
class Step:
    """One Docker Engine API call. `target` is what the call addresses: a container's id (or,
    for a container this action creates, its name), an image, or a network."""

    kind: StepKind
    target: str
    cause: str
    shown: str = ""  # a container's name, when `target` is its id
    container: DesiredContainer | None = None  # create, connect (aliases), update (limits)
    image: str = ""  # pull, create: the pinned reference
    digest: str | None = None
    revision: int = 0
    name: str = ""  # rename: the new name
    network: str = ""  # connect: the network
    network_spec: NetworkSpec | None = None  # network-create
    volume_spec: VolumeSpec | None = None  # volume-create
    delivered: Delivered | None = None  # deliver
    platform: str = ""  # pull, create: Compose's `platform` (os/arch), when set
    timeout: float | None = None  # stop: grace seconds; wait-ready: seconds
    tolerate: frozenset[int] = frozenset()  # statuses that mean "already so"
    routes: tuple[Route, ...] = ()  # route: the service's routes on the host's proxy
    replaces: str = ""  # route: the container (id) taken out of them; `target` goes in
    config: str = ""  # proxy-load: the config, as JSON
    undo: tuple[Step, ...] = ()
    commit: bool = False

    def what(self) -> str:
        container = self.shown or self.target
        if self.shown and self.shown != self.target:  # an id: 64 hex digits from Docker
            short = self.target[:12] if len(self.target) == 64 else self.target
            container = f"{self.shown} [{short}]"
        match self.kind:
            case StepKind.PULL:
                return f"pull {short_image(self.image)}"
            case StepKind.LOAD:
                return f"load {self.image} ({short_id(self.digest)}) from the controller"
            case StepKind.NETWORK_CREATE:
                assert self.network_spec is not None
                return f"network-create {self.target} ({self.network_spec.summary()})"
            case StepKind.VOLUME_CREATE:
                assert self.volume_spec is not None
                return f"volume-create {self.target} ({self.volume_spec.summary()})"
            case StepKind.DELIVER:
                assert self.delivered is not None
                return f"deliver {self.delivered.summary()}"
            case StepKind.CREATE:
                return (f"create {self.target} from {short_image(self.image)}, "
                        f"revision {self.revision}")
            case StepKind.CONNECT:
                return f"connect {container} to {self.network}"
            case StepKind.WAIT_READY | StepKind.WAIT_EXIT:
                return f"{self.kind} {container} (up to {self.timeout:g}s)"
            case StepKind.STOP:
                return f"stop {container} (grace {self.timeout:g}s)"
            case StepKind.RENAME:
                return f"rename {container} -> {self.name}"
            case StepKind.GATE:
                return f"gate {container} (health, then monitor)"
            case StepKind.ROUTE:
                ports = ", ".join(f":{r.port}" for r in self.routes)
                moves = [f"{container} in" if self.target else "",
                         f"{self.replaces[:12]} out" if self.replaces else ""]
                return f"route {ports}: {', '.join(m for m in moves if m)}"
            case StepKind.DRAIN:
                return f"drain {self.replaces[:12] or container} ({self.timeout:g}s)"
            case StepKind.PROXY_LOAD:
                return f"proxy-load {container}: its routes"
            case _:
                return f"{self.kind} {container}"

    def text(self) -> str:
        undo = f" [undo: {'; '.join(u.what() for u in self.undo)}]" if self.undo else ""
        commit = " [commit]" if self.commit else ""
        return one_line(f"{self.what()}: {self.cause}{commit}{undo}")


@dataclass(frozen=True)
class Action:
    host: str
    kind: ActionKind
    target: str  # container name, image for pulls, network name
    cause: str
    desired: DesiredContainer | None = None
    observed: ObservedContainer | None = None
    image: str = ""  # the pinned reference created from / pulled
    digest: str | None = None
    revision: int = 0
    order: Order | None = None
    steps: tuple[Step, ...] = ()

    @property
    def service(self) -> str | None:
        if self.desired is not None:
            return self.desired.service
        return self.observed.service if self.observed is not None else None

    def heading(self) -> str:
        order = f" ({self.order})" if self.order else ""
        target = short_image(self.target) if self.kind == ActionKind.PULL else self.target
        if self.kind == ActionKind.LOAD:
            target = f"{self.target} ({short_id(self.digest)}) from the controller"
        delivered = self.steps[0].delivered if self.steps else None
        if delivered is not None:  # its name is a digest: say what it is
            target = delivered.summary()
        return one_line(f"{self.kind} {target}{order}: {self.cause}")

    def text(self) -> str:
        """The heading, then every step on its own line (one step: the heading says it)."""
        if len(self.steps) <= 1:
            return self.heading()
        return "\n".join([self.heading(),
                          *(f"  {n}. {s.text()}" for n, s in enumerate(self.steps, 1))])


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

    def text(self) -> str:
        """The host's actions and blocked services ("" when there are none)."""
        if not self.actions and not self.blocked:
            return ""
        lines = [f"{one_line(self.host)}:"]
        for action in self.actions:
            lines += [f"  {line}" for line in action.text().splitlines()]
        lines += [one_line(f"  blocked {f.desired.name if f.desired else f.service}: {f.detail}")
                  for f in self.blocked]
        return "\n".join(lines)


@dataclass(frozen=True)
class Plan:
    project: str
    hosts: tuple[HostPlan, ...]
    unreachable: Mapping[str, str] = field(default_factory=dict)
    # The services in the order they roll out, when some wait for others (depends_on...);
    # empty otherwise (playbook order).
    order: tuple[str, ...] = ()

    @property
    def actions(self) -> list[Action]:
        return [a for h in self.hosts for a in h.actions]

    @property
    def has_changes(self) -> bool:
        return bool(self.actions) or any(h.blocked for h in self.hosts)

    def text(self) -> str:
        hosts = [h.text() for h in self.hosts if h.actions or h.blocked]
        if hosts and self.order:
            hosts.insert(0, one_line(f"rollout order: {', '.join(self.order)}"))
        return "\n".join(hosts)


# -- the steps of each kind of action --------------------------------------------------------


def stop_grace(observed: ObservedContainer | None, desired: DesiredContainer | None) -> int:
    """The grace period of the container being stopped: its own recorded spec's."""
    recorded = observed.spec if observed is not None else None
    options = recorded or (desired.options if desired is not None else {})
    grace = options.get("stop_grace_period")
    return int(grace) if isinstance(grace, int | float) else DEFAULT_STOP_GRACE


def _on(kind: StepKind, observed: ObservedContainer, cause: str, **fields: Any) -> Step:
    """A step on an observed container: addressed by its id, shown by its name."""
    return Step(kind, observed.id, cause, shown=observed.name, **fields)


def _stop(container: ObservedContainer, cause: str, desired: DesiredContainer | None = None,
          undo: tuple[Step, ...] = ()) -> Step:
    return _on(StepKind.STOP, container, cause, timeout=stop_grace(container, desired),
               undo=undo)


def _remove(container: ObservedContainer, cause: str) -> Step:
    return _on(StepKind.REMOVE, container, cause)


def _readiness(want: DesiredContainer | None) -> tuple[StepKind, str]:
    """How a container counts as up: ready (running, healthy), or, for a job, done."""
    return (StepKind.WAIT_EXIT, DONE) if want is not None and want.job else (
        StepKind.WAIT_READY, READY)


def _bring_up(want: DesiredContainer, name: str, image: str, digest: str | None,
              revision: int, timeout: float, *, commit: bool) -> list[Step]:
    """Create `name`, attach its other networks, start it, wait until it is ready. If a later
    step fails, the container made here is removed (by the id its create returned)."""
    created = Step(StepKind.CREATE, name, "the new container",
                   container=want, image=image, digest=digest, revision=revision,
                   undo=(Step(StepKind.REMOVE, name, "discard the new container"),))
    networks = network_order(want.options["networks"])[1:]
    wait, ready = _readiness(want)
    return [created,
            *(Step(StepKind.CONNECT, name, "one network at create; the others now",
                   container=want, network=network) for network in networks),
            Step(StepKind.START, name, "start the new container"),
            Step(wait, name, ready, timeout=timeout, commit=commit)]


def pull_action(host: str, image: str, digest: str | None, needed_by: str,
                platform: str = "") -> Action:
    cause = f"needed by {needed_by}" + (f" ({platform})" if platform else "")
    return Action(host, ActionKind.PULL, image, cause, image=image, digest=digest,
                  steps=(Step(StepKind.PULL, image, cause, image=image, digest=digest,
                              platform=platform),))


def load_action(host: str, image: str, image_id: str, needed_by: str) -> Action:
    """Send `image` (as configured: its tag) from the controller; the host names it by ID."""
    cause = f"needed by {needed_by}"
    return Action(host, ActionKind.LOAD, image, cause, image=image, digest=image_id,
                  steps=(Step(StepKind.LOAD, image, cause, image=image, digest=image_id),))


def network_action(host: str, spec: NetworkSpec) -> Action:
    step = Step(StepKind.NETWORK_CREATE, spec.name, "a network of the project",
                network_spec=spec,
                tolerate=frozenset({409}))  # created meanwhile by another run: fine
    return Action(host, ActionKind.NETWORK, spec.name, spec.summary(), steps=(step,))


def volume_action(host: str, spec: VolumeSpec) -> Action:
    """The Engine answers a name already taken with the volume that has it (the executor
    checks that it is this project's), so nothing is tolerated: its 409 means a volume of
    another driver holds the name, which must not be mounted as this one."""
    step = Step(StepKind.VOLUME_CREATE, spec.name, "a volume of the project", volume_spec=spec)
    return Action(host, ActionKind.VOLUME, spec.name, spec.summary(), steps=(step,))


def deliver_action(host: str, unit: Delivered, needed_by: Sequence[str]) -> Action:
    shown = ", ".join(needed_by[:3]) + (f" and {len(needed_by) - 3} more"
                                        if len(needed_by) > 3 else "")
    cause = f"needed by {shown}"
    return Action(host, ActionKind.DELIVER, unit.name, cause,
                  steps=(Step(StepKind.DELIVER, unit.name, cause, delivered=unit),))


def create_action(host: str, want: DesiredContainer, image: str, digest: str | None,
                  revision: int, cause: str, timeout: float) -> Action:
    steps = _bring_up(want, want.name, image, digest, revision, timeout, commit=True)
    return Action(host, ActionKind.CREATE, want.name, cause, want, image=image, digest=digest,
                  revision=revision, steps=tuple(steps))


def recreate_action(host: str, want: DesiredContainer, have: ObservedContainer, image: str,
                    digest: str | None, revision: int, order: Order, cause: str,
                    timeout: float, taken: frozenset[str] = frozenset()) -> Action:
    """Replace `have` by revision `revision` of `want`.

    start-first: the new container comes up under a temporary name beside the old one; once
    it is ready (the commit) the old one stops and goes, and the new one takes the name.
    stop-first: the old one is moved aside (it keeps its id) and stopped, so that it can come
    back if the new one fails; once the new one is ready, the old one is removed. The
    temporary names avoid `taken` (every name on the host)."""
    steps: list[Step] = []
    if order == Order.START_FIRST:
        temp = free_name(f"{want.name}--r{revision}", taken)
        steps += _bring_up(want, temp, image, digest, revision, timeout, commit=True)
        steps += [_stop(have, "replaced by the new container", want),
                  _remove(have, "replaced by the new container"),
                  Step(StepKind.RENAME, temp, "the new container takes the name",
                       name=want.name)]
    else:
        aside = f"{want.name}--r{have.revision}-old"
        if have.name != aside:
            aside = free_name(aside, taken)
        back = Step(StepKind.RENAME, have.id, "restore the previous container",
                    shown=aside, name=want.name)
        restart = Step(StepKind.START, have.id, "restore the previous container",
                       shown=aside)
        if have.name != aside:
            steps.append(Step(StepKind.RENAME, have.id, "set aside, so it can come back",
                              shown=have.name, name=aside, undo=(back,)))
            stop_undo: tuple[Step, ...] = (restart,)
        else:  # set aside by an interrupted run already
            stop_undo = (restart, back)
        steps.append(Step(StepKind.STOP, have.id, _what_it_frees(want),
                          shown=aside, timeout=stop_grace(have, want), undo=stop_undo))
        steps += _bring_up(want, want.name, image, digest, revision, timeout, commit=True)
        steps.append(Step(StepKind.REMOVE, have.id, "replaced by the new container",
                          shown=aside))
    return Action(host, ActionKind.RECREATE, want.name, cause, want, have, image=image,
                  digest=digest, revision=revision, order=order, steps=tuple(steps))


def _what_it_frees(want: DesiredContainer) -> str:
    held = [what for what, holds in (
        ("host port(s)", any(p["published"] for p in want.options["ports"])),
        ("address(es)", bool(static_addresses(want.options)))) if holds]
    return f"free its {', '.join(held)} and name" if held else "free its name"


def start_action(host: str, have: ObservedContainer, want: DesiredContainer | None,
                 cause: str, timeout: float) -> Action:
    wait, ready = _readiness(want)
    steps = (_on(StepKind.START, have, cause), _on(wait, have, ready, timeout=timeout))
    return Action(host, ActionKind.START, have.name, cause, want, have, steps=steps)


def restart_action(host: str, have: ObservedContainer, want: DesiredContainer | None,
                   cause: str, timeout: float) -> Action:
    wait, ready = _readiness(want)
    steps = (_stop(have, cause, want),
             _on(StepKind.START, have, cause),
             _on(wait, have, ready, timeout=timeout))
    return Action(host, ActionKind.RESTART, have.name, cause, want, have, steps=steps)


def update_action(host: str, want: DesiredContainer, have: ObservedContainer,
                  cause: str) -> Action:
    step = _on(StepKind.UPDATE, have, "resource limits and restart policy", container=want)
    return Action(host, ActionKind.UPDATE, want.name, cause, want, have, steps=(step,))


def rename_action(host: str, have: ObservedContainer, want: DesiredContainer,
                  cause: str) -> Action:
    step = _on(StepKind.RENAME, have, cause, name=want.name)
    return Action(host, ActionKind.RENAME, have.name, cause, want, have, steps=(step,))


def remove_action(host: str, have: ObservedContainer, cause: str) -> Action:
    steps = (_stop(have, cause), _remove(have, cause))
    return Action(host, ActionKind.REMOVE, have.name, cause, None, have, steps=steps)


# -- planning a host ------------------------------------------------------------------------


def replacement_order(desired: DesiredContainer, policy: str) -> Order:
    if policy == "stop-first":
        return Order.STOP_FIRST
    if policy == "start-first":
        return Order.START_FIRST
    # A fixed host port or a fixed address can be held by one container at a time.
    fixed = any(p["published"] for p in desired.options["ports"]) or bool(
        static_addresses(desired.options))
    return Order.STOP_FIRST if fixed else Order.START_FIRST


def next_revision(snapshot: HostSnapshot, project: str, service: str) -> int:
    revisions = [c.revision for c in snapshot.of_project(project) if c.service == service]
    return max([*revisions, snapshot.last_revisions.get(service, 0)]) + 1


def _resources_to_create(creates: Sequence[Action], snapshot: HostSnapshot,
                         networks: Mapping[str, NetworkSpec],
                         volumes: Mapping[str, VolumeSpec]) -> list[Action]:
    """The project's networks and volumes that the containers made here need and the host
    lacks (external ones are never made: the diff blocks what needs a missing one)."""
    wanted = [a.desired.options for a in creates if a.desired is not None]
    have_networks = snapshot.networks or {}
    have_volumes = snapshot.volumes or {}
    new_networks = sorted({name for options in wanted for name in options["networks"]
                           if name in networks and not networks[name].external
                           and name not in have_networks})
    new_volumes = sorted({name for options in wanted for name in named_volumes(options)
                          if name in volumes and not volumes[name].external
                          and name not in have_volumes})
    return ([network_action(snapshot.host, networks[name]) for name in new_networks]
            + [volume_action(snapshot.host, volumes[name]) for name in new_volumes])


def _deliveries(findings: Sequence[Finding], snapshot: HostSnapshot,
                files: Mapping[str, Delivered]) -> tuple[list[Action], dict[int, Finding]]:
    """The units the host's desired containers mount and the host lacks (unknown when its
    files were not looked at: all of them); and, by index in `findings`, the findings blocked
    by a unit that is neither on the host nor in the playbook (a rollback to a revision whose
    file is gone)."""
    present = snapshot.files.names if snapshot.files is not None else frozenset()
    needed: dict[str, list[str]] = {}
    blocked: dict[int, Finding] = {}
    for number, finding in enumerate(findings):
        want = finding.desired
        if want is None or finding.kind == Kind.CONFLICT:
            continue
        missing = sorted(delivered_names(want.options) - present)
        gone = [name for name in missing if name not in files]
        if gone:
            blocked[number] = replace(finding, kind=Kind.CONFLICT, detail=(
                f"it mounts a delivered file that is no longer on this host, and the "
                f"playbook does not have it (fleet-file:{gone[0][:12]}…)"))
            continue
        for name in missing:
            needed.setdefault(name, []).append(want.name)
    return ([deliver_action(snapshot.host, files[name], needed[name])
             for name in sorted(needed, key=lambda n: (files[n].what, n))], blocked)


def free_name(name: str, taken: frozenset[str]) -> str:
    """`name`, or `name-2`, `name-3`... if a container on the host holds it (one left by
    an interrupted run, say: it is removed as extra, unless --no-prune keeps it)."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


BRINGS_UP = (ActionKind.CREATE, ActionKind.RECREATE, ActionKind.START, ActionKind.RESTART)


def _with_dependencies(actions: list[Action], findings: Sequence[Finding], host: str,
                       waits: Mapping[str, Mapping[str, Dependency]],
                       policies: Mapping[str, UpdatePolicy]) -> list[Action]:
    """What depends_on adds on a host (fleet.core.dependencies): a restart of the running
    containers of a service whose dependency with `restart: true` is replaced or restarted
    here, and, in the cause of what brings a container up, what it waits for first."""
    if not any(waits.values()):
        return actions
    here = {f.desired.service for f in findings if f.desired is not None}
    replaced = {a.service for a in actions if a.kind in (ActionKind.RECREATE,
                                                         ActionKind.RESTART)}
    coming_up = {(a.desired.service, a.desired.replica) for a in actions
                 if a.kind in BRINGS_UP and a.desired is not None}
    triggers: dict[int, list[str]] = {}  # index in findings -> the dependencies replaced
    for dependency, dependents in restarted_by(waits).items():
        if dependency not in replaced:
            continue
        for number, finding in enumerate(findings):
            want, have = finding.desired, finding.observed
            if (want is not None and have is not None and want.service in dependents
                    and have.running and finding.kind != Kind.CONFLICT
                    and (want.service, want.replica) not in coming_up):
                triggers.setdefault(number, []).append(dependency)
    restarts = []
    for number, dependencies in sorted(triggers.items()):
        want, have = findings[number].desired, findings[number].observed
        assert want is not None and have is not None
        policy = policies.get(want.service) or UpdatePolicy()
        cause = (f"{', '.join(dependencies)} {'is' if len(dependencies) == 1 else 'are'} "
                 "replaced on this host (depends_on with restart: true)")
        restarts.append(restart_action(host, have, want, cause, policy.timeout))
    noted = []
    for action in [*actions, *restarts]:
        note = after_note(action.desired.service, waits, here) if (
            action.kind in BRINGS_UP and action.desired is not None) else ""
        noted.append(replace(action, cause=f"{action.cause}; {note}") if note else action)
    return noted


def plan_host(findings: Sequence[Finding], snapshot: HostSnapshot, project: str,
              digests: Mapping[str, str | None], *, prune: bool = True,
              policies: Mapping[str, UpdatePolicy] | None = None,
              networks: Mapping[str, NetworkSpec] | None = None,
              volumes: Mapping[str, VolumeSpec] | None = None,
              pull_policies: Mapping[str, str] | None = None,
              files: Mapping[str, Delivered] | None = None,
              waits: Mapping[str, Mapping[str, Dependency]] | None = None) -> HostPlan:
    """`policies`: each service's update policy (order, timeout); `networks` and `volumes`:
    the project's, by their names on the hosts; `pull_policies`: each service's `pull_policy`
    (fleet.core.pulls; default always); `files`: the units the playbook gives this host, by
    name (DesiredState.files); `waits`: per service, what it waits for
    (fleet.core.dependencies)."""
    policies = policies or {}
    pull_policies = pull_policies or {}
    host = snapshot.host
    images = ImageIndex(snapshot.images)
    pulls: dict[tuple[str, str], Action] = {}
    actions: list[Action] = []
    deliveries, held = _deliveries(findings, snapshot, files or {})
    # held: index in findings -> the finding as blocked
    removed = {f.observed.id for f in findings if prune and f.observed is not None
               and f.kind in (Kind.EXTRA, Kind.ORPHAN)}
    taken = frozenset(c.name for c in snapshot.containers if c.id not in removed)
    for number, finding in enumerate(findings):
        want, have = finding.desired, finding.observed
        if have is not None and have.project != project:
            continue  # never touch what the project doesn't own (defence in depth)
        if number in held:
            continue
        policy = policies.get(want.service if want else finding.service) or UpdatePolicy()
        if finding.kind in (Kind.MISSING, Kind.IMAGE_CHANGED) or (
            finding.kind == Kind.CONFIG_CHANGED and not only_updatable(finding)
        ):
            assert want is not None
            configured = str(want.options["image"])
            digest = digests.get(configured)
            delivered = want.image_source == "controller"
            image = pinned_image(configured, digest, by_id=delivered)
            platform = str(want.options.get("platform") or "")
            if delivered:
                if digest is None:  # the run reads every delivered image first, or stops
                    held[number] = replace(finding, kind=Kind.CONFLICT, detail=(
                        f"image {configured} was not read on the controller"))
                    continue
                if not images.has(digest) and (digest, "") not in pulls:
                    pulls[(digest, "")] = load_action(host, configured, digest, want.name)
            elif not images.has(image):
                if pull_policies.get(want.service) == NEVER:
                    held[number] = replace(finding, kind=Kind.CONFLICT, detail=(
                        f"pull_policy: never, and image {configured} is not on this host"))
                    continue
                if (image, platform) not in pulls:
                    pulls[(image, platform)] = pull_action(host, image, digest, want.name,
                                                           platform)
            revision = next_revision(snapshot, project, want.service)
            if finding.kind == Kind.MISSING or have is None:
                actions.append(create_action(host, want, image, digest, revision, "missing",
                                             policy.timeout))
            else:
                actions.append(recreate_action(
                    host, want, have, image, digest, revision,
                    replacement_order(want, policy.order), f"{finding.kind}: {finding.detail}",
                    policy.timeout, taken))
            continue
        if finding.kind == Kind.CONFIG_CHANGED and have is not None and want is not None:
            actions.append(update_action(host, want, have, f"in place: {finding.detail}"))
            if not have.running:
                actions.append(start_action(host, have, want, f"container is {have.state}",
                                            policy.timeout))
        elif finding.kind == Kind.STOPPED and have is not None:
            actions.append(start_action(host, have, want, finding.detail, policy.timeout))
        elif finding.kind == Kind.UNHEALTHY and have is not None:
            actions.append(restart_action(host, have, want, finding.detail, policy.timeout))
        elif finding.kind in (Kind.EXTRA, Kind.ORPHAN) and have is not None and prune:
            actions.append(remove_action(host, have, f"{finding.kind}: {finding.detail}"))
        if (want is not None and have is not None and have.name != want.name
                and finding.kind in (Kind.IN_SYNC, Kind.STOPPED, Kind.UNHEALTHY,
                                     Kind.CONFIG_CHANGED)):
            actions.append(rename_action(host, have, want,
                                         f"to {want.name} (left by an interrupted run)"))
    removals = [a for a in actions if a.kind == ActionKind.REMOVE]
    others = [a for a in actions if a.kind != ActionKind.REMOVE]
    creates = [a for a in others if a.kind in (ActionKind.CREATE, ActionKind.RECREATE)]
    ordered = (removals + _resources_to_create(creates, snapshot, networks or {}, volumes or {})
               + deliveries
               + sorted(pulls.values(), key=lambda a: (a.target, a.steps[0].platform)) + others)
    ordered = _with_dependencies(ordered, findings, host, waits or {}, policies)
    shown = tuple(held.get(number, finding) for number, finding in enumerate(findings))
    return HostPlan(host, shown, tuple(ordered))
