"""Faults during a rolling apply, end to end on the lab: a host's network cut, its sshd or
dockerd killed, the registry down, a host on a slow link, a host whose disk is full, the
controller terminated.

For each: the run ends in bounded time with a report per host, every host still runs its
replica (old or new version), a foreign container is never touched, and a re-run converges
with no duplicates or leftovers.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_LAB_DIR, TEST_LAB_HOSTS, TEST_LAB_SUBNET
from e2e_helpers import docker, fleet, write_playbook

from fleet.lab import Lab, lab_exec, lab_up
from fleet.lab.daemons import in_host, sshd_answers, start_dockerd
from fleet.lab.images import ImageSpec, app_layer, base_layer, write_docker_archive
from fleet.lab.state import HostState, read_state

PROJECT = "e2efault"
FOREIGN = "not-fleets"
RUN_BOUND = 150.0  # seconds any faulty run may take, keepalive detection included


@pytest.fixture(scope="module")
def lab(lab: Lab) -> Lab:
    """Every other host of the session's lab, one per cloud and region pair at most: enough
    for two batches and a fault beside them, at half the time."""
    return dataclasses.replace(lab, hosts=lab.hosts[::2])


def web(lab: Lab, version: str, batch: int | str = "50%") -> dict[str, Any]:
    return {"web": {
        "image": f"{lab.registry}/demo/web:{version}",
        "hosts": ",".join(h.name for h in lab.hosts),
        "ports": ["8080:8080"],
        "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"],
                        "interval": "500ms", "retries": 2},
        "update": {"batch": batch, "monitor": "1s", "timeout": "20s", "on_failure": "continue"},
    }}


def restore(lab: Lab) -> None:
    """Bring every daemon and link of the lab back (lab up repairs what it finds broken)."""
    state = read_state(lab.dir)
    assert state is not None
    for host in state.hosts:
        subprocess.run(["ip", "link", "set", host.veth, "up"], check=False)
        subprocess.run(["tc", "qdisc", "del", "dev", host.veth, "root"], check=False,
                       capture_output=True)
    # A link just brought up may take a moment to answer; lab up would rebuild a host
    # whose sshd does not answer at once (its daemons restarted, its containers too).
    deadline = time.monotonic() + 10
    for host in state.hosts:
        while not sshd_answers(host.address, timeout=1.0) and time.monotonic() < deadline:
            time.sleep(0.1)
    lab_up(TEST_LAB_DIR, hosts=TEST_LAB_HOSTS, subnet=TEST_LAB_SUBNET)


@pytest.fixture()
def playbook(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    path = write_playbook(tmp_path / "faults.yml", PROJECT, lab.inventory_path,
                          web(lab, "v1"))
    fleet("apply", "--yes", str(path), check_rc=0)
    for host in lab.hosts:
        lab_exec(lab, host.name, ["docker", "rm", "-f", FOREIGN])
        docker(lab, host.name, "run", "-d", "--name", FOREIGN, f"{lab.registry}/demo/web:v1")
    yield path
    restore(lab)
    fleet("apply", "--yes", str(write_playbook(tmp_path / "empty.yml", PROJECT,
                                               lab.inventory_path, {})))
    for host in lab.hosts:
        lab_exec(lab, host.name, ["docker", "rm", "-f", FOREIGN])


def host_state(lab: Lab, name: str) -> HostState:
    state = read_state(lab.dir)
    assert state is not None
    return next(h for h in state.hosts if h.name == name)


def page(lab: Lab, host: str) -> str:
    try:
        with urllib.request.urlopen(f"http://{lab.host(host).address}:8080/",
                                    timeout=2) as response:
            return str(response.read().decode().strip())
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return "DOWN"


def kill_in_host(lab: Lab, host: str, program: str) -> None:
    """SIGKILL every `program` process in the host's network namespace (sessions included)."""
    netns = host_state(lab, host).netns
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          check=True).stdout.split()
    for pid in pids:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == program:
            os.kill(int(pid), signal.SIGKILL)


def kill_registry(lab: Lab) -> None:
    state = read_state(lab.dir)
    assert state is not None and state.registry_process is not None
    os.kill(state.registry_process.pid, signal.SIGKILL)


