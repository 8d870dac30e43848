"""Helpers for end-to-end tests: run the real `fleet` CLI, make drift by hand on lab hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fleet.lab import Lab, lab_exec


def fleet(*args: str, check_rc: int | None = None, timeout: float = 300
          ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check_rc is not None:
        assert result.returncode == check_rc, (
            f"fleet {' '.join(args)} exited {result.returncode}, expected {check_rc}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def fleet_json(*args: str, check_rc: int | None = None) -> Any:
    result = fleet(*args, "--json", check_rc=check_rc)
    return json.loads(result.stdout)


def write_playbook(path: Path, project: str, inventory: Path, services: dict[str, Any],
                   **top: Any) -> Path:
    path.write_text(yaml.safe_dump({"project": project, "inventory": str(inventory),
                                    **top, "services": services}, sort_keys=False))
    return path


def docker(lab: Lab, host: str, *argv: str) -> str:
    """The docker CLI on a lab host (constant argv, as an operator would type it)."""
    return lab_exec(lab, host, ["docker", *argv], check=True).stdout


def container_labels(lab: Lab, host: str, name: str) -> dict[str, str]:
    data = json.loads(docker(lab, host, "inspect", name))
    labels: dict[str, str] = data[0]["Config"]["Labels"]
    return labels


def run_with_labels(lab: Lab, host: str, name: str, labels: dict[str, str], image: str,
                    *extra: str) -> None:
    argv = ["run", "-d", "--name", name]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    docker(lab, host, *argv, *extra, image)
