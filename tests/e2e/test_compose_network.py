"""Compose's networks and volumes end to end: two services with no `networks:` key reach each
other by service name on the implicit PROJECT_default network on every host, and a named
top-level volume (PROJECT_VOLUME, labelled as the project's) keeps its data across a
recreate. A network removed behind fleet's back is drift that `check` reports, `plan` shows
and `apply` heals. One deployment serves every assertion; the last test leaves it changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab, lab_exec

PROJECT = "e2ecnet"
NETWORK = f"{PROJECT}_default"
VOLUME = f"{PROJECT}_data"
WEB, DB = f"{PROJECT}-web-1", f"{PROJECT}-db-1"
# Every host at once, a short watch: rollout policy has tests of its own.
TOP: dict[str, Any] = {"volumes": {"data": None}, "update": {"batch": "100%", "monitor": "1s"}}


def services(registry: str, version: str) -> dict[str, Any]:
    return {
        # Listed first: services roll out in the file's order, so `db` answers before the
        # web containers' health checks ask for it.
        "db": {"image": f"{registry}/demo/web:v1"},
        "web": {
            "image": f"{registry}/demo/web:v2",
            "environment": {"DB_HOST": "db", "RELEASE": version},
            "volumes": ["data:/data"],
            # Healthy only if `db` resolves on the default network and answers there.
            "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://db:8080/health"],
                            "interval": "1s", "retries": 5},
        },
    }


@pytest.fixture(scope="module")
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("compose-network")
    playbook = write_playbook(base / "compose.yml", PROJECT, lab.inventory_path,
                              services(lab.registry, "1"), **TOP)
    try:
        fleet("apply", "--yes", str(playbook), check_rc=0)
        yield playbook
    finally:
        fleet("apply", "--yes", str(write_playbook(base / "empty.yml", PROJECT,
                                                   lab.inventory_path, {})))
        for host in lab.hosts:
            lab_exec(lab, host.name, ["docker", "network", "rm", NETWORK])
            lab_exec(lab, host.name, ["docker", "volume", "rm", VOLUME])


def in_web(lab: Lab, host: str, *argv: str) -> str:
    return docker(lab, host, "exec", WEB, *argv)


def test_services_reach_each_other_by_name_on_the_default_network(lab: Lab,
                                                                   deployed: Path) -> None:
    for host in lab.hosts:
        # By service name (the alias fleet gives on each network) and by container name.
        assert in_web(lab, host.name, "wget", "-qO-", "http://db:8080/").strip() == "v1"
        assert in_web(lab, host.name, "wget", "-qO-", f"http://{DB}:8080/").strip() == "v1"
        network = json.loads(docker(lab, host.name, "network", "inspect", NETWORK))[0]
        assert network["Labels"] == {"fleet.project": PROJECT}
        attached = {c["Name"] for c in network["Containers"].values()}
        assert attached == {WEB, DB}


def test_a_network_removed_behind_fleets_back_is_drift_and_is_healed(lab: Lab,
                                                                     deployed: Path) -> None:
    host = lab.hosts[1].name
    docker(lab, host, "stop", "-t", "1", WEB, DB)  # a network in use can't be removed
    docker(lab, host, "network", "rm", NETWORK)
    check = fleet_json("check", str(deployed), check_rc=2)
    assert {(f["host"], f["kind"], f["detail"]) for f in check["findings"]} == {
        (host, "config_changed", f"network {NETWORK} is not on the host")}
    plan = fleet_json("plan", str(deployed), check_rc=2)
    actions = [(a["kind"], a["target"]) for h in plan["hosts"] if h["host"] == host
               for a in h["actions"]]
    assert actions[0] == ("network", NETWORK)
    fleet("apply", "--yes", str(deployed), check_rc=0)
    assert in_web(lab, host, "wget", "-qO-", "http://db:8080/").strip() == "v1"
    fleet("check", str(deployed), check_rc=0)


def test_a_named_volume_is_the_projects_and_survives_a_recreate(lab: Lab, deployed: Path,
                                                                tmp_path: Path) -> None:
    host = lab.hosts[0].name
    volume = json.loads(docker(lab, host, "volume", "inspect", VOLUME))[0]
    assert volume["Labels"] == {"fleet.project": PROJECT}
    in_web(lab, host, "sh", "-c", "echo kept > /data/proof")
    before = docker(lab, host, "inspect", "--format", "{{.Id}}", WEB).strip()
    changed = write_playbook(tmp_path / "compose.yml", PROJECT, lab.inventory_path,
                             services(lab.registry, "2"), **TOP)
    fleet("apply", "--yes", "--limit", host, str(changed), check_rc=0)
    assert docker(lab, host, "inspect", "--format", "{{.Id}}", WEB).strip() != before
    assert in_web(lab, host, "cat", "/data/proof").strip() == "kept"
