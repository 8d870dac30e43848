"""Rolling updates end to end on the lab: waves and batches under a live probe, a broken
canary returned to the previous version, rollback of changed hosts, and a killed controller."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab, lab_exec

PROJECT = "e2eroll"


def web(registry: str, version: str, **update: Any) -> dict[str, Any]:
    return {"web": {
        "image": f"{registry}/demo/web:{version}",
        "ports": ["8080:8080"],
        "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"],
                        "interval": "500ms", "retries": 2},
        "update": {"waves": "cloud", "batch": 1, "monitor": "1s", "timeout": "20s", **update},
    }}


@pytest.fixture()
def playbook(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    path = write_playbook(tmp_path / "roll.yml", PROJECT, lab.inventory_path,
                          web(lab.registry, "v1"))
    fleet("apply", "--yes", str(path), check_rc=0)
    yield path
    fleet("apply", "--yes", str(write_playbook(tmp_path / "empty.yml", PROJECT,
                                               lab.inventory_path, {})))


class Poller:
    """Fetches every host's page every 50 ms from the controller, recording what it saw."""

    def __init__(self, lab: Lab) -> None:
        self.addresses = {h.name: h.address for h in lab.hosts}
        self.samples: list[tuple[float, str, str]] = []  # (time, host, body or "DOWN")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            for name, address in self.addresses.items():
                try:
                    with urllib.request.urlopen(f"http://{address}:8080/", timeout=0.5) as r:
                        body = r.read().decode().strip()
                except (urllib.error.URLError, OSError, http.client.HTTPException):
                    body = "DOWN"  # a container stopped mid-answer cuts its reply short
                self.samples.append((now, name, body))
            time.sleep(max(0.0, 0.05 - (time.monotonic() - now)))

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def max_down_at_once(self) -> int:
        rounds: dict[float, int] = {}
        for moment, _, body in self.samples:
            rounds[moment] = rounds.get(moment, 0) + (body == "DOWN")
        return max(rounds.values(), default=0)

    def first_seen(self, body: str) -> dict[str, float]:
        seen: dict[str, float] = {}
        for moment, host, text in self.samples:
            if text == body:
                seen.setdefault(host, moment)
        return seen


def test_waves_and_batches_keep_the_service_up(lab: Lab, playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab.registry, "v2"))
    with Poller(lab) as poller:
        fleet("apply", "--yes", str(playbook), check_rc=0)
        time.sleep(0.3)
    assert poller.max_down_at_once() <= 1  # batch: 1
    first_v2 = poller.first_seen("v2")
    assert set(first_v2) == {h.name for h in lab.hosts}
    cloud_of = {h.name: h.labels["cloud"] for h in lab.hosts}
    order = [cloud_of[h] for h in sorted(first_v2, key=first_v2.__getitem__)]
    wave_order = list(dict.fromkeys(h.labels["cloud"] for h in lab.hosts))
    assert order == sorted(order, key=wave_order.index), order
    last = {host: body for _, host, body in poller.samples}
    assert set(last.values()) == {"v2"}


def _container_ids(lab: Lab) -> dict[str, str]:
    return {h.name: docker(lab, h.name, "ps", "-q", "--filter", f"name={PROJECT}-web-1").strip()
            for h in lab.hosts}


def test_a_broken_canary_returns_and_nothing_else_is_touched(lab: Lab, playbook: Path) -> None:
    before = _container_ids(lab)
    write_playbook(playbook, PROJECT, lab.inventory_path,
                   web(lab.registry, "v3", canary=1, canary_wait="2s"))
    result = fleet_json("apply", "--yes", str(playbook), check_rc=1)
    canary = lab.hosts[0].name
    outcomes = {h["host"]: h["services"][0] for h in result["hosts"]}
    assert outcomes[canary]["outcome"] == "rolled-back"
    assert "unhealthy" in outcomes[canary]["detail"] and "404" in outcomes[canary]["detail"]
    assert all(o["outcome"] == "untouched" for h, o in outcomes.items() if h != canary)
    assert "max_failures" in result["stopped"]
    after = _container_ids(lab)
    assert {h: i for h, i in after.items() if h != canary} == {
        h: i for h, i in before.items() if h != canary}
    for host in lab.hosts:
        with urllib.request.urlopen(f"http://{host.address}:8080/", timeout=5) as response:
            assert response.read().strip() == b"v1"


