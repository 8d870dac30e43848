"""The reconciler end to end on the lab: apply, plan, check, status over real sshd + dockerd.

One project per module; drift is made by hand with the docker CLI on the hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_helpers import container_labels, docker, fleet, fleet_json, run_with_labels, write_playbook

from fleet.lab import Lab, lab_exec

PROJECT = "e2erec"


def services(registry: str) -> dict[str, Any]:
    return {
        "web": {
            "image": f"{registry}/demo/web:v1",
            "ports": ["8080:8080"],
            "environment": {"CLOUD": "{{ host.labels.cloud }}", "TOKEN": "{{ secret('TOKEN') }}"},
            "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"],
                            "interval": "1s", "retries": 3},
            "restart": "unless-stopped",
        },
        "worker": {
            "image": f"{registry}/demo/worker:v1",
            "hosts": "cloud=hetzner",
            "replicas": 2,
        },
    }


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("reconcile")
    (base / "secrets.env").write_text("TOKEN=s3cr3t-value\n")
    # Every host at once and no monitoring: what is tested is convergence, not the rollout
    # policy (tests/e2e/test_rollout.py), and the default waits 5 s per host.
    playbook = write_playbook(base / "e2e.yml", PROJECT, lab.inventory_path,
                              services(lab.registry), secrets_file="secrets.env",
                              update={"batch": "100%", "monitor": "0s"})
    yield playbook
    # Leave the lab clean: an empty playbook prunes every container of the project.
    empty = write_playbook(base / "empty.yml", PROJECT, lab.inventory_path, {})
    fleet("apply", "--yes", str(empty))


def test_apply_converges_then_is_a_no_op(lab: Lab, project: Path) -> None:
    result = fleet_json("apply", "--yes", str(project), check_rc=0)
    assert result["converged"] is True
    assert len(result["hosts"]) == len(lab.hosts)
    again = fleet_json("apply", "--yes", str(project), check_rc=0)
    assert again["hosts"] == []
    plan = fleet_json("plan", str(project), check_rc=0)
    assert plan["changes"] is False
    check = fleet_json("check", str(project), check_rc=0)
    assert check == {"project": PROJECT, "in_sync": True, "hosts_checked": len(lab.hosts),
                     "findings": [], "unreachable": []}
    # The service answers at each host's address, from the controller.
    import urllib.request

    for host in lab.hosts:
        with urllib.request.urlopen(f"http://{host.address}:8080/", timeout=5) as response:
            assert response.read().strip() == b"v1"
    # Secrets never leave the controller in output.
    rendered = fleet("render", str(project), check_rc=0).stdout
    assert "s3cr3t-value" not in rendered and "<redacted:TOKEN>" in rendered


def test_drift_made_by_hand_is_found_and_healed(lab: Lab, project: Path) -> None:
    fleet("apply", "--yes", str(project), check_rc=0)
    hosts = [h.name for h in lab.hosts]
    hetzner = next(h.name for h in lab.hosts if h.labels["cloud"] == "hetzner")
    web = f"{PROJECT}-web-1"
    labels = container_labels(lab, hosts[2], web)
    image_v1 = f"{lab.registry}/demo/web:v1"
    docker(lab, hosts[0], "stop", "-t", "1", web)                         # stopped
    docker(lab, hosts[1], "rm", "-f", web)                                # missing
    docker(lab, hosts[2], "rm", "-f", web)                                # config_changed
    pinned_v1 = f"{lab.registry}/demo/web@{labels['fleet.image-digest']}"
    run_with_labels(lab, hosts[2], web, labels, pinned_v1, "-e", "CLOUD=elsewhere",
                    "-p", "8080:8080")
    labels3 = container_labels(lab, hosts[3], web)
    docker(lab, hosts[3], "rm", "-f", web)                                # image_changed
    run_with_labels(lab, hosts[3], web, labels3, f"{lab.registry}/demo/web:v2",
                    "-p", "8080:8080")
    docker(lab, hosts[4], "rm", "-f", web)                                # conflict
    docker(lab, hosts[4], "run", "-d", "--name", "squatter", "-p", "8080:8080", image_v1)
    try:
        labels5 = {**container_labels(lab, hosts[5], web), "fleet.replica": "2"}
        run_with_labels(lab, hosts[5], f"{PROJECT}-web-2", labels5, image_v1)  # extra

        check = fleet_json("check", str(project), check_rc=2)
        found = {(f["host"], f["service"], f["kind"]) for f in check["findings"]}
        assert found == {
            (hosts[0], "web", "stopped"),
            (hosts[1], "web", "missing"),
            (hosts[2], "web", "config_changed"),
            (hosts[3], "web", "image_changed"),
            (hosts[4], "web", "conflict"),
            (hosts[5], "web", "extra"),
        }, check["findings"]
        detail = next(f["detail"] for f in check["findings"] if f["kind"] == "config_changed")
        assert "environment.CLOUD: elsewhere ->" in detail

        # A foreign container is never touched: apply converges the rest and reports it.
        result = fleet_json("apply", "--yes", str(project), check_rc=1)
        failed = {h["host"]: h["error"] for h in result["hosts"] if not h["ok"]}
        assert list(failed) == [hosts[4]] and "squatter" in failed[hosts[4]]
        assert "squatter" in docker(lab, hosts[4], "ps", "--format", "{{.Names}}")
        docker(lab, hosts[4], "rm", "-f", "squatter")
        fleet("apply", "--yes", str(project), check_rc=0)
        fleet("check", str(project), check_rc=0)
    finally:
        lab_exec(lab, hosts[4], ["docker", "rm", "-f", "squatter"])

    # A service deleted from the playbook is an orphan; apply removes it (not with --no-prune).
    data = yaml.safe_load(project.read_text())
    without_worker = project.with_name("no-worker.yml")
    data["services"].pop("worker")
    without_worker.write_text(yaml.safe_dump(data))
    check = fleet_json("check", str(without_worker), check_rc=2)
    assert {(f["host"], f["kind"]) for f in check["findings"]} == {(h.name, "orphan") for h in
                                                                    lab.hosts if h.labels[
                                                                        "cloud"] == "hetzner"}
    fleet("apply", "--yes", "--no-prune", str(without_worker), check_rc=0)
    assert f"{PROJECT}-worker-1" in docker(lab, hetzner, "ps", "--format", "{{.Names}}")
    fleet("apply", "--yes", str(without_worker), check_rc=0)
    assert f"{PROJECT}-worker-1" not in docker(lab, hetzner, "ps", "-a", "--format",
                                               "{{.Names}}")
    fleet("apply", "--yes", str(project), check_rc=0)


def _inventory_copy(lab: Lab, path: Path, *, extra_hosts: dict[str, Any] | None = None,
                    drop: str | None = None, known_hosts: Path | None = None) -> Path:
    data = yaml.safe_load(lab.inventory_path.read_text())
    if drop:
        data["hosts"].pop(drop)
    data["hosts"].update(extra_hosts or {})
    if known_hosts:
        data["defaults"]["known_hosts"] = str(known_hosts)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_unreachable_host_is_reported_while_the_rest_converge(lab: Lab, project: Path,
                                                              tmp_path: Path) -> None:
    inventory = _inventory_copy(lab, tmp_path / "inv.yml", extra_hosts={
        "ghost": {"address": lab.subnet.rsplit(".", 1)[0] + ".250",
                  "labels": {"cloud": "aws", "region": "us-east-1"}}})
    check = fleet_json("check", "-i", str(inventory), "--connect-timeout", "2", str(project),
                       check_rc=1)
    assert [u["host"] for u in check["unreachable"]] == ["ghost"]
    assert check["hosts_checked"] == len(lab.hosts)
    result = fleet_json("apply", "--yes", "-i", str(inventory), "--connect-timeout", "2",
                        str(project), check_rc=1)
    assert result["converged"] is False and result["unreachable"][0]["host"] == "ghost"


def test_changed_host_key_is_refused(lab: Lab, project: Path, tmp_path: Path) -> None:
    victim = lab.hosts[0]
    lines = lab.known_hosts.read_text().splitlines()
    forged = [ln for ln in lines if not ln.startswith(victim.address + " ")]
    other_key = next(ln for ln in lines if ln.startswith(lab.hosts[1].address + " "))
    forged.append(victim.address + " " + other_key.split(" ", 1)[1])
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(forged) + "\n")
    inventory = _inventory_copy(lab, tmp_path / "inv.yml", known_hosts=known)
    check = fleet_json("check", "-i", str(inventory), str(project), check_rc=1)
    refused = {u["host"]: u["error"] for u in check["unreachable"]}
    assert list(refused) == [victim.name]
    assert "host key" in refused[victim.name].lower()


def test_a_new_host_in_the_inventory_converges_alone(lab: Lab, project: Path,
                                                     tmp_path: Path) -> None:
    newcomer = lab.hosts[-1].name
    fewer = _inventory_copy(lab, tmp_path / "fewer.yml", drop=newcomer)
    fleet("apply", "--yes", "-i", str(fewer), str(project), check_rc=0)
    docker(lab, newcomer, "rm", "-f", f"{PROJECT}-web-1")
    plan = fleet_json("plan", str(project), check_rc=2)
    assert [h["host"] for h in plan["hosts"] if h["actions"]] == [newcomer]
    fleet("apply", "--yes", str(project), check_rc=0)


def test_status_shows_every_container(lab: Lab, project: Path) -> None:
    fleet("apply", "--yes", str(project), check_rc=0)
    status = fleet_json("status", str(project), check_rc=0)
    web = [c for c in status["containers"] if c["service"] == "web"]
    assert len(web) == len(lab.hosts)
    assert all(c["state"] == "running" and c["health"] == "healthy" for c in web)
    assert all(c["digest"].startswith("sha256:") for c in web)
    text = fleet("status", str(project), check_rc=0).stdout
    assert "hetzner /" in text and f"{PROJECT}-worker-2" in text


def test_services_on_a_project_network_reach_each_other_by_name(lab: Lab,
                                                                tmp_path: Path) -> None:
    host = lab.hosts[0]
    services = {
        "api": {"image": f"{lab.registry}/demo/web:v2", "hosts": host.name,
                "networks": ["back"]},
        "client": {"image": f"{lab.registry}/demo/worker:v1", "hosts": host.name,
                   "networks": ["front", "back"],
                   # Healthy only if the name `api` resolves on the shared network.
                   "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://api:8080/"],
                                   "interval": "1s", "retries": 3}},
    }
    playbook = write_playbook(tmp_path / "net.yml", "e2enet", lab.inventory_path, services,
                              networks={"back": {}, "front": {"driver": "bridge"}})
    try:
        fleet("apply", "--yes", str(playbook), check_rc=0)
        networks = docker(lab, host.name, "network", "ls", "--format", "{{.Name}}").split()
        assert {"e2enet_back", "e2enet_front"} <= set(networks)
        inspect = docker(lab, host.name, "inspect", "--format",
                         "{{.State.Health.Status}} {{len .NetworkSettings.Networks}}",
                         "e2enet-client-1").split()
        assert inspect == ["healthy", "2"]
        fleet("plan", str(playbook), check_rc=0)
    finally:
        fleet("apply", "--yes", str(write_playbook(tmp_path / "empty.yml", "e2enet",
                                                   lab.inventory_path, {})))
