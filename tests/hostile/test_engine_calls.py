"""What each reading command costs a converged host in Engine API calls, counted on the
wire through the real CLI and SSH transport: no call to negotiate the API version (the first
answers tell it), the lists side by side, an inspect per project container, and each tag
resolved once per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile.harness import HostileFleet, container

INSPECT = f"GET /v1.41/containers/{container()[1]['Id']}/json"
RESOLVE = "GET /v1.41/distribution/127.0.0.1:5000/shop/web:1/json"
LISTS = ["GET /v1.41/containers/json?all=true", "GET /v1.41/networks"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[HostileFleet]:
    with HostileFleet(tmp_path) as hosts:
        hosts.add("web-1")
        hosts.in_sync("web-1")
        yield hosts


@pytest.mark.parametrize(("command", "calls"), [
    (["check"], [*LISTS, INSPECT, RESOLVE]),
    # a change would need the images present (to skip needless pulls)
    (["plan"], [*LISTS, "GET /v1.41/images/json", INSPECT, RESOLVE]),
    (["apply", "--yes"], [*LISTS, "GET /v1.41/images/json", INSPECT, RESOLVE]),
])
def test_engine_calls_of_a_converged_host(fleet: HostileFleet, command: list[str],
                                          calls: list[str]) -> None:
    result = fleet.cli(*command)
    assert result.exit_code == 0, result.output
    asked = fleet.hosts["web-1"].docker.requests
    assert "GET /_ping" not in asked
    assert sorted(asked) == sorted(calls)
    # the lists come first (side by side: tests/unit/test_observe_calls.py), then the inspect
    assert sorted(asked[:len(calls) - 2]) == sorted(calls[:-2])