def test_hosts_changed_before_a_failure_are_rolled_back(lab: Lab, playbook: Path) -> None:
    # v2's healthcheck fails on the second host of the first wave only (a host-specific
    # template): the rollout fails there, and the first host (already on v2) returns to v1.
    first, second = [h.name for h in lab.hosts if h.labels["cloud"] == lab.hosts[0].labels[
        "cloud"]][:2]
    data = web(lab.registry, "v2")
    data["web"]["healthcheck"]["test"] = [
        "CMD-SHELL", f"{{{{ 'exit 1' if host.name == '{second}' else "
                     "'wget -qO- http://127.0.0.1:8080/health' }}"]
    write_playbook(playbook, PROJECT, lab.inventory_path, data)
    result = fleet_json("apply", "--yes", str(playbook), check_rc=1)
    outcomes = {h["host"]: h["services"][0] for h in result["hosts"]}
    assert outcomes[first]["outcome"] == "rolled-back"
    assert outcomes[second]["outcome"] == "rolled-back"  # its own replacement was undone
    assert "unhealthy" in outcomes[second]["detail"]
    assert all(o["outcome"] == "untouched" for h, o in outcomes.items()
               if h not in (first, second))
    assert _pages(lab) == {"v1"}
    history = fleet_json("history", "--service", "web", "--limit", first, str(playbook))
    assert [e["outcome"] for e in history["hosts"][0]["entries"]][-3:] == [
        "ok", "rolled-back", "ok"]


def test_a_conflict_blocks_its_host_only(lab: Lab, playbook: Path) -> None:
    blocked = lab.hosts[1].name
    docker(lab, blocked, "rm", "-f", f"{PROJECT}-web-1")
    docker(lab, blocked, "run", "-d", "--name", "squatter", "-p", "8080:8080",
           f"{lab.registry}/demo/web:v1")
    try:
        write_playbook(playbook, PROJECT, lab.inventory_path, web(lab.registry, "v2"))
        result = fleet_json("apply", "--yes", str(playbook), check_rc=1)
        outcomes = {h["host"]: h["services"][0]["outcome"] for h in result["hosts"]}
        assert outcomes.pop(blocked) == "blocked"
        assert set(outcomes.values()) == {"changed"}
    finally:
        lab_exec(lab, blocked, ["docker", "rm", "-f", "squatter"])


