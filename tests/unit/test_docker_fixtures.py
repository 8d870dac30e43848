"""The recorded Docker fixtures are whole and show the states their names promise."""

from __future__ import annotations

import struct

import pytest
from docker_fixtures import body, load, names, stream

INSPECTS = {
    "inspect_running_starting": ("running", "starting"),
    "inspect_running_healthy": ("running", "healthy"),
    "inspect_unhealthy": ("running", "unhealthy"),
    "inspect_exited": ("exited", None),
    "inspect_created": ("created", None),
    "inspect_restarting": ("restarting", None),
    "inspect_paused": ("paused", None),
    "inspect_foreign": ("running", None),
}


def frames(data: bytes) -> list[tuple[int, bytes]]:
    result, offset = [], 0
    while offset < len(data):
        stream_id, length = struct.unpack(">BxxxL", data[offset : offset + 8])
        result.append((stream_id, data[offset + 8 : offset + 8 + length]))
        offset += 8 + length
    return result


@pytest.mark.parametrize("name", names())
def test_every_fixture_is_a_whole_record(name: str) -> None:
    record = load(name)
    assert {"request", "status", "headers", "docker_version"} <= record.keys()
    assert ("body" in record) != ("body_base64" in record)
    method, _, target = record["request"].partition(" ")
    assert method in ("GET", "POST", "DELETE") and target.startswith("/")


@pytest.mark.parametrize(("name", "expected"), INSPECTS.items())
def test_inspect_fixtures_show_their_state(name: str, expected: tuple[str, str | None]) -> None:
    state = body(name)["State"]
    assert (state["Status"], (state.get("Health") or {}).get("Status")) == expected


def test_fleet_labels_are_on_project_containers_only() -> None:
    for name in INSPECTS:
        labels = body(name)["Config"]["Labels"]
        assert (labels.get("fleet.project") == "shop") == (name != "inspect_foreign")


def test_logs_are_multiplexed_frames() -> None:
    assert [sid for sid, _ in frames(body("logs_exited"))] in ([1, 2], [2, 1])
    assert frames(body("logs_unhealthy"))[0][0] == 1


def test_failing_pull_reports_its_error_in_the_stream() -> None:
    assert load("pull_failing_stream")["status"] == 200
    assert "error" in stream("pull_failing_stream")[-1]
    assert "error" not in stream("pull_success")[-1]
