"""The lab fleet for end-to-end tests: brought up once per session, always torn down.

Every test in tests/e2e is marked `lab` and skipped when not run as root.
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from fleet.lab import Lab, lab_down, lab_up

TEST_LAB_DIR = Path(os.environ.get("FLEET_TEST_LAB_DIR", "/var/lib/fleet-lab-test"))
TEST_LAB_SUBNET = os.environ.get("FLEET_TEST_LAB_SUBNET", "198.18.1.0/24")
TEST_LAB_HOSTS = int(os.environ.get("FLEET_TEST_LAB_HOSTS", "6"))
E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
