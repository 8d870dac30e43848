"""`fleet lab down` leaves nothing of its lab behind, and nothing of another lab is touched."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fleet.lab import Lab, lab_down, lab_exec, lab_status, lab_up
from fleet.lab.leftovers import is_lab_daemon
from fleet.lab.network import list_links, list_netns, mount_points
from fleet.lab.spec import is_lab_link, is_lab_netns, lab_id
from fleet.lab.system import process_table

pytestmark = pytest.mark.lab
SMALL_DIR = Path("/var/lib/fleet-lab-test-down")
SMALL_SUBNET = "198.18.2.0/24"


def remains(lab_dir: Path) -> dict[str, list[str]]:
    lab = lab_id(lab_dir)
    return {
        "netns": [n for n in list_netns() if is_lab_netns(lab, n)],
        "links": [link.name for link in list_links() if is_lab_link(lab, link.name)],
        "daemons": [
            f"{p.pid} {p.comm}"
            for p in process_table()
            if is_lab_daemon(p, lab_dir)
        ],
        "mounts": [m for m in mount_points() if m.startswith(f"{lab_dir}/")],
    }


def listens(address: str, port: int) -> bool:
    """Whether a TCP socket of the root namespace listens there (read from /proc, because
    connecting to an address nobody routes any more would send traffic off the machine)."""
    wanted = f"{socket.inet_aton(address)[::-1].hex().upper()}:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)


def test_down_removes_everything_of_its_lab_only(lab: Lab) -> None:
    small = lab_up(SMALL_DIR, hosts=2, subnet=SMALL_SUBNET)
    try:
        started = lab_exec(
            small,
            small.hosts[0].name,
            ["docker", "run", "-d", "--restart", "always", f"{small.registry}/demo/worker:v1"],
        )
        assert started.returncode == 0, started.stderr
        assert all(remains(SMALL_DIR).values())
        assert listens("198.18.2.1", 5000)
    finally:
        assert lab_down(SMALL_DIR, purge=True)

    assert remains(SMALL_DIR) == {"netns": [], "links": [], "daemons": [], "mounts": []}
    assert not listens("198.18.2.1", 5000)
    assert not SMALL_DIR.exists()
    status = lab_status(lab.dir)  # the session lab still runs untouched
    assert status.registry and all(s.sshd and s.dockerd for s in status.hosts)


def test_down_of_an_absent_lab_is_a_no_op(tmp_path: Path) -> None:
    assert lab_down(tmp_path / "never-up") is False
