"""One simulated Docker daemon: containers, images, networks and volumes held in memory.

No process runs. A container's life is computed from the clock when it is asked about, so a
thousand hosts cost no timers:

- started, it runs until stopped, unless its environment says otherwise:
  `FLEET_SIM_EXIT=CODE` exits with CODE `FLEET_SIM_EXIT_AFTER` seconds (default 0.2) after
  each start (then, under a restart policy that restarts it, it is `restarting` with a growing
  RestartCount, as a crash loop is);
- with a health check (its own or its image's), it is `starting` for the daemon's health
  delay, then `healthy` — or `unhealthy` when its environment has `FLEET_SIM_UNHEALTHY=1` or
  its image carries the label `org.fleet.lab.health=fail` (the lab's broken demo/web:v3).

Errors carry the status and the words dockerd uses, so fleet's handling is exercised as is.
"""

from __future__ import annotations

import ipaddress
import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleet.lab.simulator.registry import ResolvedImage

JSON = dict[str, Any]
Clock = Callable[[], float]
UNHEALTHY_LABEL = "org.fleet.lab.health"
DEFAULT_EXIT_AFTER = 0.2
RESTARTING_POLICIES = ("always", "unless-stopped", "on-failure")


class EngineError(Exception):
    """A request the daemon refuses: `status` and dockerd's own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Latencies:
    """How long the simulated daemon takes where a real one waits on the world."""

    pull: float = 0.5  # seconds to pull an image the host lacks
    health: float = 1.0  # seconds a container with a health check is `starting`
    api: float = 0.0  # added to every API call


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class Image:
    resolved: ResolvedImage
    tags: set[str] = field(default_factory=set)
    pulled_at: float = 0.0

    @property
    def config(self) -> JSON:
        value = self.resolved.config.get("config")
        return value if isinstance(value, dict) else {}

    def summary(self) -> JSON:
        return {
            "Id": self.resolved.image_id,
            "ParentId": "",
            "RepoTags": sorted(self.tags),
            "RepoDigests": [f"{self.resolved.repository}@{self.resolved.digest}"],
            "Created": int(self.pulled_at),
            "Size": self.resolved.size,
            "SharedSize": -1,
            "VirtualSize": self.resolved.size,
            "Labels": self.config.get("Labels") or {},
            "Containers": -1,
        }


@dataclass
class Container:
    id: str
    name: str
    body: JSON  # the create body, as sent
    config: JSON  # Config as inspect shows it (image defaults merged in)
    host_config: JSON
    networks: dict[str, JSON]
    image_id: str
    created: float
    unhealthy: bool
    exit_code: int | None  # FLEET_SIM_EXIT
    exit_after: float
    started_at: float | None = None
    finished_at: float | None = None
    stopped_code: int = 0
    running: bool = False  # between a start and a stop (what the daemon believes it asked)
    restart_base: int = 0

    def restarts(self) -> bool:
        policy = (self.host_config.get("RestartPolicy") or {}).get("Name") or "no"
        if policy == "on-failure":
            return bool(self.exit_code)
        return policy in RESTARTING_POLICIES

    def state(self, now: float) -> tuple[str, int, int]:
        """(status, exit code, restart count) at `now`."""
        if self.started_at is None:
            return "created", 0, self.restart_base
        if not self.running:
            return "exited", self.stopped_code, self.restart_base
        if self.exit_code is None or now - self.started_at < self.exit_after:
            return "running", 0, self.restart_base
        if self.restarts():
            crashes = int((now - self.started_at) / max(self.exit_after + 1.0, 0.1))
            return "restarting", self.exit_code, self.restart_base + max(crashes, 1)
        return "exited", self.exit_code, self.restart_base

    def healthcheck(self) -> JSON | None:
        check = self.config.get("Healthcheck")
        if not isinstance(check, dict) or not check.get("Test") or check["Test"] == ["NONE"]:
            return None
        return check

    def health(self, now: float, delay: float) -> JSON | None:
        check = self.healthcheck()
        status, _, _ = self.state(now)
        if check is None or self.started_at is None:
            return None
        if status != "running":
            return {"Status": "unhealthy", "FailingStreak": 0, "Log": []}
        if now - self.started_at < delay:
            return {"Status": "starting", "FailingStreak": 0, "Log": []}
        entry = {"Start": _timestamp(now), "End": _timestamp(now),
                 "ExitCode": 1 if self.unhealthy else 0,
                 "Output": "simulated: the health check fails\n" if self.unhealthy else ""}
        retries = int(check.get("Retries") or 3)
        return {"Status": "unhealthy" if self.unhealthy else "healthy",
                "FailingStreak": retries if self.unhealthy else 0, "Log": [entry]}


@dataclass
class Network:
    id: str
    name: str
    body: JSON
    created: float
    pools: list[JSON]

    def summary(self, containers: Mapping[str, Container]) -> JSON:
        members = {c.id: {"Name": c.name, "EndpointID": c.networks[self.name].get("EndpointID", ""),
                          "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
                   for c in containers.values() if self.name in c.networks}
        ipam = self.body.get("IPAM") or {}
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": _timestamp(self.created),
            "Scope": "local",
            "Driver": self.body.get("Driver") or "bridge",
            "EnableIPv6": bool(self.body.get("EnableIPv6")),
            "IPAM": {"Driver": ipam.get("Driver") or "default", "Options": ipam.get("Options"),
                     "Config": self.pools},
            "Internal": bool(self.body.get("Internal")),
            "Attachable": bool(self.body.get("Attachable")),
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": members,
            "Options": self.body.get("Options") or {},
            "Labels": self.body.get("Labels") or {},
        }


def _merge_env(image_env: list[str], own: list[str]) -> list[str]:
    merged = {entry.partition("=")[0]: entry for entry in image_env}
    merged.update({entry.partition("=")[0]: entry for entry in own})
    return list(merged.values())


def _env_value(env: list[str], key: str) -> str | None:
    for entry in env:
        name, sep, value = entry.partition("=")
        if name == key and sep:
            return value
    return None


class SimulatedEngine:
    """The daemon of one simulated host."""

    def __init__(self, host: str, latencies: Latencies, clock: Clock = time.time) -> None:
        self.host = host
        self.latencies = latencies
        self.clock = clock
        self.containers: dict[str, Container] = {}
        self.images: dict[str, Image] = {}  # by image id
        self.networks: dict[str, Network] = {}
        self.volumes: dict[str, JSON] = {}
        self._subnets = itertools.count(18)
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            self._add_network(name, {"Driver": driver})

    # -- lookups ---------------------------------------------------------------------------

    def container(self, key: str) -> Container:
        name = key.lstrip("/")
        if key in self.containers:
            return self.containers[key]
        for container in self.containers.values():
            if container.name == name:
                return container
        matches = [c for c in self.containers.values() if len(key) >= 3 and c.id.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        raise EngineError(404, f"No such container: {key}")

    def image(self, reference: str) -> Image | None:
        """The local image a reference names: by tag, repo@digest, or ID."""
        for image in self.images.values():
            repo_digest = f"{image.resolved.repository}@{image.resolved.digest}"
            if reference in image.tags or reference in (repo_digest, image.resolved.image_id):
                return image
            name, _, digest = reference.partition("@")
            if digest and digest == image.resolved.digest and (
                    name == image.resolved.repository
                    or name.rsplit(":", 1)[0] == image.resolved.repository):
                return image  # "repo:tag@digest": the digest decides, as in dockerd
        if ":" not in reference.rsplit("/", 1)[-1] and "@" not in reference:
            return self.image(f"{reference}:latest")
        return None

    def network(self, key: str) -> Network:
        for network in self.networks.values():
            if key in (network.name, network.id) or (len(key) >= 3 and network.id.startswith(key)):
                return network
        raise EngineError(404, f"network {key} not found")

    # -- images ----------------------------------------------------------------------------

    def add_image(self, resolved: ResolvedImage, tag: str | None) -> tuple[Image, bool]:
        """Record a pulled image; True if the host did not have it already."""
        image = self.images.get(resolved.image_id)
        new = image is None
        if image is None:
            image = self.images[resolved.image_id] = Image(resolved, pulled_at=self.clock())
        if tag:
            for other in self.images.values():  # a tag names one image at a time
                other.tags.discard(tag)
            image.tags.add(tag)
        return image, new

    def list_images(self) -> list[JSON]:
        return [image.summary() for image in self.images.values()]

    # -- containers ------------------------------------------------------------------------

    def create(self, name: str, body: JSON) -> JSON:
        if name:
            try:
                taken = self.container(name)
            except EngineError:
                taken = None
            if taken is not None and taken.name == name:
                raise EngineError(409, f'Conflict. The container name "/{name}" is already in '
                                       f'use by container "{taken.id}". You have to remove (or '
                                       "rename) that container to be able to reuse that name.")
        reference = str(body.get("Image") or "")
        image = self.image(reference)
        if image is None:
            raise EngineError(404, f"No such image: {reference}")
        host_config = dict(body.get("HostConfig") or {})
        mode = str(host_config.get("NetworkMode") or "default")
        endpoints = dict((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        primary = "bridge" if mode == "default" else mode
        if not mode.startswith("container:"):
            self.network(primary)
            for network in endpoints:
                self.network(network)
        container_id = secrets.token_hex(32)
        config = self._config(body, image, container_id)
        networks = {net: self._endpoint(endpoints.get(net) or {})
                    for net in dict.fromkeys([primary, *endpoints])
                    if not mode.startswith("container:")}
        host_config.setdefault("NetworkMode", mode)
        host_config.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        env = list(config.get("Env") or [])
        exit_code = _env_value(env, "FLEET_SIM_EXIT")
        exit_after = _env_value(env, "FLEET_SIM_EXIT_AFTER")
        unhealthy = _env_value(env, "FLEET_SIM_UNHEALTHY") == "1" or \
            (image.config.get("Labels") or {}).get(UNHEALTHY_LABEL) == "fail"
        container = Container(
            id=container_id, name=name or f"sim_{container_id[:8]}", body=body, config=config,
            host_config=host_config, networks=networks, image_id=image.resolved.image_id,
            created=self.clock(), unhealthy=unhealthy,
            exit_code=int(exit_code) if exit_code and exit_code.lstrip("-").isdigit() else None,
            exit_after=float(exit_after) if exit_after and _is_number(exit_after)
            else DEFAULT_EXIT_AFTER)
        self.containers[container_id] = container
        return {"Id": container_id, "Warnings": []}

    def _config(self, body: JSON, image: Image, container_id: str) -> JSON:
        defaults = image.config
        entrypoint = body.get("Entrypoint")
        cmd = body.get("Cmd")
        if entrypoint is None:
            entrypoint = defaults.get("Entrypoint")
            if cmd is None:
                cmd = defaults.get("Cmd")
        labels = {**(defaults.get("Labels") or {}), **(body.get("Labels") or {})}
        exposed = {**(defaults.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})}
        skipped = {"HostConfig", "NetworkingConfig"}
        config = {key: value for key, value in body.items() if key not in skipped}
        config.update({
            "Hostname": body.get("Hostname") or container_id[:12],
            "Image": body.get("Image"),
            "Env": _merge_env(list(defaults.get("Env") or []), list(body.get("Env") or [])),
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Labels": labels,
            "ExposedPorts": exposed or None,
            "WorkingDir": body.get("WorkingDir") or defaults.get("WorkingDir") or "",
            "User": body.get("User") or defaults.get("User") or "",
            "Tty": bool(body.get("Tty")),
        })
        if body.get("Healthcheck") is None and defaults.get("Healthcheck"):
            config["Healthcheck"] = defaults["Healthcheck"]
        return config

    def _endpoint(self, settings: JSON) -> JSON:
        return {**settings, "EndpointID": "", "NetworkID": "", "IPAddress": ""}

    def _published(self, container: Container) -> set[tuple[str, str]]:
        ports = set()
        for key, bindings in (container.host_config.get("PortBindings") or {}).items():
            protocol = key.partition("/")[2] or "tcp"
            for binding in bindings or []:
                if binding.get("HostPort"):
                    ports.add((str(binding["HostPort"]), protocol))
        return ports

    def start(self, key: str) -> bool:
        """False when it was already running (dockerd's 304)."""
        container = self.container(key)
        now = self.clock()
        status, _, _ = container.state(now)
        if status == "running":
            return False
        for other in self.containers.values():
            if other is container or other.state(now)[0] not in ("running", "restarting"):
                continue
            clash = self._published(container) & self._published(other)
            if clash:
                port, _protocol = sorted(clash)[0]
                raise EngineError(500, f"driver failed programming external connectivity on "
                                       f"endpoint {container.name} ({container.id[:12]}): Bind "
                                       f"for 0.0.0.0:{port} failed: port is already allocated")
        if status == "restarting":
            container.restart_base = container.state(now)[2]
        container.started_at, container.running, container.finished_at = now, True, None
        return True

    def stop(self, key: str) -> bool:
        """False when it was not running (dockerd's 304)."""
        container = self.container(key)
        now = self.clock()
        status, code, restarts = container.state(now)
        if status not in ("running", "restarting"):
            return False
        container.running, container.finished_at = False, now
        container.stopped_code = code if status == "restarting" else 0
        container.restart_base = restarts
        return True

    def kill(self, key: str) -> None:
        container = self.container(key)
        if container.state(self.clock())[0] not in ("running", "restarting"):
            raise EngineError(409, f"Container {container.id} is not running")
        self.stop(key)
        container.stopped_code = 137

    def remove(self, key: str, force: bool) -> None:
        container = self.container(key)
        if container.state(self.clock())[0] in ("running", "restarting") and not force:
            raise EngineError(409, f"You cannot remove a running container {container.id}."
                                   " Stop the container before attempting removal or force "
                                   "remove")
        del self.containers[container.id]

    def rename(self, key: str, new_name: str) -> None:
        container = self.container(key)
        for other in self.containers.values():
            if other.name == new_name and other is not container:
                raise EngineError(409, f'Conflict. The container name "/{new_name}" is already '
                                       f'in use by container "{other.id}". You have to remove '
                                       "(or rename) that container to be able to reuse that name.")
        container.name = new_name

    UPDATABLE = ("CpuShares", "Memory", "MemoryReservation", "MemorySwap", "NanoCpus",
                 "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit",
                 "BlkioWeight", "KernelMemory", "RestartPolicy")

    def update(self, key: str, body: JSON) -> JSON:
        container = self.container(key)
        for name in self.UPDATABLE:
            if name in body:
                container.host_config[name] = body[name]
        return {"Warnings": []}

    def connect(self, network_key: str, container_key: str, endpoint: JSON) -> None:
        network = self.network(network_key)
        container = self.container(container_key)
        if network.name in container.networks:
            raise EngineError(403, f"endpoint with name {container.name} already exists in "
                                   f"network {network.name}")
        container.networks[network.name] = self._endpoint(endpoint)

    def _status_text(self, container: Container, now: float) -> str:
        status, code, _ = container.state(now)
        if status == "running":
            return f"Up {_ago(now - (container.started_at or now))}"
        if status == "exited":
            return f"Exited ({code}) {_ago(now - (container.finished_at or now))} ago"
        if status == "restarting":
            return f"Restarting ({code}) Less than a second ago"
        return "Created"

    def list_containers(self, all: bool, labels: list[str]) -> list[JSON]:
        now = self.clock()
        result = []
        for container in sorted(self.containers.values(), key=lambda c: -c.created):
            status, _, _ = container.state(now)
            if not all and status not in ("running", "restarting"):
                continue
            if not _labels_match(container.config.get("Labels") or {}, labels):
                continue
            result.append({
                "Id": container.id,
                "Names": [f"/{container.name}"],
                "Image": container.config.get("Image"),
                "ImageID": container.image_id,
                "Command": " ".join([*(container.config.get("Entrypoint") or []),
                                     *(container.config.get("Cmd") or [])]),
                "Created": int(container.created),
                "Ports": self._port_summary(container, status),
                "Labels": container.config.get("Labels") or {},
                "State": status,
                "Status": self._status_text(container, now),
                "HostConfig": {"NetworkMode": container.host_config.get("NetworkMode")},
                "NetworkSettings": {"Networks": container.networks},
                "Mounts": [],
            })
        return result

    def _port_summary(self, container: Container, status: str) -> list[JSON]:
        ports = []
        for key in sorted(container.config.get("ExposedPorts") or {}):
            private, _, protocol = key.partition("/")
            bindings = (container.host_config.get("PortBindings") or {}).get(key) or []
            published = [b for b in bindings if b.get("HostPort")] if status == "running" else []
            if not published:
                ports.append({"PrivatePort": int(private), "Type": protocol or "tcp"})
            for binding in published:
                ports.append({"IP": binding.get("HostIp") or "0.0.0.0",
                              "PrivatePort": int(private),
                              "PublicPort": int(binding["HostPort"]), "Type": protocol or "tcp"})
        return ports

    def inspect(self, key: str) -> JSON:
        container = self.container(key)
        now = self.clock()
        status, code, restarts = container.state(now)
        running = status in ("running", "restarting")
        state: JSON = {
            "Status": status, "Running": running, "Paused": False,
            "Restarting": status == "restarting", "OOMKilled": False, "Dead": False,
            "Pid": 4242 if running else 0, "ExitCode": code, "Error": "",
            "StartedAt": _timestamp(container.started_at) if container.started_at else ZERO_TIME,
            "FinishedAt": _timestamp(container.finished_at) if container.finished_at
            else ZERO_TIME,
        }
        health = container.health(now, self.latencies.health)
        if health is not None:
            state["Health"] = health
        host_config = {"PortBindings": {}, "Binds": None, **container.host_config}
        return {
            "Id": container.id,
            "Created": _timestamp(container.created),
            "Path": (container.config.get("Entrypoint") or container.config.get("Cmd")
                     or [""])[0],
            "Args": [],
            "State": state,
            "Image": container.image_id,
            "Name": f"/{container.name}",
            "RestartCount": restarts,
            "Driver": "simulated",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "HostConfig": host_config,
            "Mounts": [],
            "Config": container.config,
            "NetworkSettings": {"Networks": container.networks, "Ports": {}},
        }

    def logs(self, key: str) -> list[tuple[int, bytes]]:
        container = self.container(key)
        lines = [(1, f"simulated container {container.name} of image "
                     f"{container.config.get('Image')}\n".encode())]
        status, code, _ = container.state(self.clock())
        if container.exit_code is not None and container.started_at is not None:
            lines.append((2, f"simulated: exiting with code {container.exit_code} "
                             "(FLEET_SIM_EXIT)\n".encode()))
        elif status == "exited":
            lines.append((1, f"simulated: stopped, exit code {code}\n".encode()))
        return lines

    # -- networks and volumes --------------------------------------------------------------

    def _add_network(self, name: str, body: JSON) -> Network:
        pools = [dict(pool) for pool in ((body.get("IPAM") or {}).get("Config") or [])]
        driver = body.get("Driver") or "bridge"
        if not pools and driver == "bridge":
            subnet = ipaddress.ip_network(f"172.{next(self._subnets) % 256}.0.0/16")
            pools = [{"Subnet": str(subnet), "Gateway": str(subnet[1])}]
        network = Network(secrets.token_hex(32), name, body, self.clock(), pools)
        self.networks[network.id] = network
        return network

    def create_network(self, body: JSON) -> JSON:
        name = str(body.get("Name") or "")
        if not name:
            raise EngineError(400, "network name is required")
        if any(n.name == name for n in self.networks.values()):
            raise EngineError(409, f"network with name {name} already exists")
        return {"Id": self._add_network(name, body).id, "Warning": ""}

    def list_networks(self) -> list[JSON]:
        return [n.summary(self.containers) for n in self.networks.values()]

    def create_volume(self, body: JSON) -> JSON:
        name = str(body.get("Name") or "") or secrets.token_hex(32)
        if name not in self.volumes:
            self.volumes[name] = {
                "Name": name, "Driver": body.get("Driver") or "local",
                "Mountpoint": f"/var/lib/docker/volumes/{name}/_data",
                "CreatedAt": _timestamp(self.clock()), "Labels": body.get("Labels") or {},
                "Options": body.get("DriverOpts") or {}, "Scope": "local",
            }
        return self.volumes[name]

    def list_volumes(self) -> JSON:
        return {"Volumes": list(self.volumes.values()), "Warnings": None}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    return f"{int(seconds // 60)} minutes"


def _labels_match(labels: Mapping[str, str], wanted: list[str]) -> bool:
    for term in wanted:
        key, sep, value = term.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True
