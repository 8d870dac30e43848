"""`up`, `down`, `status` and `exec` of a lab: the public API behind `fleet lab`."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from fleet.errors import LabError
from fleet.lab import hosts as lab_hosts
from fleet.lab import network
from fleet.lab.daemons import (
    SshdOptions,
    docker_socket,
    dockerd_answers,
    in_host,
    registry_answers,
    simulator_config,
    simulator_dir,
    simulator_log,
    sshd_answers,
    start_registry,
    start_simulator,
    start_sshd,
    wait_for_sockets,
)
from fleet.lab.images import DEMO_IMAGES, PROXY_IMAGE, seed_image
from fleet.lab.inventory import ensure_key, render_inventory, render_known_hosts, write_if_changed
from fleet.lab.leftovers import host_is_reusable, plan_cleanup
from fleet.lab.simulator.config import render_config
from fleet.lab.simulator.engine import Latencies
from fleet.lab.spec import (
    DEFAULT_CLOUDS,
    DEFAULT_DIR,
    DEFAULT_HOSTS,
    DEFAULT_SUBNET,
    LabHostSpec,
    LabSpec,
    bridge_address,
    bridge_name,
    is_lab_link,
    is_lab_netns,
    lab_id,
    plan_hosts,
    registry_address,
)
from fleet.lab.state import HostState, Lab, LabHost, LabState, lab_view, read_state, write_state
from fleet.lab.system import is_alive, preflight, terminate

# (subject, message, finished): subject is a host name, "registry" or "images".
Progress = Callable[[str, str, bool], None]
MAX_PARALLEL_HOSTS = 8  # more only makes the daemons fight over two cores while they start
MAX_PARALLEL_SIMULATED = 16  # a simulated host is a few short commands and an sshd
# The root namespace's neighbour table must hold every lab host at once (the kernel's default
# hard limit is 1,024 entries, beyond which new hosts are unreachable).
NEIGHBOUR_SLACK = 1024


def _quiet(subject: str, message: str, finished: bool) -> None:
    pass


@contextmanager
def _locked(lab_dir: Path) -> Iterator[None]:
    """One `up` or `down` at a time per lab."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    with (lab_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def lab_up(
    dir: Path | str = DEFAULT_DIR,
    hosts: int = DEFAULT_HOSTS,
    clouds: Sequence[str] = DEFAULT_CLOUDS,
    subnet: str = DEFAULT_SUBNET,
    progress: Progress | None = None,
    simulated: bool = False,
    latencies: Latencies | None = None,
) -> Lab:
    """Bring the lab at `dir` to `hosts` working hosts, reusing what works and rebuilding the
    rest (leftovers of a crashed run included). Raises LabError.

    `simulated` hosts have a real sshd each and one Engine API simulator for all their
    Docker sockets (fleet.lab.simulator), with `latencies` (its defaults if None)."""
    spec = LabSpec(Path(dir).resolve(), hosts, tuple(clouds), subnet, simulated)
    report = progress or _quiet
    plans = plan_hosts(spec)  # validates before touching anything
    preflight()
    with _locked(spec.dir):
        recorded = read_state(spec.dir)
        if recorded is not None and recorded.subnet != spec.subnet:
            raise LabError(
                f"the lab at {spec.dir} uses subnet {recorded.subnet}; "
                f"run `fleet lab down --dir {spec.dir}` before changing it"
            )
        if recorded is not None and recorded.simulated != spec.simulated:
            kind = "simulated" if recorded.simulated else "real"
            raise LabError(
                f"the lab at {spec.dir} has {kind} hosts; "
                f"run `fleet lab down --dir {spec.dir}` before changing that"
            )
        return _up(spec, plans, recorded, report, latencies or Latencies())


