"""A host's plan with its proxy's part (pure): the route changes of proxied services' swaps,
the config a new proxy starts serving with, and the routes a running proxy lacks.

A proxied container takes traffic only once it passed its health gate (a gate step inside
its action, before the route step that is the action's commit), and gives it up before it
stops: the route step takes it out, a drain step lets the requests it has finish.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace

from fleet.core.diff import Finding, Kind
from fleet.core.observed import HostSnapshot, ObservedContainer
from fleet.core.plan import Action, ActionKind, HostPlan, Order, Step, StepKind
from fleet.core.proxy import (
    PROXY_SERVICE,
    HostProxy,
    Route,
    caddy_config,
    route_problems,
    upstream,
)

MAX_SHOWN_PROBLEMS = 3


def serving(container: ObservedContainer) -> bool:
    """A container the proxy should send requests to: running and not unhealthy."""
    return container.state == "running" and container.health in (None, "healthy")


def expected_upstreams(proxy: HostProxy, containers: Iterable[ObservedContainer],
                       project: str) -> dict[str, tuple[str, ...]]:
    """Per route, the containers of its service that serve: what the proxy should dial."""
    found: dict[str, list[str]] = {r.id: [] for r in proxy.routes}
    for container in sorted(containers, key=lambda c: (c.replica or 0, c.name)):
        if container.project != project or not serving(container):
            continue
        for route in proxy.routes_of(container.service or ""):
            found[route.id].append(upstream(container.id, route.container_port))
    return {route_id: tuple(dials) for route_id, dials in found.items()}


def _last_wait(steps: Sequence[Step]) -> int:
    return max(i for i, s in enumerate(steps) if s.kind == StepKind.WAIT_READY)


def _route(target: str, routes: tuple[Route, ...], cause: str, *, shown: str = "",
           replaces: str = "", commit: bool = False, undo: tuple[Step, ...] = ()) -> Step:
    return Step(StepKind.ROUTE, target, cause, shown=shown, routes=routes, replaces=replaces,
                commit=commit, undo=undo)


def _taking_out(action: Action, routes: tuple[Route, ...]) -> list[Step]:
    """The observed container out of the routes (back in if the action fails), then its
    requests drained."""
    have = action.observed
    assert have is not None
    back = _route(have.id, routes, "the previous container serves again", shown=have.name)
    drain = max(r.drain for r in routes)
    return [_route("", routes, "no new requests to it", replaces=have.id, undo=(back,)),
            Step(StepKind.DRAIN, have.id, "its requests in flight finish", shown=have.name,
                 replaces=have.id, timeout=drain)]


def with_routes(action: Action, routes: tuple[Route, ...]) -> Action:
    """A proxied service's action with its route changes."""
    want, have = action.desired, action.observed
    if not routes or (want is not None and want.job):
        return action
    steps = list(action.steps)
    if action.kind in (ActionKind.CREATE, ActionKind.RECREATE):
        at = _last_wait(steps)
        new = steps[at].target
        start_first = action.kind == ActionKind.RECREATE and action.order == Order.START_FIRST
        steps[at] = replace(steps[at], commit=False)
        added = [Step(StepKind.GATE, new, "it takes no traffic unless healthy"),
                 _route(new, routes, "requests go to the new container",
                        replaces=have.id if start_first and have is not None else "",
                        commit=True)]
        if start_first and have is not None:
            added.append(Step(StepKind.DRAIN, have.id, "the old one's requests in flight "
                              "finish", shown=have.name, replaces=have.id,
                              timeout=max(r.drain for r in routes)))
        steps[at + 1:at + 1] = added
        if action.kind == ActionKind.RECREATE and not start_first and have is not None:
            stop = next(i for i, s in enumerate(steps)
                        if s.kind == StepKind.STOP and s.target == have.id)
            steps[stop:stop] = _taking_out(action, routes)
    elif action.kind == ActionKind.REMOVE and have is not None:
        steps[0:0] = _taking_out(action, routes)
    elif action.kind == ActionKind.START and have is not None:
        steps.append(_route(have.id, routes, "it serves again", shown=have.name))
    elif action.kind == ActionKind.RESTART and have is not None:
        steps[0:0] = _taking_out(action, routes)
        steps.append(_route(have.id, routes, "it serves again", shown=have.name))
    return replace(action, steps=tuple(steps))


def _config_text(proxy: HostProxy, snapshot: HostSnapshot, project: str,
                 revision: int) -> str:
    upstreams = expected_upstreams(proxy, snapshot.containers, project)
    return json.dumps(caddy_config(proxy, upstreams, revision), sort_keys=True,
                      separators=(",", ":"))


def with_config(action: Action, proxy: HostProxy, snapshot: HostSnapshot,
                project: str) -> Action:
    """A new proxy container's action: once it runs, it is given the routes (the old one,
    if any, serves until then), and that is the commit."""
    steps = list(action.steps)
    at = _last_wait(steps)
    new = steps[at].target
    steps[at] = replace(steps[at], commit=False)
    steps.insert(at + 1, Step(StepKind.PROXY_LOAD, new, "the routes, before it takes over",
                              revision=action.revision, commit=True,
                              config=_config_text(proxy, snapshot, project, action.revision)))
    return replace(action, steps=tuple(steps))


def route_findings(proxy: HostProxy, snapshot: HostSnapshot, project: str,
                   findings: Sequence[Finding]) -> list[Finding]:
    """What the running proxy routes other than the playbook says (its container otherwise
    in sync: a proxy that is replaced or started gets its routes anyway)."""
    mine = [f for f in findings if f.service == PROXY_SERVICE]
    if not mine or any(f.kind != Kind.IN_SYNC for f in mine) or mine[0].observed is None:
        return []
    have = mine[0].observed
    if snapshot.proxy_error or snapshot.proxy is None:
        why = snapshot.proxy_error or "its routes were not read"
        return [replace(mine[0], kind=Kind.ROUTES_CHANGED, detail=why)]
    problems = route_problems(proxy, snapshot.proxy,
                              expected_upstreams(proxy, snapshot.containers, project))
    if not problems:
        return []
    more = len(problems) - MAX_SHOWN_PROBLEMS
    detail = "; ".join(problems[:MAX_SHOWN_PROBLEMS]) + (f" and {more} more" if more > 0
                                                          else "")
    return [Finding(snapshot.host, PROXY_SERVICE, have.replica, Kind.ROUTES_CHANGED, detail,
                    desired=mine[0].desired, observed=have)]


def routed_plan(host_plan: HostPlan, proxy: HostProxy, snapshot: HostSnapshot,
                project: str) -> HostPlan:
    """The host's plan with its proxy's part."""
    actions: list[Action] = []
    for action in host_plan.actions:
        if action.service == PROXY_SERVICE and action.kind in (ActionKind.CREATE,
                                                               ActionKind.RECREATE):
            action = with_config(action, proxy, snapshot, project)
        elif action.service in proxy.services:
            action = with_routes(action, proxy.routes_of(action.service or ""))
        actions.append(action)
    for finding in host_plan.findings:
        have = finding.observed
        if finding.kind == Kind.ROUTES_CHANGED and have is not None:
            actions.append(Action(
                snapshot.host, ActionKind.ROUTES, have.name, finding.detail, finding.desired,
                have, steps=(Step(StepKind.PROXY_LOAD, have.id, "the playbook's routes",
                                  shown=have.name, revision=have.revision,
                                  config=_config_text(proxy, snapshot, project,
                                                      have.revision)),)))
    return replace(host_plan, actions=tuple(actions))
