"""A pure simulation of a Docker engine for reconciler tests: performs a plan's steps (one
Engine API call each) on a snapshot, the way dockerd would answer them."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from fleet.config.secrets import SecretStore
from fleet.core.files import FilesOnHost
from fleet.core.observed import (
    HostSnapshot,
    ObservedContainer,
    container_from_inspect,
    networks_from_list,
    volumes_from_list,
)
from fleet.core.plan import HostPlan, Step, StepKind
from fleet.core.resources import update_body
from fleet.docker.bodies import create_body, network_body, volume_body

_ids = itertools.count(1)
FILES_ROOT = "/home/fleet/.fleet/shop/files"


def inspect_json(container_id: str, name: str, body: dict[str, Any],
                 state: str = "running") -> dict[str, Any]:
    """What GET /containers/{id}/json answers for a container created with `body`."""
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


def listed_network(sent: dict[str, Any]) -> dict[str, Any]:
    """What GET /networks lists for a network created with `sent` (as dockerd 20.10 does:
    what was given, IPAM "default" and an address pool when none was given)."""
    ipam = sent.get("IPAM") or {}
    return {"Name": sent["Name"], "Driver": sent.get("Driver") or "bridge",
            "Internal": bool(sent.get("Internal")), "Attachable": bool(sent.get("Attachable")),
            "EnableIPv6": bool(sent.get("EnableIPv6")), "Options": sent.get("Options") or {},
            "Labels": sent.get("Labels") or {},
            "IPAM": {"Driver": ipam.get("Driver") or "default", "Options": ipam.get("Options"),
                     "Config": ipam.get("Config") or [{"Subnet": "172.20.0.0/16",
                                                       "Gateway": "172.20.0.1"}]}}


def make_container(name: str, body: dict[str, Any], state: str = "running") -> ObservedContainer:
    return container_from_inspect(inspect_json(f"c{next(_ids)}", name, body, state))


class SimulatedEngine:
    def __init__(self, snapshot: HostSnapshot, secrets: SecretStore,
                 project: str = "shop") -> None:
        self.project = project  # what labels the networks and volumes it makes
        self.containers = {c.id: c for c in snapshot.containers}
        self.images = set(snapshot.images)
        self.networks = dict(snapshot.networks or {})
        self.volumes = dict(snapshot.volumes or {})
        self.secrets = secrets
        self.created: dict[str, str] = {}  # name -> id, as the executor keeps it
        # The project's delivered files (the SFTP side of a host): names in its directory.
        self.files = snapshot.files or FilesOnHost(FILES_ROOT, frozenset())

    def _find(self, ref: str) -> ObservedContainer:
        ref = self.created.get(ref, ref)
        if ref in self.containers:
            return self.containers[ref]
        matches = [c for c in self.containers.values() if c.name == ref]
        assert len(matches) == 1, f"no container {ref}"
        return matches[0]

    def _taken(self, name: str) -> bool:
        return any(c.name == name for c in self.containers.values())

    def perform(self, step: Step) -> None:
        match step.kind:
            case StepKind.PULL:
                self.images.add(step.image)
            case StepKind.NETWORK_CREATE:
                assert step.network_spec is not None
                self.networks.update(networks_from_list(
                    [listed_network(network_body(step.network_spec, self.project))]))
            case StepKind.VOLUME_CREATE:
                assert step.volume_spec is not None
                sent = volume_body(step.volume_spec, self.project)
                self.volumes.update(volumes_from_list({"Volumes": [
                    {"Name": sent["Name"], "Driver": sent["Driver"], "Labels": sent["Labels"],
                     "Options": sent["DriverOpts"]}]}))
            case StepKind.DELIVER:
                assert step.delivered is not None
                self.files = FilesOnHost(self.files.root,
                                         self.files.names | {step.delivered.name})
            case StepKind.CREATE:
                assert step.container is not None
                assert not self._taken(step.target), f"409: name {step.target} is taken"
                body = create_body(step.container, self.secrets, step.digest, step.revision,
                                   self.files.root)
                body["Image"] = step.image
                made = make_container(step.target, body, "created")
                self.containers[made.id] = made
                self.created[step.target] = made.id
            case StepKind.START:
                old = self._find(step.target)
                self.containers[old.id] = replace(old, state="running", health=None)
            case StepKind.STOP:
                old = self._find(step.target)
                self.containers[old.id] = replace(old, state="exited")
            case StepKind.RENAME:
                old = self._find(step.target)
                assert not self._taken(step.name), f"409: name {step.name} is taken"
                self.containers[old.id] = replace(old, name=step.name)
                if step.target in self.created:
                    self.created[step.name] = self.created.pop(step.target)
            case StepKind.REMOVE:
                del self.containers[self._find(step.target).id]
                self.created.pop(step.target, None)
            case StepKind.UPDATE:
                assert step.container is not None
                old = self._find(step.target)
                self.containers[old.id] = replace(
                    old, resources=update_body(step.container.options))
            case StepKind.CONNECT | StepKind.WAIT_READY:
                self._find(step.target)

    def snapshot(self, host: str) -> HostSnapshot:
        return HostSnapshot(host, tuple(self.containers.values()), frozenset(self.images),
                            self.networks, volumes=self.volumes, files=self.files)


def apply_plan(snapshot: HostSnapshot, plan: HostPlan, secrets: SecretStore) -> HostSnapshot:
    engine = SimulatedEngine(snapshot, secrets)
    for action in plan.actions:
        for step in action.steps:
            engine.perform(step)
    return engine.snapshot(snapshot.host)