def _up(spec: LabSpec, plans: list[LabHostSpec], recorded: LabState | None,
        report: Progress, latencies: Latencies) -> Lab:
    lab, lab_dir = lab_id(spec.dir), spec.dir
    bridge = bridge_name(lab)
    network.check_subnet_free(spec.subnet, bridge)
    state = LabState(
        dir=str(lab_dir),
        lab_id=lab,
        subnet=spec.subnet,
        bridge=bridge,
        bridge_address=bridge_address(spec.subnet),
        registry=registry_address(spec.subnet),
        clouds=list(spec.clouds),
        registry_process=recorded.registry_process if recorded else None,
        hosts=[lab_hosts.desired_state(lab_dir, plan) for plan in plans],
        simulated=spec.simulated,
        simulator_process=recorded.simulator_process if recorded else None,
    )
    old_hosts = {host.name: host for host in recorded.hosts} if recorded else {}
    for host in state.hosts:  # keep the daemons' records until they are checked
        if host.name in old_hosts:
            host.sshd, host.dockerd = old_hosts[host.name].sshd, old_hosts[host.name].dockerd
    # Record the names before creating anything: `down` after a crash finds them all.
    wanted_names = {plan.name for plan in plans}
    dropped = [host for name, host in old_hosts.items() if name not in wanted_names]
    write_state(lab_dir, replace(state, hosts=[*state.hosts, *dropped]))

    for old in dropped:  # hosts of a bigger lab that this one no longer has
        report(old.name, "removing", False)
        lab_hosts.teardown(old, lab_dir)
    cleanup = plan_cleanup(lab, plans, network.list_netns(), [x.name for x in network.list_links()])
    for netns in cleanup.netns:  # hosts of a crashed run that recorded nothing about them
        orphan = lab_hosts.orphan_state(lab_dir, lab, netns)
        report(orphan.name, "removing leftovers", False)
        lab_hosts.teardown(orphan, lab_dir)
    for link in cleanup.links:
        network.delete_link(link)

    ensure_key(lab_dir / "id_ed25519", comment=f"fleet-lab@{lab}")
    write_if_changed(lab_dir / "authorized_keys", (lab_dir / "id_ed25519.pub").read_text(), 0o600)
    network.ensure_bridge(bridge, state.bridge_address, spec.subnet)
    network.ensure_neighbour_room(len(plans) + NEIGHBOUR_SLACK)
    network.ensure_private_dir(lab_dir / "ns")
    _ensure_registry(state, report)
    write_state(lab_dir, state)

    recorder = _StateRecorder(state)
    links = {link.name: link for link in network.list_links()}
    parallel = MAX_PARALLEL_SIMULATED if spec.simulated else MAX_PARALLEL_HOSTS
    with ThreadPoolExecutor(max_workers=min(parallel, len(plans)) + 1) as pool:
        images = pool.submit(_seed_images, state.registry, report)
        jobs: list[Future[None]] = [
            pool.submit(
                _ensure_host, plan, state, old_hosts.get(plan.name), links, recorder, report
            )
            for plan in plans
        ]
        errors = [str(job.exception()) for job in [images, *jobs] if job.exception()]
    if spec.simulated and not errors:
        try:
            _ensure_simulator(state, latencies, report)
        except LabError as exc:
            errors.append(str(exc))
    write_state(lab_dir, state)
    if errors:
        raise LabError("; ".join(errors))
    return _write_files(state)


def _ensure_registry(state: LabState, report: Progress) -> None:
    lab_dir = Path(state.dir)
    if is_alive(state.registry_process) and registry_answers(state.registry):
        report("registry", "running", True)
        return
    lab_hosts.stop_processes([], lab_dir / "registry")
    report("registry", "starting", False)
    state.registry_process = start_registry(lab_dir, state.registry)
    report("registry", "started", True)


def _ensure_simulator(state: LabState, latencies: Latencies, report: Progress) -> None:
    """One simulator for every host's socket: told of the current hosts (SIGHUP) when it
    runs, else started; then every socket must answer."""
    lab_dir = Path(state.dir)
    sockets = {host.name: docker_socket(lab_hosts.host_dir(lab_dir, host.name))
               for host in state.hosts}
    simulator_dir(lab_dir).mkdir(exist_ok=True)
    write_if_changed(simulator_config(lab_dir), render_config(state.registry, latencies, sockets))
    if is_alive(state.simulator_process) and state.simulator_process is not None:
        report("simulator", "reloading", False)
        os.kill(state.simulator_process.pid, signal.SIGHUP)
    else:
        lab_hosts.stop_processes([], simulator_dir(lab_dir))  # one of a crashed run
        report("simulator", "starting", False)
        state.simulator_process = start_simulator(lab_dir)
    wait_for_sockets(list(sockets.values()), state.simulator_process, simulator_log(lab_dir))
    report("simulator", f"serving {len(sockets)} hosts", True)


