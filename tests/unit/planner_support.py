"""A project matching the containers recorded from a real dockerd (tests/fixtures/docker), and
observed states made from those recordings: real Docker answers, with only fleet's own
labels set for the desired revision (labels are fleet's data; everything else is dockerd's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docker_fixtures import body

from fleet.config.project import ProjectFiles, read_project
from fleet.core import labels
from fleet.core.desired import DesiredContainer, DesiredState, desired_state
from fleet.core.diff import DiffContext, diff_host
from fleet.core.observed import (
    HostSnapshot,
    ObservedContainer,
    ObservedNetwork,
    container_from_inspect,
)
from fleet.core.plan import HostPlan, plan_host
from fleet.core.resource_drift import HostResources

HOST = "h1"
REGISTRY = "198.18.6.1:5000"
WEB_V1 = f"{REGISTRY}/demo/web:v1"
WEB_V3 = f"{REGISTRY}/demo/web:v3"
DIGEST_MOVED = "sha256:" + "2" * 64

HEADER = """
project: shop
inventory: inv.yml
networks:
  default: {}
  backend: {}
services:
"""
SERVICES = {
    "web": f"""
  web:
    image: {WEB_V1}
    ports: ["8080:8080"]
    environment: {{APP_MODE: production, LOG_LEVEL: info}}
    mem_limit: 64m
    cpus: 0.5
    restart: on-failure:3
    networks: [default, backend]
    healthcheck:
      test: [CMD, wget, -q, -O-, "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 1s
      retries: 2
""",
    "job": f"\n  job:\n    image: {WEB_V1}\n",
    "cron": f"\n  cron:\n    image: {WEB_V1}\n",
    "canary": f"\n  canary:\n    image: {WEB_V3}\n    environment: {{APP_MODE: canary}}\n",
}


def playbook(*services: str) -> str:
    return HEADER + "".join(SERVICES[name] for name in services)


def project(tmp_path: Path, *services: str) -> DesiredState:
    """The project with these services (each as the recorded container of its name)."""
    (tmp_path / "inv.yml").write_text(f"hosts:\n  {HOST}: {{address: 198.18.9.1}}\n")
    (tmp_path / "pb.yml").write_text(playbook(*services))
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))


def digest_of(image: str) -> str:
    """The digest each recorded container was made from (its fleet.image-digest label)."""
    fixture = {WEB_V1: "inspect_running_healthy", WEB_V3: "inspect_unhealthy"}[image]
    return str(body(fixture)["Config"]["Labels"][labels.IMAGE_DIGEST])


def digests() -> dict[str, str | None]:
    return {WEB_V1: digest_of(WEB_V1), WEB_V3: digest_of(WEB_V3)}


def desired(state: DesiredState, service: str, replica: int = 1) -> DesiredContainer:
    return next(c for c in state.containers[HOST]
                if c.service == service and c.replica == replica)


def recorded(fixture: str, state: DesiredState, service: str | None = None, *,
             revision: int = 1, change: dict[str, Any] | None = None) -> ObservedContainer:
    """The recorded container `fixture`, labelled as revision `revision` of `service`'s
    desired container (None: as recorded), with `change` merged into its inspect answer."""
    data = body(fixture)
    if service is not None:
        want = desired(state, service)
        digest = data["Config"]["Labels"][labels.IMAGE_DIGEST]
        data["Config"]["Labels"] = labels.fleet_labels(want, state.secrets, digest, revision)
    for key, value in (change or {}).items():
        section, _, field = key.partition(".")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return container_from_inspect(data)


def project_network(name: str, project: str = "shop") -> ObservedNetwork:
    """A network as fleet creates it for `project` with no settings declared."""
    return ObservedNetwork(name, "bridge", {labels.PROJECT: project}, ipam_driver="default")


def snapshot(*containers: ObservedContainer,
             networks: tuple[str | ObservedNetwork, ...] | None = None,
             images: tuple[str, ...] = (), last: dict[str, int] | None = None,
             **more: Any) -> HostSnapshot:
    """A host with these containers, images and networks (names: the project's, as fleet
    made them; None: not read); `more`: volumes, api_version."""
    found = None if networks is None else {
        n.name: n for n in (project_network(n) if isinstance(n, str) else n for n in networks)}
    return HostSnapshot(HOST, containers, frozenset(images), found, last or {}, **more)


def plan_of(state: DesiredState, observed: HostSnapshot, *, prune: bool = True,
            moved: dict[str, str | None] | None = None) -> HostPlan:
    pins = {**digests(), **(moved or {})}
    context = DiffContext(state.project, frozenset(state.services), state.secrets, pins,
                          HostResources(state.project, state.networks, state.volumes))
    findings = diff_host(state.containers[HOST], observed, context)
    policies = {name: s.update for name, s in state.services.items()}
    return plan_host(findings, observed, state.project, pins, prune=prune, policies=policies,
                     networks=state.networks, volumes=state.volumes)
