"""A pure simulation of the executor for reconciler tests: applies a plan to a snapshot."""

from __future__ import annotations

import itertools
from typing import Any

from fleet.config.secrets import SecretStore
from fleet.engine_spec import create_body, update_body
from fleet.observed import HostSnapshot, ObservedContainer, container_from_inspect
from fleet.plan import ActionKind, HostPlan

_ids = itertools.count(1)


def inspect_json(container_id: str, name: str, body: dict[str, Any],
                 state: str = "running") -> dict[str, Any]:
    host_config = body.get("HostConfig", {})
    return {
        "Id": container_id,
        "Name": f"/{name}",
        "Config": {"Image": body["Image"], "Env": body.get("Env", []),
                   "Labels": body.get("Labels", {})},
        "State": {"Status": state, "StartedAt": "2026-11-28T06:00:00.000000000Z"},
        "HostConfig": host_config,
        "Created": "2026-11-28T06:00:00Z",
    }


def make_container(name: str, body: dict[str, Any], state: str = "running") -> ObservedContainer:
    return container_from_inspect(inspect_json(f"c{next(_ids)}", name, body, state))


def apply_plan(snapshot: HostSnapshot, plan: HostPlan, secrets: SecretStore) -> HostSnapshot:
    containers = {c.id: c for c in snapshot.containers}
    images = set(snapshot.images)
    for action in plan.actions:
        if action.kind == ActionKind.PULL:
            images.add(action.image)
            continue
        if action.kind in (ActionKind.CREATE, ActionKind.RECREATE):
            assert action.desired is not None
            if action.observed is not None:
                del containers[action.observed.id]
            body = create_body(action.desired, secrets, action.digest, action.revision)
            body["Image"] = action.image
            new = make_container(action.target, body)
            containers[new.id] = new
            continue
        assert action.observed is not None
        old = containers[action.observed.id]
        if action.kind == ActionKind.REMOVE:
            del containers[old.id]
        elif action.kind in (ActionKind.START, ActionKind.RESTART):
            containers[old.id] = _replace(old, state="running", health=None)
        elif action.kind == ActionKind.UPDATE:
            assert action.desired is not None
            containers[old.id] = _replace(old, resources=update_body(action.desired.options))
        elif action.kind == ActionKind.RENAME:
            assert action.desired is not None
            containers[old.id] = _replace(old, name=action.desired.name)
    return HostSnapshot(snapshot.host, tuple(containers.values()), frozenset(images))


def _replace(container: ObservedContainer, **changes: Any) -> ObservedContainer:
    from dataclasses import replace

    return replace(container, **changes)