def _seed_images(registry: str, report: Progress) -> None:
    report("images", "seeding", False)
    pushed = [f"{i.repository}:{i.tag}" for i in (*DEMO_IMAGES, PROXY_IMAGE)
              if seed_image(registry, i)]
    report("images", f"pushed {', '.join(pushed)}" if pushed else "up to date", True)


class _StateRecorder:
    """Puts built hosts into the state and writes it, at most once a second: each write is
    O(hosts), and every name is on record before anything is built."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.written = 0.0

    def replace(self, built: HostState) -> None:
        with self.lock:
            self.state.hosts = [built if host.name == built.name else host
                                for host in self.state.hosts]
            if time.monotonic() - self.written >= 1.0:
                write_state(Path(self.state.dir), self.state)
                self.written = time.monotonic()


def _ensure_host(
    plan: LabHostSpec,
    state: LabState,
    recorded: HostState | None,
    links: dict[str, network.Link],
    recorder: _StateRecorder,
    report: Progress,
) -> None:
    lab_dir = Path(state.dir)
    health = lab_hosts.observe(plan, recorded, lab_dir, state.bridge, links, state.simulated)
    if host_is_reusable(health):
        report(plan.name, "running", True)
        return
    leftovers = recorded is not None or health.network or health.mount_ns or \
        network.netns_path(plan.netns).exists()
    for attempt in (1, 2):  # a daemon slow to start on a loaded machine gets a second try
        try:
            if leftovers:  # else nothing to clean (and scanning /proc per host is O(n²))
                report(plan.name, "cleaning leftovers", False)
                lab_hosts.teardown(recorded or lab_hosts.desired_state(lab_dir, plan), lab_dir)
            built = lab_hosts.build(
                plan,
                lab_dir,
                state.bridge,
                state.subnet,
                state.registry,
                lambda message: report(plan.name, message, False),
                simulated=state.simulated,
            )
            break
        except LabError as exc:
            if attempt == 2:
                raise LabError(f"{plan.name}: {exc}") from exc
            report(plan.name, f"retrying: {exc}", False)
            leftovers = True
    recorder.replace(built)
    report(plan.name, "started", True)


def _write_files(state: LabState) -> Lab:
    lab = lab_view(state)
    keys = [(host.address, lab_hosts.host_public_key(lab.dir, host.name)) for host in state.hosts]
    write_if_changed(lab.known_hosts, render_known_hosts(keys))
    write_if_changed(
        lab.inventory_path,
        render_inventory(lab.hosts, lab.ssh_key, lab.known_hosts, lab.registry),
    )
    return lab


def lab_down(
    dir: Path | str = DEFAULT_DIR, purge: bool = False, progress: Progress | None = None
) -> bool:
    """Stop and remove everything the lab at `dir` created; False if there was nothing.

    The lab dir keeps its keys and registry data (a later `up` is faster and its host keys
    stay the same) unless `purge`. Raises LabError.
    """
    lab_dir, report = Path(dir).resolve(), progress or _quiet
    preflight()
    lab = lab_id(lab_dir)
    with _locked(lab_dir):
        recorded = read_state(lab_dir)
        known = {host.netns: host for host in recorded.hosts} if recorded else {}
        for netns in network.list_netns():  # hosts of a run that crashed before recording them
            if is_lab_netns(lab, netns) and netns not in known:
                known[netns] = lab_hosts.orphan_state(lab_dir, lab, netns)
        found = bool(recorded or known)
        parallel = MAX_PARALLEL_SIMULATED if recorded and recorded.simulated \
            else MAX_PARALLEL_HOSTS
        for host in known.values():
            report(host.name, "stopping", False)
        # One pass over the process table for every host (one per host is O(n²) at scale).
        lab_hosts.stop_processes(
            [path for host in known.values() for path in lab_hosts.namespace_files(host, lab_dir)],
            lab_dir)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(lambda host: lab_hosts.remove_kernel_resources(host, lab_dir),
                          known.values()))
        lab_hosts.stop_processes([], lab_dir)  # the registry, and any daemon left astray
        for link in network.list_links():
            if is_lab_link(lab, link.name):
                found = True
                network.delete_link(link.name)
        for ns_file in (lab_dir / "ns").glob("*"):
            network.delete_ns_file(ns_file)
        network.release_private_dir(lab_dir / "ns")
        for host in known.values():
            report(host.name, "removed", True)
        runtime_files = (
            "hosts/*/run",
            "hosts/*/docker",
            "hosts/*/etc-docker",
            "hosts/*/root",
            "simulator",
            "state.json",
            "inventory.yml",
        )
        for runtime in runtime_files:
            for path in lab_dir.glob(runtime):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    if purge:
        shutil.rmtree(lab_dir, ignore_errors=True)
    return found


def lab_restart_sshd(dir: Path | str, host_name: str, options: SshdOptions) -> None:
    """Restart one host's sshd with `options` over the lab's sshd_config, e.g. to make it a
    hardened host ({"AllowTcpForwarding": "no"}, {"Subsystem": None}); {} restores the lab's
    own. Open SSH connections and the host's containers stay. Raises LabError."""
    lab_dir = Path(dir).resolve()
    with _locked(lab_dir):
        state = read_state(lab_dir)
        host = next((h for h in state.hosts if h.name == host_name), None) if state else None
        if state is None or host is None:
            raise LabError(f"no host {host_name!r} in the lab at {lab_dir}")
        if host.sshd is not None and is_alive(host.sshd):
            terminate([host.sshd.pid], grace=5.0)  # the listener only: sessions are children
        host.sshd = None
        write_state(lab_dir, state)
        host.sshd = start_sshd(host, lab_hosts.host_dir(lab_dir, host.name),
                               lab_dir / "authorized_keys", options)
        write_state(lab_dir, state)


