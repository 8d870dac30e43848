"""One lab host: observe it, build it, tear it down."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from fleet.lab import network
from fleet.lab.daemons import (
    docker_socket,
    dockerd_answers,
    sshd_answers,
    start_dockerd,
    start_sshd,
)
from fleet.lab.inventory import ensure_key
from fleet.lab.leftovers import HostHealth, select_processes
from fleet.lab.network import Link, netns_path
from fleet.lab.spec import LabHostSpec
from fleet.lab.state import HostState
from fleet.lab.system import is_alive, namespace_inode, process_table, terminate

Report = Callable[[str], None]


def host_dir(lab_dir: Path, name: str) -> Path:
    return lab_dir / "hosts" / name


def home_dir(lab_dir: Path, name: str) -> Path:
    """Bound over /root inside the host (see network.create_mount_ns)."""
    return host_dir(lab_dir, name) / "root"


def mount_ns_file(lab_dir: Path, name: str) -> Path:
    return lab_dir / "ns" / name


def uts_ns_file(lab_dir: Path, name: str) -> Path:
    return lab_dir / "ns" / f"{name}.uts"


def desired_state(lab_dir: Path, plan: LabHostSpec) -> HostState:
    return HostState(
        name=plan.name,
        address=plan.address,
        labels=dict(plan.labels),
        netns=plan.netns,
        veth=plan.veth,
        mount_ns=str(mount_ns_file(lab_dir, plan.name)),
        uts_ns=str(uts_ns_file(lab_dir, plan.name)),
        home=str(home_dir(lab_dir, plan.name)),
    )


def orphan_state(lab_dir: Path, lab: str, netns: str) -> HostState:
    """What can be known of a host from its namespace name alone (enough to tear it down)."""
    name = netns.removeprefix(f"fleet-{lab}-")
    return HostState(
        name,
        "",
        {},
        netns,
        veth="",
        mount_ns=str(mount_ns_file(lab_dir, name)),
        uts_ns=str(uts_ns_file(lab_dir, name)),
    )


def observe(
    plan: LabHostSpec, recorded: HostState | None, lab_dir: Path, bridge: str,
    links: dict[str, Link], simulated: bool = False,
) -> HostHealth:
    """What works of the host. A simulated host's Docker socket is the simulator's: it is
    checked (and bound again if need be) for all hosts at once, after them."""
    wanted = desired_state(lab_dir, plan)
    current = recorded is not None and (
        (
            recorded.address,
            recorded.netns,
            recorded.veth,
            recorded.mount_ns,
            recorded.uts_ns,
            recorded.labels,
            recorded.home,
        )
        == (
            wanted.address,
            wanted.netns,
            wanted.veth,
            wanted.mount_ns,
            wanted.uts_ns,
            wanted.labels,
            wanted.home,
        )
    )
    network_ok = network.host_network_ok(plan, bridge, links)
    return HostHealth(
        network=network_ok,
        mount_ns=network.ns_file_ok(Path(wanted.mount_ns))
        and network.ns_file_ok(Path(wanted.uts_ns)),
        sshd_running=recorded is not None and is_alive(recorded.sshd),
        dockerd_running=simulated or (recorded is not None and is_alive(recorded.dockerd)),
        # a second, longer try: a loaded machine's sshd may be slow, and a rebuild would
        # restart the host's daemons (and stop its containers) for nothing
        sshd_answers=network_ok and (sshd_answers(plan.address, timeout=1.0)
                                     or sshd_answers(plan.address, timeout=3.0)),
        dockerd_answers=simulated or dockerd_answers(docker_socket(host_dir(lab_dir,
                                                                            plan.name))),
        config_current=current,
    )


def build(
    plan: LabHostSpec, lab_dir: Path, bridge: str, subnet: str, registry: str, report: Report,
    simulated: bool = False,
) -> HostState:
    """Create the host from nothing (after `teardown`); its key and Docker data are kept.
    A simulated host gets no dockerd: the simulator binds its socket afterwards."""
    state = desired_state(lab_dir, plan)
    directory = host_dir(lab_dir, plan.name)
    directory.mkdir(parents=True, exist_ok=True)
    ensure_key(directory / "ssh_host_ed25519_key", comment=f"root@{plan.name}")
    # /run is runtime state, as on a reboot: stale pid files of killed daemons would otherwise
    # stop dockerd from starting (a dead pid may survive as a zombie when nothing reaps it).
    shutil.rmtree(directory / "run", ignore_errors=True)
    report("network")
    network.create_host_network(plan, bridge, subnet)
    network.create_mount_ns(Path(state.mount_ns), directory)
    network.create_uts_ns(Path(state.uts_ns), plan.name)
    report("sshd")
    state.sshd = start_sshd(state, directory, lab_dir / "authorized_keys")
    if not simulated:
        report("dockerd")
        state.dockerd = start_dockerd(state, directory, registry)
    return state


def host_public_key(lab_dir: Path, name: str) -> str:
    return (host_dir(lab_dir, name) / "ssh_host_ed25519_key.pub").read_text().strip()


def protected() -> tuple[set[int], set[int]]:
    """Namespaces and pids a teardown must never touch: the root's and our own lineage."""
    namespaces = {
        inode
        for pid in ("1", "self")
        for kind in ("net", "mnt")
        if (inode := namespace_inode(Path("/proc") / pid / "ns" / kind)) is not None
    }
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return namespaces, pids


def stop_processes(namespace_files: list[Path], directory: Path) -> None:
    """Stop every process of a host (or of a whole lab, given the lab dir): dockerd first, with
    time to stop its containers; whatever is left after that gets SIGTERM, then SIGKILL."""
    namespaces = {inode for f in namespace_files if (inode := namespace_inode(f)) is not None}
    protected_namespaces, protected_pids = protected()
    for daemon_first in (True, False):
        table = process_table()
        pids = select_processes(table, namespaces, directory, protected_namespaces, protected_pids)
        comm = {info.pid: info.comm for info in table}
        if daemon_first:
            pids = [pid for pid in pids if comm.get(pid) == "dockerd"]
        if pids:
            terminate(pids, grace=20.0 if daemon_first else 3.0)


def namespace_files(state: HostState, lab_dir: Path) -> list[Path]:
    return [netns_path(state.netns), Path(state.mount_ns), uts_ns_file(lab_dir, state.name)]


def remove_kernel_resources(state: HostState, lab_dir: Path) -> None:
    """The host's namespaces and veth (its processes stopped first)."""
    for ns_file in (Path(state.mount_ns), uts_ns_file(lab_dir, state.name)):
        network.delete_ns_file(ns_file)
    network.delete_netns(state.netns)
    network.delete_link(state.veth)


def teardown(state: HostState, lab_dir: Path) -> None:
    """Remove every kernel resource and process of the host; keep its files."""
    stop_processes(namespace_files(state, lab_dir), host_dir(lab_dir, state.name))
    remove_kernel_resources(state, lab_dir)
