"""The simulator's config file (JSON): the lab registry, the latencies, each host's socket."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fleet.lab.simulator.engine import Latencies


@dataclass(frozen=True)
class SimulatorConfig:
    registry: str
    latencies: Latencies
    hosts: dict[str, Path]  # host name -> its socket path


def read_config(path: Path) -> SimulatorConfig:
    data = json.loads(path.read_text())
    return SimulatorConfig(
        registry=str(data["registry"]),
        latencies=Latencies(**{k: float(v) for k, v in (data.get("latencies") or {}).items()}),
        hosts={str(name): Path(socket) for name, socket in data["hosts"].items()},
    )


def render_config(registry: str, latencies: Latencies, hosts: dict[str, Path]) -> str:
    data = {"registry": registry,
            "latencies": {"pull": latencies.pull, "health": latencies.health,
                          "api": latencies.api},
            "hosts": {name: str(path) for name, path in sorted(hosts.items())}}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
