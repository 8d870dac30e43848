"""Decisions about what already exists: reuse it, or clean it away (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fleet.lab.spec import LabHostSpec, bridge_name, is_lab_link, is_lab_netns
from fleet.lab.system import ProcessInfo

# Process names the lab starts, directly or through dockerd. Only these are ever matched by
# command line, so an editor or `tail -f` on a lab file is never killed.
DAEMON_COMMS = frozenset({"sshd", "dockerd", "containerd", "docker-registry", "registry"})
SIMULATOR_MODULE = "fleet.lab.simulator"  # a Python process: known by its module, not its name


def is_lab_daemon(info: ProcessInfo, directory: Path) -> bool:
    """A daemon the lab starts whose command line names a path inside `directory`."""
    started = info.comm in DAEMON_COMMS or (
        info.comm.startswith("python") and SIMULATOR_MODULE in info.argv)
    return started and refers_to(info.argv, directory)


@dataclass(frozen=True)
class HostHealth:
    """What was observed of one host before `up` decides what to do with it."""

    network: bool  # netns, veth on the bridge, address on eth0
    mount_ns: bool
    sshd_running: bool  # the recorded sshd is alive (same pid and start time)
    dockerd_running: bool
    sshd_answers: bool
    dockerd_answers: bool
    config_current: bool  # the recorded host matches the desired one (address, names)


def host_is_reusable(health: HostHealth) -> bool:
    """A host is kept only when every part works; anything less is rebuilt from scratch.

    Rebuilding one host costs a few seconds and its Docker data and SSH host key survive
    (they live in the host dir), so partial repairs are not worth their complexity.
    """
    return all(
        (
            health.config_current,
            health.network,
            health.mount_ns,
            health.sshd_running,
            health.dockerd_running,
            health.sshd_answers,
            health.dockerd_answers,
        )
    )


@dataclass(frozen=True)
class Cleanup:
    netns: list[str]  # namespaces of this lab that no desired host uses
    links: list[str]  # veths of this lab that no desired host uses


def plan_cleanup(
    lab: str, desired: Iterable[LabHostSpec], netns: Iterable[str], links: Iterable[str]
) -> Cleanup:
    """Kernel resources named after this lab that the desired lab does not use.

    They come from a crashed run or from a lab that shrank. Another lab's resources carry
    another lab id, and the machine's own carry no lab prefix: both are left alone.
    """
    hosts = list(desired)
    wanted_netns = {host.netns for host in hosts}
    wanted_links = {host.veth for host in hosts}
    return Cleanup(
        netns=sorted(n for n in netns if is_lab_netns(lab, n) and n not in wanted_netns),
        links=sorted(
            link
            for link in links
            if is_lab_link(lab, link) and link not in wanted_links and link != bridge_name(lab)
        ),
    )


def refers_to(argv: Iterable[str], directory: Path) -> bool:
    """Whether a command line names a path inside `directory` (not a sibling sharing a prefix:
    /var/lib/fleet-lab/x is inside /var/lib/fleet-lab, /var/lib/fleet-lab-test/x is not)."""
    prefix = f"{directory}/"
    return any(prefix in arg for arg in argv)


def select_processes(
    processes: Iterable[ProcessInfo],
    namespaces: set[int],
    directory: Path,
    protected_namespaces: set[int],
    protected_pids: set[int],
) -> list[int]:
    """Pids to stop so that nothing of a lab host (or of a whole lab) keeps running.

    Seeds: processes inside the host's namespaces, and lab daemons whose command line names the
    lab's directory (they outlive a deleted namespace). Then every process sharing a seed's
    namespaces, and all their descendants (container processes live in namespaces of their own).
    Namespaces of the root (`protected_namespaces`) never spread the selection, and
    `protected_pids` (ourselves, our parents) are never selected.
    """
    table = list(processes)
    spreading = set(namespaces) - protected_namespaces
    for info in table:
        if is_lab_daemon(info, directory):
            spreading |= {info.net_ns, info.mount_ns} - protected_namespaces
    selected = {
        info.pid
        for info in table
        if info.net_ns in spreading
        or info.mount_ns in spreading
        or is_lab_daemon(info, directory)
    }
    children: dict[int, list[int]] = {}
    for info in table:
        children.setdefault(info.ppid, []).append(info.pid)
    pending = list(selected)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in selected:
                selected.add(child)
                pending.append(child)
    return sorted(selected - protected_pids)
