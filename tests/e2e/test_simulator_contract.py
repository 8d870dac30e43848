"""The Engine API simulator's contract: one scenario, run on two real lab hosts (sshd +
dockerd) and on two simulated ones (sshd + the simulator), must give the same plans, findings
and outcomes.

The scenario (its reports carry every action with its kind, target and cause): apply v1; a
container stopped by hand is `stopped` drift; apply heals it; a v1 -> v2 rollout; a broken
v3 (its health check fails) is rolled back. Drift is made with the real docker CLI inside each
host, which talks to dockerd or to the simulator alike.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_LAB_DIR, TEST_LAB_SUBNET
from e2e_helpers import docker, fleet, write_playbook

from fleet.errors import LabError
from fleet.lab import Lab, lab_down, lab_up, load_lab
from fleet.lab.simulator.engine import Latencies

PROJECT = "e2esim"
HOSTS = ("aws-use1-1", "gcp-usc1-1")  # the first two hosts of any lab
# The simulated lab sits 5 /24s after the worker's real one (inside 198.18.0.0/15).
_base = ipaddress.ip_network(TEST_LAB_SUBNET)
SIM_SUBNET = str(ipaddress.ip_network((int(_base.network_address) + 5 * _base.num_addresses,
                                       _base.prefixlen)))
CONTAINER_ID = re.compile(r"(?<!sha256:)\b[0-9a-f]{64}\b")  # not an image digest
SHORT_ID = re.compile(r"\[[0-9a-f]{12}\]")
SIM_DIR = TEST_LAB_DIR.with_name(f"{TEST_LAB_DIR.name}-sim")


@pytest.fixture(scope="module")
def simulated_lab() -> Iterator[Lab]:
    lab_down(SIM_DIR)  # leftovers of a crashed run
    try:
        yield lab_up(SIM_DIR, hosts=len(HOSTS), subnet=SIM_SUBNET, simulated=True,
                     latencies=Latencies(pull=0.2, health=1.0))
    finally:
        lab_down(SIM_DIR)


def _services(registry: str, version: str) -> dict[str, Any]:
    return {
        "web": {
            "image": f"{registry}/demo/web:{version}",
            "ports": ["8080:8080"],
            "environment": {"CLOUD": "{{ host.labels.cloud }}"},
            "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"],
                            "interval": "1s", "timeout": "3s", "retries": 3},
            "restart": "unless-stopped",
        },
        "worker": {"image": f"{registry}/demo/worker:v1", "replicas": 2},
    }


def _normal(value: Any, registry: str) -> Any:
    """A report with what differs by lab taken out: the registry's address, container ids,
    and a failure's own words after its cause (wget's answer on a real host, the simulator's
    on the other)."""
    text = json.dumps(value, sort_keys=True).replace(registry, "REGISTRY")
    return _causes_only(json.loads(CONTAINER_ID.sub("ID", SHORT_ID.sub("[ID]", text))))


def _causes_only(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: item.split(" (")[0] if key in ("error", "detail") and isinstance(item, str)
                else _causes_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_causes_only(item) for item in value]
    return value


def _scenario(lab: Lab, base: Path) -> list[tuple[str, int, Any]]:
    """Each step's command, exit code and normalized --json report."""
    limit = ",".join(HOSTS)
    steps: list[tuple[str, int, Any]] = []

    def run(name: str, version: str, *command: str) -> None:
        playbook = write_playbook(base / f"{version}.yml", PROJECT, lab.inventory_path,
                                  _services(lab.registry, version),
                                  update={"batch": 1, "monitor": "0s"})
        started = time.monotonic()
        result = fleet(*command, str(playbook), "--limit", limit, "--json")
        print(f"{lab.dir.name}: {name}: exit {result.returncode} in "
              f"{time.monotonic() - started:.1f}s")
        report = json.loads(result.stdout) if result.stdout.strip() else None
        steps.append((name, result.returncode, _normal(report, lab.registry)))

    if not lab.simulated:
        # Earlier tests on this lab pulled the demo images; a plan pulls only what a host
        # lacks, so start as bare as the fresh simulated hosts (no container uses them now).
        for host in HOSTS:
            docker(lab, host, "image", "prune", "--all", "--force")
    run("apply v1", "v1", "apply", "--yes")
    docker(lab, HOSTS[0], "stop", "-t", "1", f"{PROJECT}-web-1")
    run("check stopped", "v1", "check")
    run("heal", "v1", "apply", "--yes")
    run("plan v2", "v2", "plan")
    run("apply v2", "v2", "apply", "--yes")
    run("apply broken v3", "v3", "apply", "--yes")
    run("check after rollback", "v2", "check")
    empty = write_playbook(base / "empty.yml", PROJECT, lab.inventory_path, {})
    fleet("apply", "--yes", str(empty), "--limit", limit, check_rc=0)
    return steps


def _diff(real: Any, simulated: Any) -> str:
    """The reports' differences as a unified diff (pytest's own cuts them short)."""
    def lines(value: Any) -> list[str]:
        return json.dumps(value, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(lines(real), lines(simulated), "real", "simulated",
                                           lineterm="", n=6))


def test_real_and_simulated_hosts_give_the_same_plans_and_outcomes(
        lab: Lab, simulated_lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "sim").mkdir()
    real = _scenario(lab, tmp_path / "real")
    simulated = _scenario(simulated_lab, tmp_path / "sim")
    for (name, rc, report), (_, sim_rc, sim_report) in zip(real, simulated, strict=True):
        if (sim_rc, sim_report) != (rc, report):
            pytest.fail(f"{name}: real exit {rc}, simulated exit {sim_rc}\n"
                        + _diff(report, sim_report), pytrace=False)
    assert [(name, rc) for name, rc, _ in real] == [
        ("apply v1", 0), ("check stopped", 2), ("heal", 0), ("plan v2", 2), ("apply v2", 0),
        ("apply broken v3", 1), ("check after rollback", 0)]
    stopped = dict((name, report) for name, _, report in real)["check stopped"]
    assert [(f["host"], f["kind"]) for f in stopped["findings"]] == [(HOSTS[0], "stopped")]


def test_a_simulated_lab_is_not_turned_real_behind_its_back(simulated_lab: Lab) -> None:
    with pytest.raises(LabError, match="has simulated hosts; run `fleet lab down"):
        lab_up(SIM_DIR, hosts=len(HOSTS), subnet=SIM_SUBNET)
    assert load_lab(SIM_DIR).simulated
