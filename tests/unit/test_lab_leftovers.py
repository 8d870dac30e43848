"""What `fleet lab up` reuses, and what it cleans away."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleet.lab.leftovers import (
    HostHealth,
    host_is_reusable,
    is_lab_daemon,
    plan_cleanup,
    refers_to,
    select_processes,
)
from fleet.lab.spec import LabSpec, bridge_name, lab_id, plan_hosts
from fleet.lab.state import ProcessRecord
from fleet.lab.system import ProcessInfo, missing_packages

HEALTHY = HostHealth(True, True, True, True, True, True, True)


def test_a_fully_working_host_is_reused() -> None:
    assert host_is_reusable(HEALTHY)


@pytest.mark.parametrize("broken", list(HostHealth.__dataclass_fields__))
def test_any_broken_part_rebuilds_the_host(broken: str) -> None:
    assert not host_is_reusable(replace(HEALTHY, **{broken: False}))


def test_cleanup_takes_only_this_labs_unused_resources() -> None:
    spec = LabSpec(dir=Path("/var/lib/fleet-lab-test"), hosts=2)
    lab, other = lab_id(spec.dir), lab_id(Path("/var/lib/fleet-lab"))
    desired = plan_hosts(spec)
    netns = [
        *(h.netns for h in desired),
        f"fleet-{lab}-gcp-usc1-7",  # a host of a crashed, bigger run
        f"fleet-{other}-aws-use1-1",  # another lab's
        "cni-1234",  # not a lab's at all
    ]
    links = [
        "lo",
        "eth0",
        bridge_name(lab),
        bridge_name(other),
        *(h.veth for h in desired),
        f"flv{lab}n5",
        f"flv{other}n0",
    ]
    cleanup = plan_cleanup(lab, desired, netns, links)
    assert cleanup.netns == [f"fleet-{lab}-gcp-usc1-7"]
    assert cleanup.links == [f"flv{lab}n5"]


def test_sibling_dirs_are_not_inside_each_other() -> None:
    lab = Path("/var/lib/fleet-lab")
    assert refers_to(["sshd", "-f", "/var/lib/fleet-lab/hosts/a/sshd_config"], lab)
    assert refers_to(["dockerd", "--config-file=/var/lib/fleet-lab/x.json"], lab)
    assert not refers_to(["sshd", "-f", "/var/lib/fleet-lab-test/hosts/a/sshd_config"], lab)
    assert not refers_to(["fleet", "lab", "down", "--dir", "/var/lib/fleet-lab"], lab)


ROOT_NET, ROOT_MNT, HOST_NET, HOST_MNT, CONTAINER = 1, 2, 10, 11, 20


def proc(
    pid: int,
    ppid: int,
    comm: str,
    argv: tuple[str, ...] = (),
    net: int = ROOT_NET,
    mnt: int = ROOT_MNT,
) -> ProcessInfo:
    return ProcessInfo(pid, ppid, 1000 + pid, comm, argv or (comm,), net, mnt)


TABLE = [
    proc(1, 0, "init"),
    proc(50, 1, "pytest"),
    proc(100, 1, "sshd", ("/usr/sbin/sshd", "-D"), HOST_NET, HOST_MNT),
    proc(101, 100, "sshd", ("sshd: root@notty",), HOST_NET, HOST_MNT),
    proc(102, 101, "sleep", ("sleep", "100"), HOST_NET, HOST_MNT),
    proc(
        110,
        1,
        "dockerd",
        ("dockerd", "--config-file", "/lab/hosts/a/daemon.json"),
        HOST_NET,
        HOST_MNT,
    ),
    proc(111, 110, "containerd", net=HOST_NET, mnt=HOST_MNT),
    proc(120, 1, "containerd-shim", net=HOST_NET, mnt=HOST_MNT),
    proc(121, 120, "httpd", net=CONTAINER, mnt=CONTAINER),  # in the container's namespaces
    proc(200, 1, "sshd", ("/usr/sbin/sshd", "-D")),  # the machine's own sshd
    proc(201, 1, "vim", ("vim", "/lab/hosts/a/sshd_config")),
    proc(300, 1, "docker-registry", ("docker-registry", "serve", "/lab/registry/config.yml")),
]


def select(namespaces: set[int], directory: str, pids: set[int] = frozenset({50})) -> list[int]:
    return select_processes(TABLE, namespaces, Path(directory), {ROOT_NET, ROOT_MNT}, set(pids))


def test_host_processes_and_their_descendants_are_selected() -> None:
    assert select({HOST_NET, HOST_MNT}, "/lab/hosts/a") == [100, 101, 102, 110, 111, 120, 121]


def test_a_daemon_found_by_its_command_line_brings_its_namespaces() -> None:
    # The namespace files are gone (crash during down), but dockerd names the host dir.
    assert select(set(), "/lab/hosts/a") == [100, 101, 102, 110, 111, 120, 121]


def test_the_whole_lab_includes_the_registry_but_never_the_root() -> None:
    assert select(set(), "/lab") == [100, 101, 102, 110, 111, 120, 121, 300]
    assert 200 not in select({ROOT_NET, ROOT_MNT}, "/lab")


def test_protected_pids_are_never_selected() -> None:
    assert 102 not in select({HOST_NET}, "/lab/hosts/a", pids={50, 102})


def test_missing_tools_name_their_debian_packages() -> None:
    found: dict[str, str | None] = {"ip": "/usr/sbin/ip", "dockerd": None, "sshd": None}
    assert missing_packages(found, busybox_static=False) == [
        "busybox-static",
        "docker.io",
        "openssh-server",
    ]
    assert missing_packages({"ip": "/usr/sbin/ip"}, busybox_static=True) == []


def test_process_record_is_plain_data() -> None:
    assert ProcessRecord(5, 7) == ProcessRecord(5, 7)


def test_the_simulator_is_a_lab_daemon_of_its_own_lab_only() -> None:
    lab = Path("/var/lib/fleet-lab")
    argv = ("/venv/bin/python", "-m", "fleet.lab.simulator", f"{lab}/simulator/config.json")
    assert is_lab_daemon(proc(50, 1, "python", argv), lab)
    assert is_lab_daemon(proc(50, 1, "python", argv), lab / "simulator")
    assert not is_lab_daemon(proc(50, 1, "python", argv), Path("/var/lib/fleet-lab-test"))
    assert not is_lab_daemon(proc(51, 1, "vim", ("vim", f"{lab}/simulator/config.json")), lab)