def start_apply(playbook: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fleet", "apply", "--yes", "--json",
                             str(playbook)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition: Callable[[], str | None], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the awaited moment never came")


def first_with(lab: Lab, body: str) -> Callable[[], str | None]:
    return lambda: next((h.name for h in lab.hosts if page(lab, h.name) == body), None)


def finish(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    started = time.monotonic()
    stdout, stderr = process.communicate(timeout=RUN_BOUND)
    assert time.monotonic() - started < RUN_BOUND
    assert "Traceback" not in stderr, stderr
    return process.returncode, json.loads(stdout), stderr


def outcomes(result: dict[str, Any]) -> dict[str, str]:
    """Host -> its outcome in an apply's JSON (unreachable hosts included)."""
    found = {h["host"]: h["services"][0]["outcome"] for h in result["hosts"] if h["services"]}
    found.update({u["host"]: "unreachable" for u in result["unreachable"]})
    return found


def assert_converges(lab: Lab, playbook: Path) -> None:
    """After the fault is repaired: apply converges, check is clean, nothing doubled."""
    fleet("apply", "--yes", str(playbook), check_rc=0)
    fleet("check", str(playbook), check_rc=0)
    for host in lab.hosts:
        names = docker(lab, host.name, "ps", "-a", "--format", "{{.Names}}").split()
        ours = sorted(n for n in names if n.startswith(f"{PROJECT}-"))
        assert ours == [f"{PROJECT}-web-1"], (host.name, names)
        assert FOREIGN in names
        assert page(lab, host.name) == "v2"


def assert_still_serving(lab: Lab, except_hosts: set[str]) -> None:
    for host in lab.hosts:
        if host.name in except_hosts:
            continue
        assert page(lab, host.name) in ("v1", "v2"), host.name
        state = docker(lab, host.name, "inspect", "-f", "{{.State.Running}}", FOREIGN).strip()
        assert state == "true", host.name


def test_a_host_cut_off_mid_rollout_fails_alone(lab: Lab, playbook: Path) -> None:
    # One host at a time, so the cut host is not mid-swap (then it could be left with its
    # old container stopped and no way for fleet to reach it: the re-run heals that).
    # The waves pin the order: the victim is the last host and cannot have started.
    first, victim = lab.hosts[0].name, lab.hosts[-1].name
    spec = web(lab, "v2", batch=1)
    spec["web"]["update"]["waves"] = [h.name for h in lab.hosts]
    write_playbook(playbook, PROJECT, lab.inventory_path, spec)
    process = start_apply(playbook)
    wait_for(lambda: first if page(lab, first) == "v2" else None)
    subprocess.run(["ip", "link", "set", host_state(lab, victim).veth, "down"], check=True)
    code, result, _ = finish(process)
    assert code == 1
    found = outcomes(result)
    assert found[victim] in ("failed", "unreachable", "blocked"), found
    assert found[first] == "changed", found
    assert_still_serving(lab, {victim})
    restore(lab)
    # its replica still runs (after a daemon restart by the lab's repair, once it is back)
    wait_for(lambda: victim if page(lab, victim) in ("v1", "v2") else None, timeout=30)
    assert_converges(lab, playbook)


@pytest.mark.parametrize("program", ["sshd", "dockerd"])
def test_a_daemon_killed_on_the_host_being_replaced(lab: Lab, playbook: Path,
                                                    program: str) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v2"))
    process = start_apply(playbook)
    victim = wait_for(first_with(lab, "DOWN"))  # stop-first: its swap is under way
    kill_in_host(lab, victim, program)
    code, result, _ = finish(process)
    found = outcomes(result)
    assert code == 1 and found[victim] != "changed", found
    assert_still_serving(lab, {victim})
    restore(lab)
    assert_converges(lab, playbook)


def test_the_registry_down_while_pulling_changes_nothing(lab: Lab, playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v3-missing"))
    kill_registry(lab)
    code, result, _ = finish(start_apply(playbook))
    assert code == 1
    assert set(outcomes(result).values()) <= {"blocked", "failed"}, result
    assert {page(lab, h.name) for h in lab.hosts} == {"v1"}
    assert_still_serving(lab, set())
    restore(lab)
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v2"))
    assert_converges(lab, playbook)


def test_a_host_on_a_slow_link_still_converges(lab: Lab, playbook: Path) -> None:
    slow = lab.hosts[-1].name
    subprocess.run(["tc", "qdisc", "add", "dev", host_state(lab, slow).veth, "root", "tbf",
                    "rate", "256kbit", "burst", "16kbit", "latency", "3s"], check=True)
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v2"))
    code, result, stderr = finish(start_apply(playbook))
    assert code == 0, stderr
    assert set(outcomes(result).values()) == {"changed"}
    assert page(lab, slow) == "v2"
    restore(lab)
    assert_converges(lab, playbook)


def test_sigterm_settles_the_batch_in_flight_like_ctrl_c(lab: Lab, playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v2"))
    process = start_apply(playbook)
    wait_for(first_with(lab, "v2"))
    process.send_signal(signal.SIGTERM)
    code, result, stderr = finish(process)
    assert code == 1 and result["interrupted"] is True, stderr
    found = outcomes(result)
    assert "untouched" in found.values() and "changed" in found.values()
    for host, outcome in found.items():
        assert page(lab, host) == ("v2" if outcome == "changed" else "v1"), (host, outcome)
    assert_converges(lab, playbook)


def _restart_dockerd_on_small_disk(lab: Lab, host: str, size: str) -> None:
    """The host's dockerd restarted on a fresh tmpfs of `size` at /var/lib/docker, so that its
    disk can be filled without touching the machine's."""
    state = host_state(lab, host)
    assert state.dockerd is not None
    pid = state.dockerd.pid
    os.kill(pid, signal.SIGTERM)  # a clean stop: containerd and shims go too
    wait_for(lambda: None if _alive(pid) else "stopped", timeout=60)
    subprocess.run(in_host(state, ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                   "/var/lib/docker"]), check=True)
    start_dockerd(state, lab.dir / "hosts" / host, lab.registry)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _a_full_disk_blocks_that_host_only(lab: Lab, playbook: Path,
                                       v2: dict[str, Any]) -> str:
    """v1 on a host whose disk is then filled, and the playbook moved to `v2`: that host's
    error says why, the others change, its old container keeps serving; once the disk has
    room, apply converges. The host."""
    full = lab.hosts[-1].name
    _restart_dockerd_on_small_disk(lab, full, "48m")
    docker(lab, full, "run", "-d", "--name", FOREIGN, f"{lab.registry}/demo/web:v1")
    fleet("apply", "--yes", str(playbook), check_rc=0)  # v1 again on the new, empty disk
    # Fill the disk: v2's image has no room.
    lab_exec(lab, full, ["sh", "-c", "dd if=/dev/zero of=/var/lib/docker/filler bs=1M "
                                     "2>/dev/null; true"])
    write_playbook(playbook, PROJECT, lab.inventory_path, v2)
    code, result, _ = finish(start_apply(playbook))
    assert code == 1
    found = outcomes(result)
    assert found[full] in ("blocked", "failed"), found
    error = next(h["error"] for h in result["hosts"] if h["host"] == full)
    assert "no space left on device" in error.lower(), error
    assert {o for h, o in found.items() if h != full} == {"changed"}, found
    assert page(lab, full) == "v1"  # the old container keeps serving
    assert_still_serving(lab, set())
    lab_exec(lab, full, ["rm", "-f", "/var/lib/docker/filler"])
    assert_converges(lab, playbook)
    return full


def test_a_full_disk_during_the_pull_blocks_that_host_only(lab: Lab, playbook: Path) -> None:
    _a_full_disk_blocks_that_host_only(lab, playbook, web(lab, "v2"))


def test_a_corrupted_journal_is_read_around_and_appended_to(lab: Lab, playbook: Path) -> None:
    torn = lab.hosts[0].name
    journal = lab.dir / "hosts" / torn / "root" / ".fleet" / PROJECT / "journal.jsonl"
    with journal.open("ab") as damage:  # a torn last line, then garbage
        damage.write(b'{"command": "apply", "service": "web", "rev')
        damage.write(b"\n\x00\xff not json at all\n[1, 2\n")
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v2"))
    code, _, stderr = finish(start_apply(playbook))
    assert code == 0, stderr
    assert f"warning: {torn}: " in stderr and "skipped" in stderr
    history = json.loads(fleet("history", "--json", str(playbook), check_rc=0).stdout)
    entries = next(h["entries"] for h in history["hosts"] if h["host"] == torn)
    assert [(e["image"].rsplit(":", 1)[-1], e["outcome"]) for e in entries][-2:] == [
        ("v1", "ok"), ("v2", "ok")]
    made = [e["revision"] for e in entries if e["outcome"] == "ok"]
    assert made == sorted(set(made)), made  # no revision number made twice
    assert_converges(lab, playbook)


def test_sshd_killed_during_a_rollback_fails_that_host_alone(lab: Lab, playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v2"))
    fleet("apply", "--yes", str(playbook), check_rc=0)
    process = subprocess.Popen([sys.executable, "-m", "fleet", "rollback", "--service", "web",
                                "--yes", "--json", str(playbook)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    victim = wait_for(first_with(lab, "DOWN"))  # its return to v1 is under way
    kill_in_host(lab, victim, "sshd")
    code, result, _ = finish(process)
    found = outcomes(result)
    assert code == 1 and result["rolled_back"] is False and found[victim] != "changed", found
    assert_still_serving(lab, {victim})
    restore(lab)
    returned = {h: container_id(lab, h) for h, outcome in found.items() if outcome == "changed"}
    assert returned, found
    # Run again, the rollback keeps its target: the victim returns to v1, the hosts already
    # returned are left alone (not sent forward to v2).
    again = fleet("rollback", "--service", "web", "--yes", "--json", str(playbook), check_rc=0)
    assert json.loads(again.stdout)["rolled_back"] is True
    assert {h.name: page(lab, h.name) for h in lab.hosts} == {h.name: "v1" for h in lab.hosts}
    assert {h: container_id(lab, h) for h in returned} == returned
    assert_converges(lab, playbook)  # apply converges to the playbook (v2) from either


def container_id(lab: Lab, host: str) -> str:
    return docker(lab, host, "inspect", "-f", "{{.Id}}", f"{PROJECT}-web-1").strip()


def test_a_full_disk_during_an_image_load_blocks_that_host_only(lab: Lab, playbook: Path,
                                                                 tmp_path: Path) -> None:
    """The same with v2 delivered from the controller (an archive): the host's daemon
    refuses the load."""
    spec = ImageSpec("demo/web", "v2", "web")
    write_docker_archive(tmp_path / "web-v2.tar", spec, "e2e-faults/web:v2",
                         [base_layer(), app_layer(spec)])
    services = web(lab, "v2")
    services["web"].update(image="e2e-faults/web:v2", image_source={"archive": "web-v2.tar"})
    full = _a_full_disk_blocks_that_host_only(lab, playbook, services)
    assert page(lab, full) == "v2"