@dataclass(frozen=True)
class HostStatus:
    host: LabHost
    sshd: bool
    dockerd: bool


@dataclass(frozen=True)
class LabStatus:
    lab: Lab
    registry: bool
    hosts: list[HostStatus]


def load_lab(dir: Path | str = DEFAULT_DIR) -> Lab:
    """The lab recorded at `dir` (as `lab_up` returned it). Raises LabError if there is none."""
    lab_dir = Path(dir).resolve()
    state = read_state(lab_dir)
    if state is None:
        raise LabError(f"no lab at {lab_dir}; bring one up with `fleet lab up --dir {lab_dir}`")
    return lab_view(state)


def lab_status(dir: Path | str = DEFAULT_DIR) -> LabStatus:
    lab = load_lab(dir)
    # Without the lab's bridge its addresses would be routed off the machine: don't probe them.
    routed = network.bridge_ok(bridge_name(lab_id(lab.dir)), bridge_address(lab.subnet))

    def probe(host: LabHost) -> HostStatus:
        socket = docker_socket(lab_hosts.host_dir(lab.dir, host.name))
        return HostStatus(host, routed and sshd_answers(host.address), dockerd_answers(socket))

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(probe, lab.hosts))
    return LabStatus(lab, routed and registry_answers(lab.registry), statuses)


def lab_exec(
    lab: Lab,
    host_name: str,
    argv: Sequence[str],
    input: str | None = None,
    timeout: float | None = 60,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside a lab host's namespaces (as its sshd would), e.g. to make drift by hand.

    The process sees the host's network, /var/run/docker.sock and /var/lib/docker (and
    not the caller's DOCKER_HOST, which a login there would not have either).
    """
    host = lab.host(host_name)
    state = HostState(
        host.name,
        host.address,
        host.labels,
        host.netns,
        veth="",
        mount_ns=str(lab_hosts.mount_ns_file(lab.dir, host.name)),
        uts_ns=str(lab_hosts.uts_ns_file(lab.dir, host.name)),
    )
    result = subprocess.run(
        in_host(state, list(argv)),
        input=input,
        env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise LabError(
            f"{host_name}: {argv[0]} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result
