"""The lab fleet for end-to-end tests: brought up once per session, always torn down.

Every test in tests/e2e is marked `lab` and skipped when not run as root.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from fleet.lab import Lab, lab_down, lab_up

E2E_DIR = Path(__file__).parent
# Modules by how long they take, the longest first: pytest-xdist hands whole modules to its
# workers in this order, so the last one to start is a short one.
SLOWEST_FIRST = ("test_faults", "test_rollout", "test_converge", "test_compose_app",
                 "test_simulator_contract",
                 "test_hostile_hosts", "test_hardened_hosts")


def _worker_lab(base_dir: Path, base_subnet: str) -> tuple[Path, str]:
    """Each pytest-xdist worker runs its own lab: gw0 the configured one, gwN beside it in
    DIR-gwN and the subnet 10*N /24s further on (still in 198.18.0.0/15)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0)
    if index == 0:
        return base_dir, base_subnet
    network = ipaddress.ip_network(base_subnet)
    moved = ipaddress.ip_network((int(network.network_address) + index * 10 * network.num_addresses,
                                  network.prefixlen))
    if not moved.subnet_of(ipaddress.ip_network("198.18.0.0/15")):
        raise pytest.UsageError(f"worker {worker}'s lab subnet {moved} leaves 198.18.0.0/15")
    return base_dir.with_name(f"{base_dir.name}-{worker}"), str(moved)


TEST_LAB_DIR, TEST_LAB_SUBNET = _worker_lab(
    Path(os.environ.get("FLEET_TEST_LAB_DIR", "/var/lib/fleet-lab-test")),
    os.environ.get("FLEET_TEST_LAB_SUBNET", "198.18.1.0/24"))
TEST_LAB_HOSTS = int(os.environ.get("FLEET_TEST_LAB_HOSTS", "6"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def weight(item: pytest.Item) -> int:
        name = Path(item.path).stem
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=weight)  # stable: within a module, the file's order
    skip = pytest.mark.skip(reason="lab tests need root (network namespaces, sshd, dockerd)")
    for item in items:
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.lab)
            if os.geteuid() != 0:
                item.add_marker(skip)


class TeardownGuard:
    """Takes a lab down if the session dies without running fixture teardown (SIGTERM, SIGHUP,
    an exit from deep inside), and turns SIGTERM into KeyboardInterrupt so pytest's own
    teardown runs first."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.armed = True
        atexit.register(self.teardown)
        self.previous = {
            signum: signal.signal(signum, self._interrupt)
            for signum in (signal.SIGTERM, signal.SIGHUP)
        }

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def teardown(self) -> None:
        if self.armed:
            self.armed = False
            lab_down(self.lab_dir)

    def disarm(self) -> None:
        self.teardown()
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        atexit.unregister(self.teardown)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A running lab of FLEET_TEST_LAB_HOSTS hosts (default 6) over aws, gcp and hetzner,
    in its own dir and subnet so that a demo lab may run beside it."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root")
    guard = TeardownGuard(TEST_LAB_DIR)
    try:
        lab_down(TEST_LAB_DIR)  # whatever a crashed session left, containers included
        yield lab_up(TEST_LAB_DIR, hosts=TEST_LAB_HOSTS, subnet=TEST_LAB_SUBNET)
    finally:
        guard.disarm()
