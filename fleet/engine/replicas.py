"""A service's containers on one host, as `fleet logs` and `fleet exec` find them."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.core import labels
from fleet.core.answers import AnswerShapeError
from fleet.core.observed import containers_from_list
from fleet.docker.client import DockerClient
from fleet.errors import HostAnswerError

MAX_REPLICAS = 1000  # no real host runs more of one service; each costs an inspect or stream


@dataclass(frozen=True)
class Replica:
    host: str
    service: str
    replica: int
    id: str
    name: str
    state: str

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def label(self) -> str:
        return f"{self.service}/{self.replica}"


async def service_replicas(host: str, docker: DockerClient, project: str,
                           service: str) -> list[Replica]:
    """Every container fleet made for `service` of `project` on the host, running or not,
    by replica number (an old one a start-first swap keeps beside the new one is listed
    too, so a followed log sees both)."""
    answer = await docker.list_containers(
        all=True, labels={labels.PROJECT: project, labels.SERVICE: service})
    try:
        listed = containers_from_list(answer)
    except AnswerShapeError as exc:
        raise HostAnswerError(host, f"Docker listed containers unusably: {exc}") from None
    if len(listed) > MAX_REPLICAS:
        raise HostAnswerError(host, f"Docker listed {len(listed)} containers of {service}, "
                                    f"more than {MAX_REPLICAS}")
    replicas = [Replica(host, service, c.replica or 0, c.id, c.name, c.state) for c in listed
                if c.project == project and c.service == service]
    return sorted(replicas, key=lambda r: (r.replica, r.name))
