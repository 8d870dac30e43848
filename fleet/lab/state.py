"""The lab's record of what it created (state.json in the lab dir) and the public `Lab` view."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleet.errors import LabError

STATE_FILE = "state.json"
STATE_FORMAT = 1


@dataclass(frozen=True)
class ProcessRecord:
    """A daemon the lab started. The start time tells a live daemon from a recycled pid."""

    pid: int
    start_time: int


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    labels: dict[str, str]
    netns: str


@dataclass
class HostState:
    name: str
    address: str
    labels: dict[str, str]
    netns: str
    veth: str
    mount_ns: str  # file holding the host's mount namespace
    uts_ns: str = ""  # file holding its UTS namespace (its hostname)
    home: str = ""  # the host's own /root (labs made before it had none: rebuilt on `up`)
    sshd: ProcessRecord | None = None
    dockerd: ProcessRecord | None = None

    def public(self) -> LabHost:
        return LabHost(self.name, self.address, dict(self.labels), self.netns)


@dataclass
class LabState:
    dir: str
    lab_id: str
    subnet: str
    bridge: str
    bridge_address: str
    registry: str  # "ADDR:PORT"
    clouds: list[str]
    registry_process: ProcessRecord | None = None
    hosts: list[HostState] = field(default_factory=list)
    # Simulated hosts have a real sshd, and their Docker sockets are all served by one
    # simulator process (fleet.lab.simulator) instead of a dockerd each.
    simulated: bool = False
    simulator_process: ProcessRecord | None = None


@dataclass(frozen=True)
class Lab:
    """A lab that is up: what tests and tools need to reach it."""

    dir: Path
    inventory_path: Path
    ssh_key: Path
    known_hosts: Path
    registry: str
    subnet: str
    hosts: list[LabHost]
    simulated: bool = False

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"no host {name!r} in the lab at {self.dir}")


def state_path(lab_dir: Path) -> Path:
    return lab_dir / STATE_FILE


def _process(data: dict[str, Any] | None) -> ProcessRecord | None:
    return ProcessRecord(**data) if data else None


def state_from_dict(data: dict[str, Any]) -> LabState:
    hosts = [
        HostState(
            **{k: v for k, v in host.items() if k not in ("sshd", "dockerd")},
            sshd=_process(host.get("sshd")),
            dockerd=_process(host.get("dockerd")),
        )
        for host in data["hosts"]
    ]
    records = ("registry_process", "simulator_process")
    fields = {k: v for k, v in data.items() if k not in ("format", "hosts", *records)}
    return LabState(**fields, registry_process=_process(data.get("registry_process")),
                    simulator_process=_process(data.get("simulator_process")), hosts=hosts)


def read_state(lab_dir: Path) -> LabState | None:
    path = state_path(lab_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from exc
    if data.get("format") != STATE_FORMAT:
        raise LabError(f"{path} has an unknown format; remove the lab dir by hand")
    try:
        return state_from_dict(data)
    except (KeyError, TypeError) as exc:
        raise LabError(f"{path} is damaged ({exc}); remove the lab dir by hand") from exc


def write_state(lab_dir: Path, state: LabState) -> None:
    """Atomically replace the state file, so a crash never leaves half a record."""
    data = {"format": STATE_FORMAT, **asdict(state)}
    path = state_path(lab_dir)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def lab_view(state: LabState) -> Lab:
    lab_dir = Path(state.dir)
    return Lab(
        dir=lab_dir,
        inventory_path=lab_dir / "inventory.yml",
        ssh_key=lab_dir / "id_ed25519",
        known_hosts=lab_dir / "known_hosts",
        registry=state.registry,
        subnet=state.subnet,
        hosts=[host.public() for host in state.hosts],
        simulated=state.simulated,
    )
