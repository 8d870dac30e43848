"""Saved plans' pure parts: what a host's fingerprint covers, what is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fleet.core.observed import HostSnapshot, ObservedContainer
from fleet.core.saved_plan import (
    FORMAT,
    SavedPlanError,
    host_fingerprint,
    is_saved_plan,
    moved_hosts,
    read_saved_plan,
    replanned_hosts,
)

WEB = ObservedContainer("a" * 64, "shop-web-1", "running", {
    "fleet.project": "shop", "fleet.spec-hash": "1" * 64, "other": "x"}, health="healthy",
    started_at="2026-12-04T10:00:00Z")
SNAPSHOT = HostSnapshot("h1", (WEB,), networks={}, volumes={})


def saved(**hosts: tuple[str, str]) -> str:
    return json.dumps({
        "format": FORMAT, "created": "2026-12-04T10:00:00+00:00", "project": "shop",
        "invocation": {"playbooks": ["/p/pb.yml"]}, "desired": "sha256:0",
        "hosts": [{"host": h, "fingerprint": f, "plan": p} for h, (f, p) in hosts.items()],
        "plan": {}})


def test_a_fingerprint_moves_with_what_runs_not_with_health_or_time() -> None:
    base = host_fingerprint(SNAPSHOT)
    calm = replace(WEB, health="starting", started_at="2026-12-04T11:00:00Z",
                   labels={**WEB.labels, "other": "y"})
    assert host_fingerprint(replace(SNAPSHOT, containers=(calm,))) == base
    for moved in (replace(WEB, id="b" * 64), replace(WEB, state="exited"),
                  replace(WEB, labels={**WEB.labels, "fleet.spec-hash": "2" * 64})):
        assert host_fingerprint(replace(SNAPSHOT, containers=(moved,))) != base
    assert host_fingerprint(replace(SNAPSHOT, containers=())) != base
    assert host_fingerprint(replace(SNAPSHOT, last_revisions={"web": 3})) != base


def test_hosts_that_moved_or_replanned_are_named() -> None:
    plan = read_saved_plan(saved(h1=("f1", "p1"), h2=("f2", "p2")).encode())
    assert moved_hosts(plan, {"h1": "f1", "h2": "fX"}) == ["h2"]
    assert moved_hosts(plan, {"h1": "f1"}) == ["h2"]  # gone is moved
    assert replanned_hosts(plan, {"h1": "p1", "h2": "p2"}) == []
    assert replanned_hosts(plan, {"h1": "p1", "h2": "p2", "h3": "p3"}) == ["h3"]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"format": "fleet-saved-plan/1", "hosts": 3}', "not a saved plan"),
    ("{" * 200, "not a saved plan"),
    (saved().replace(FORMAT, "fleet-saved-plan/9"), "this fleet reads"),
])
def test_what_is_not_a_saved_plan_is_an_error(text: str, expected: str) -> None:
    with pytest.raises(SavedPlanError, match=expected):
        read_saved_plan(text.encode())


def test_a_playbook_is_not_taken_for_a_saved_plan() -> None:
    assert is_saved_plan(saved().encode())
    assert not is_saved_plan(b"project: shop\nservices: {}\n")
    assert not is_saved_plan(b'{"project": "shop", "services": {}}')