def test_a_killed_controller_leaves_nothing_apply_cannot_converge(lab: Lab,
                                                                  playbook: Path) -> None:
    # start-first needs no fixed host port to be free twice: publish an ephemeral one.
    for version in ("v1", "v2"):
        data = web(lab.registry, version, order="start-first")
        data["web"]["ports"] = ["8080"]
        write_playbook(playbook, PROJECT, lab.inventory_path, data)
        if version == "v1":
            fleet("apply", "--yes", str(playbook), check_rc=0)
    process = subprocess.Popen([sys.executable, "-m", "fleet", "apply", "--yes", str(playbook)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed at a known point: mid-replacement, when a new container stands under its
    # temporary name beside the old one on some host.
    caught, where = "", ""
    deadline = time.monotonic() + 120
    while not caught and time.monotonic() < deadline and process.poll() is None:
        for host in lab.hosts:
            names = docker(lab, host.name, "ps", "-a", "--format", "{{.Names}}").split()
            caught = next((n for n in names if n.startswith(f"{PROJECT}-web-1--r")), "")
            if caught:
                where = host.name
                break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert caught, "the apply finished before it could be killed mid-replacement"
    # The journal was written before the change began: it shows what was under way.
    history = fleet_json("history", str(playbook), check_rc=0)
    last = next(h["entries"] for h in history["hosts"] if h["host"] == where)[-1]
    assert (last["image"].rsplit(":", 1)[-1], last["outcome"]) == ("v2", "started"), last
    fleet("apply", "--yes", str(playbook), check_rc=0)
    check = fleet_json("check", str(playbook), check_rc=0)
    assert check["in_sync"] is True
    for host in lab.hosts:
        names = docker(lab, host.name, "ps", "-a", "--format", "{{.Names}}").split()
        assert [n for n in names if n.startswith(PROJECT)] == [f"{PROJECT}-web-1"], names


def _pages(lab: Lab) -> set[str]:
    pages = set()
    for host in lab.hosts:
        with urllib.request.urlopen(f"http://{host.address}:8080/", timeout=5) as response:
            pages.add(response.read().decode().strip())
    return pages


def test_rollback_returns_to_the_previous_revision_and_history_shows_it(lab: Lab,
                                                                         playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab.registry, "v2", batch="50%"))
    fleet("apply", "--yes", str(playbook), check_rc=0)
    assert _pages(lab) == {"v2"}
    result = fleet_json("rollback", "--service", "web", "--yes", str(playbook), check_rc=0)
    assert result["rolled_back"] is True
    assert _pages(lab) == {"v1"}
    history = fleet_json("history", "--service", "web", str(playbook), check_rc=0)
    for host in history["hosts"]:
        rows = [(e["command"], e["image"].rsplit(":", 1)[-1], e["outcome"])
                for e in host["entries"]]
        assert rows[-3:] == [("apply", "v1", "ok"), ("apply", "v2", "ok"),
                             ("rollback", "v1", "ok")], rows
        made = [e["revision"] for e in host["entries"] if e["outcome"] == "ok"]
        assert made == sorted(set(made)), made  # a revision number is never reused
    # --to goes to a named revision: back to v2 (revision numbers are per host, so one host).
    first = history["hosts"][0]
    v2 = [e["revision"] for e in first["entries"]
          if e["command"] == "apply" and e["image"].endswith(":v2") and e["outcome"] == "ok"][-1]
    fleet("rollback", "--service", "web", "--to", str(v2), "--limit", first["host"], "--yes",
          str(playbook), check_rc=0)
    assert _pages_of(lab, first["host"]) == ["v2"]
    refused = fleet("rollback", "--service", "web", "--to", "99", "--yes", str(playbook),
                    check_rc=1)
    assert "no successful revision 99" in refused.stderr


def test_a_second_apply_is_refused_while_one_runs_then_waits_its_turn(lab: Lab,
                                                                      playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab.registry, "v2", monitor="2s"))
    first = subprocess.Popen([sys.executable, "-m", "fleet", "apply", "--yes", str(playbook)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = fleet_json("lock", "status", str(playbook))
            if all(h["lock"] for h in status["hosts"]):
                break
            time.sleep(0.2)
        refused = fleet("apply", "--yes", str(playbook), check_rc=1)
        assert "locked by" in refused.stderr and "(apply, pid" in refused.stderr
        waited = fleet("apply", "--yes", "--lock-wait", "3m", str(playbook), check_rc=0)
        assert first.poll() is not None, "the waiting apply ran before the first one ended"
        assert "waiting for the lock" in waited.stderr
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0
    assert fleet_json("lock", "status", str(playbook))["hosts"][0]["lock"] is None


def test_ctrl_c_settles_the_batch_in_flight_and_starts_no_new_one(lab: Lab,
                                                                  playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab.registry, "v2", monitor="2s"))
    process = subprocess.Popen([sys.executable, "-m", "fleet", "apply", "--yes", "--json",
                                str(playbook)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "v2" not in [_page_or_down(lab, h.name)
                                                        for h in lab.hosts]:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert "finishing the batch in flight" in stderr
    import json

    result = json.loads(stdout)
    assert result["interrupted"] is True
    outcomes = {h["host"]: h["services"][0]["outcome"] for h in result["hosts"]}
    assert "untouched" in outcomes.values() and "changed" in outcomes.values()
    pages = {h.name: p for h in lab.hosts for p in _pages_of(lab, h.name)}
    for host, outcome in outcomes.items():
        assert pages[host] == ("v2" if outcome == "changed" else "v1"), (host, outcome)
    fleet("apply", "--yes", str(playbook), check_rc=0)
    assert _pages(lab) == {"v2"}


def _page_or_down(lab: Lab, host: str) -> str:
    try:
        return _pages_of(lab, host)[0]
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return "DOWN"


def _pages_of(lab: Lab, host: str) -> list[str]:
    with urllib.request.urlopen(f"http://{lab.host(host).address}:8080/", timeout=5) as response:
        return [response.read().decode().strip()]
