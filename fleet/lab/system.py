"""Thin access to the machine: commands, the process table, signals, preflight checks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import LabError
from fleet.lab.state import ProcessRecord

# Each tool the lab runs, with the Debian package that provides it.
REQUIRED_TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "dockerd": "docker.io",
    "iptables": "iptables",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "docker-registry": "docker-registry",
}
BUSYBOX = Path("/bin/busybox")
TOOL_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def daemon_env() -> dict[str, str]:
    """A minimal environment for everything the lab starts.

    Proxy variables are left out on purpose: dockerd would send registry pulls through them,
    and lab traffic must stay on the lab's own addresses.
    """
    return {"PATH": ":".join(TOOL_DIRS), "HOME": "/root", "LANG": "C.UTF-8"}


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, env=daemon_env(), stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit status {result.returncode}"
        raise LabError(f"{' '.join(argv)}: {reason}")
    return result


def is_static_elf(path: Path) -> bool:
    """Whether an x86-64/arm64 ELF binary has no program interpreter (is statically linked)."""
    try:
        with path.open("rb") as binary:
            header = binary.read(64)
            if header[:5] != b"\x7fELF\x02":  # 64-bit ELF only
                return False
            (phoff,) = struct.unpack_from("<Q", header, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
            binary.seek(phoff)
            table = binary.read(phentsize * phnum)
    except OSError:
        return False
    PT_INTERP = 3
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != PT_INTERP for i in range(phnum))


def missing_packages(which: dict[str, str | None], busybox_static: bool) -> list[str]:
    """Debian packages to install, given where each tool was found (pure)."""
    packages = {REQUIRED_TOOLS[tool] for tool, path in which.items() if path is None}
    if not busybox_static:
        packages.add("busybox-static")
    return sorted(packages)


def preflight() -> None:
    """Refuse early, with one clear message, when the lab cannot work here."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, daemons): run it as root")
    path = os.pathsep.join(TOOL_DIRS)
    found = {tool: shutil.which(tool, path=path) for tool in REQUIRED_TOOLS}
    packages = missing_packages(found, is_static_elf(BUSYBOX))
    if packages:
        raise LabError(
            f"missing Debian packages; install them with: apt-get install {' '.join(packages)}"
        )


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    start_time: int
    comm: str
    argv: tuple[str, ...]
    net_ns: int  # inode of the network namespace
    mount_ns: int


def _read_process(pid: int) -> ProcessInfo | None:
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_text()
        argv = (base / "cmdline").read_bytes().split(b"\0")
        net_ns = os.stat(base / "ns" / "net").st_ino
        mount_ns = os.stat(base / "ns" / "mnt").st_ino
    except (OSError, ValueError):
        return None  # gone, or a kernel thread
    # comm sits in parentheses and may itself contain spaces or parentheses.
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        start_time=int(fields[19]),
        comm=comm,
        argv=tuple(arg.decode(errors="replace") for arg in argv if arg),
        net_ns=net_ns,
        mount_ns=mount_ns,
    )


def process_table() -> list[ProcessInfo]:
    processes = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_process(int(entry))
            if info is not None:
                processes.append(info)
    return processes


def process_record(pid: int) -> ProcessRecord | None:
    info = _read_process(pid)
    return ProcessRecord(pid, info.start_time) if info else None


def is_alive(record: ProcessRecord | None) -> bool:
    """Whether the recorded daemon still runs (not merely some process with the same pid)."""
    if record is None:
        return False
    info = _read_process(record.pid)
    return info is not None and info.start_time == record.start_time and _exists(record.pid)


def namespace_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def terminate(pids: Iterable[int], grace: float) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL whatever is left."""
    pending = set(pids)
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        _reap(pending)
        pending = {pid for pid in pending if _exists(pid)}
        if pending:
            time.sleep(0.1)
    for pid in pending:
        _signal(pid, signal.SIGKILL)
    _reap(pending)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _exists(pid: int) -> bool:
    info = _read_process(pid)
    return info is not None and _state_of(pid) != "Z"


def _state_of(pid: int) -> str:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rindex(")") + 2 :].split()[0]


def _reap(pids: Iterable[int]) -> None:
    """Collect those of `pids` that are our own exited children (daemons started by this process).

    Only these pids: waiting on any child would steal exit statuses from subprocess.run.
    """
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
