"""One good host and one hostile host, driven through the real CLI: the hostile host's
answers (Docker bodies, journal and lock files) become its own error, the good host's result
is printed, nothing prints a traceback, and the exit code is the documented failure code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from fleet.core import labels
from fleet.core.journal import JournalEntry, encode_entries
from hostile.harness import (
    DIGEST,
    IMAGE,
    FakeDocker,
    HostileFleet,
    Reply,
    container,
    stream,
)

EXIT_ERROR, EXIT_CHANGES = 1, 2
MiB = 1024 * 1024
DEEP_ERROR = ("Docker answered GET /containers/json with an unusable answer: nested deeper "
              "than 64 levels")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[HostileFleet]:
    with HostileFleet(tmp_path) as hosts:
        yield hosts


def contained(result: Result, bad: str | None = None, *problems: str) -> str:
    """The run ended normally (no traceback), with the bad host's error, if one is given,
    naming it on stderr along with each of `problems`."""
    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception), output)
    for problem in problems:
        assert f"{bad}: " in result.stderr and problem in result.stderr, result.stderr
    return output


def with_good_host(fleet: HostileFleet) -> None:
    fleet.add("good")
    fleet.in_sync("good")


# -- Docker answers -----------------------------------------------------------------------------

OURS_LIST, OURS_INSPECT = container()
BAD_ANSWERS: dict[str, tuple[dict[str, Reply], str]] = {
    "deeply nested": ({"GET /containers/json": Reply(b"[" * 200_000 + b"]" * 200_000)},
                      "nested deeper than 64 levels"),
    "dict for list": ({"GET /containers/json": Reply.json({"Id": "x"})},
                      "GET /containers/json with an unusable answer: expected a list, "
                      "got an object"),
    "string for dict": ({"GET /containers/json": Reply.json([{**OURS_LIST, "Labels": "x"}])},
                        "[0].Labels: expected an object, got a string"),
    "missing key": ({"GET /containers/json": Reply.json([{"Names": ["/x"]}])},
                    "[0].Id: missing"),
    "wrong-typed labels": (
        {"GET /containers/json": Reply.json([{**OURS_LIST, "Labels": {
            **OURS_LIST["Labels"], labels.REPLICA: 1}}])},
        "expected a string, got an integer"),
    "port out of range": (
        {"GET /containers/json": Reply.json([{**OURS_LIST, "Ports": [
            {"PublicPort": 10**30, "Type": "tcp"}]}])},
        "[0].Ports[0].PublicPort: out of range"),
    "Infinity in inspect": (
        {"GET /containers/json": Reply.json([OURS_LIST]),
         f"GET /containers/{OURS_LIST['Id']}/json":
             Reply(json.dumps(OURS_INSPECT).replace('"RestartCount": 0',
                                                    '"RestartCount": Infinity').encode())},
        f"GET /containers/{OURS_LIST['Id']}/json with an unusable answer: not JSON"),
    "inspect of the wrong shape": (
        {"GET /containers/json": Reply.json([OURS_LIST]),
         f"GET /containers/{OURS_LIST['Id']}/json":
             Reply.json({**OURS_INSPECT, "State": {"Health": "healthy"}})},
        "State.Health: expected an object, got a string"),
    "not JSON at all": ({"GET /containers/json": Reply(b"\x00\xff<html>", content_type="x")},
                        "not JSON"),
    "declared too large": (
        {"GET /containers/json": Reply(b"[]", headers={"Content-Length": str(10**12)})},
        "more than 8 MiB"),
    "garbage API version": (  # on every answer, as dockerd sends it
        {"GET /containers/json": Reply(b"[]", headers={"API-Version": "1." + "9" * 5000}),
         "GET /networks": Reply(b"[]", headers={"API-Version": "1." + "9" * 5000})},
        "API-Version header"),
    "images dict for list": ({"GET /images/json": Reply.json({"RepoTags": []})},
                             "GET /images/json with an unusable answer: expected a list"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_bad_docker_answer_is_that_hosts_error_in_check(fleet: HostileFleet,
                                                        case: str) -> None:
    routes, problem = BAD_ANSWERS[case]
    with_good_host(fleet)
    fleet.add("bad", FakeDocker(routes))
    command = "plan" if case.startswith("images") else "check"  # images: read for changes
    result = fleet.cli(command)
    contained(result, "bad", problem)
    assert result.exit_code == EXIT_ERROR
    if command == "check":
        assert "Checked 1 host(s)" in result.stdout
    else:
        assert "good" not in result.stderr


@pytest.mark.parametrize("command", ["check", "plan", "status", "history"])
def test_every_reading_command_survives_a_hostile_host(fleet: HostileFleet,
                                                       command: str) -> None:
    with_good_host(fleet)
    fleet.add("bad", FakeDocker({"GET /containers/json": Reply(b"[" * 100_000)}),
              files={"journal.jsonl": b"[" * 100_000 + b"\n" + b'{"spec": Infinity}',
                     "lock.json": b'{"pid": Infinity}'})
    result = fleet.cli(command)
    output = contained(result)
    if command == "history":  # the journal's bad lines are skipped: not an error
        assert result.exit_code == 0
        assert "good" in result.stdout and "bad" in result.stdout
        return
    assert result.exit_code == EXIT_ERROR
    if command == "status":  # the table says only "unreachable"; --json says why
        assert "shop-web-1" in output and re.search(r"bad +│ - +│ unreachable", output)
        rows = json.loads(fleet.cli("status", "--json").stdout)
        assert [c["host"] for c in rows["containers"]] == ["good"]
        assert rows["unreachable"] == [{"host": "bad", "error": DEEP_ERROR}]
        return
    assert f"bad: unreachable: {DEEP_ERROR}" in result.stderr
    if command == "plan":
        assert "No changes" in result.stdout


def test_huge_answer_is_cut_off_early_and_memory_stays_bounded(fleet: HostileFleet) -> None:
    with_good_host(fleet)
    bad = fleet.add("bad", FakeDocker({"GET /containers/json": Reply(stream(300 * MiB))}))
    ran = fleet.subprocess("check")
    assert "Traceback" not in ran.output
    assert ran.exit_code == EXIT_ERROR
    assert ("bad: unreachable: Docker answered GET /containers/json with an unusable answer: "
            "more than 8 MiB (stopped reading)") in ran.stderr
    assert "Checked 1 host(s)" in ran.stdout
    assert bad.docker.sent < 32 * MiB  # cut off at the bound, plus what was in flight
    assert ran.max_rss_mib < 300, ran.max_rss_mib


def test_huge_inspect_and_image_list_are_cut_off_too(fleet: HostileFleet) -> None:
    with_good_host(fleet)
    bad = fleet.add("bad", FakeDocker({
        "GET /containers/json": Reply.json([OURS_LIST]),
        f"GET /containers/{OURS_LIST['Id']}/json": Reply(stream(300 * MiB))}))
    result = fleet.cli("plan")
    contained(result, "bad", "more than 2 MiB (stopped reading)")
    assert bad.docker.sent < 32 * MiB


def test_thousands_of_project_containers_are_not_inspected(fleet: HostileFleet) -> None:
    with_good_host(fleet)
    many = [container(replica=n)[0] for n in range(1, 1002)]
    bad = fleet.add("bad", FakeDocker({"GET /containers/json": Reply.json(many)}))
    result = fleet.cli("check")
    contained(result, "bad", "Docker listed 1001 containers of project shop, more than fleet "
                             "reads on one host (1000)")
    assert not [r for r in bad.docker.requests if r.startswith("GET /v1.41/containers/web")]


# -- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["[" * 100_000, "not json", '{"environment": ["A=1"]}',
                                  '{"a": NaN}', json.dumps({"x": "y" * 400_000})])
def test_bad_spec_label_means_no_recorded_spec(fleet: HostileFleet, spec: str) -> None:
    with_good_host(fleet)
    bad = fleet.add("bad")
    made = container(base_labels={**fleet.labels_in_sync("bad"), labels.SPEC: spec,
                                  labels.SPEC_HASH: "0" * 64})
    bad.docker.routes["GET /containers/json"] = Reply.json([made[0]])
    bad.docker.routes[f"GET /containers/{made[1]['Id']}/json"] = Reply.json(made[1])
    result = fleet.cli("check")
    contained(result)
    assert result.exit_code == EXIT_CHANGES  # both hosts checked: drift on the bad one
    assert "bad: web/1: config_changed: spec: (unknown: no fleet.spec label)" in result.stdout
    assert "Checked 2 host(s)" in result.stdout


@pytest.mark.parametrize("replica", ["9" * 5000, "²", "-1"])
def test_unreadable_identity_labels_are_not_a_crash(fleet: HostileFleet, replica: str) -> None:
    with_good_host(fleet)
    fleet.add("bad", FakeDocker(containers=[container(extra_labels={
        labels.REPLICA: replica, labels.REVISION: "9" * 5000})]))
    for command in ("check", "status", "plan"):
        result = fleet.cli(command)
        contained(result)
        assert result.exit_code in (0, EXIT_ERROR, EXIT_CHANGES)


# -- the host's state files ----------------------------------------------------------------------


def entry(revision: int) -> JournalEntry:
    return JournalEntry(command="apply", service="web", replica=1, revision=revision,
                        image="127.0.0.1:5000/shop/web:1", digest=DIGEST,
                        spec={"image": "127.0.0.1:5000/shop/web:1"}, spec_hash="h" * 64,
                        outcome="ok", time="2026-05-01T12:00:00Z", operator="alice@ctl")


GARBAGE_LINES = [
    b"\x00\x01\x02 garbage",
    b"[" * 100_000,
    json.dumps(entry(7).to_json()).replace('"revision": 7', '"revision": Infinity').encode(),
    json.dumps({**entry(8).to_json(), "revision": 10**40}).encode(),
    json.dumps({**entry(8).to_json(), "spec": "not a spec"}).encode(),
    b'{"x": "' + b"a" * (2 * MiB) + b'"}',
]


def test_garbage_and_truncated_journal_lines_are_skipped(fleet: HostileFleet) -> None:
    with_good_host(fleet)
    journal = (encode_entries([entry(1)]) + b"\n".join(GARBAGE_LINES) + b"\n"
               + encode_entries([entry(2)]) + encode_entries([entry(3)])[:-30])
    fleet.add("bad", files={"journal.jsonl": journal})
    result = fleet.cli("history", "--json")
    contained(result)
    assert result.exit_code == 0
    hosts = {h["host"]: h["entries"] for h in json.loads(result.stdout)["hosts"]}
    assert [e["revision"] for e in hosts["bad"]] == [1, 2]
    assert hosts["good"] == []
    # What was skipped is said, per host, on stderr and in the JSON.
    assert "warning: bad: " in result.stderr and "skipped" in result.stderr
    assert json.loads(result.stdout)["hosts"][0]["warnings"] or \
        json.loads(result.stdout)["hosts"][1]["warnings"]
    plan = fleet.cli("plan")  # plan reads journals too (for revision numbers)
    contained(plan)
    assert plan.exit_code in (0, EXIT_CHANGES)
    assert "warning: bad: " in plan.stderr


def test_journal_that_is_a_directory_is_that_hosts_error(fleet: HostileFleet) -> None:
    with_good_host(fleet)
    bad = fleet.add("bad")
    (bad.state_dir / "journal.jsonl").mkdir()
    result = fleet.cli("history")
    contained(result, "bad", "journal.jsonl")
    assert result.exit_code == EXIT_ERROR and "good" in result.stdout


def test_huge_journal_is_read_from_its_end(fleet: HostileFleet) -> None:
    with_good_host(fleet)
    filler = encode_entries([entry(1)]) * (20 * MiB // len(encode_entries([entry(1)])))
    fleet.add("bad", files={"journal.jsonl": filler + encode_entries([entry(99)])})
    result = fleet.cli("history", "--json")
    contained(result)
    entries = {h["host"]: h["entries"] for h in json.loads(result.stdout)["hosts"]}["bad"]
    assert entries[-1]["revision"] == 99 and len(entries) < 20 * MiB // 300


LEASE: dict[str, Any] = {"owner": "mallory@ctl", "controller_host": "ctl", "pid": 1,
                         "command": "apply", "acquired_at": "2026-05-01T12:00:00Z",
                         "expires_at": "2099-05-01T12:00:00Z", "run_id": "r"}
BAD_LOCKS = {
    "Infinity pid": json.dumps(LEASE).replace('"pid": 1', '"pid": Infinity').encode(),
    "NaN pid": json.dumps(LEASE).replace('"pid": 1', '"pid": NaN').encode(),
    "huge pid": json.dumps({**LEASE, "pid": 10**100}).encode(),
    "end of time": json.dumps({**LEASE, "expires_at": "9999-12-31T23:59:59-12:00"}).encode(),
    "deep": b"[" * 100_000,
    "huge": b" " * (8 * MiB) + b"{}",
    "truncated": json.dumps(LEASE).encode()[:-9],
    "garbage": b"\xff\xfe\x00",
}


@pytest.mark.parametrize("case", sorted(BAD_LOCKS))
def test_unreadable_lock_is_that_hosts_error(fleet: HostileFleet, case: str) -> None:
    with_good_host(fleet)
    fleet.add("bad", files={"lock.json": BAD_LOCKS[case]})
    result = fleet.cli("lock", "status")
    contained(result, "bad", "lock.json is not a lease")
    assert result.exit_code == EXIT_ERROR
    assert "good: free" in result.stdout


def test_apply_refuses_to_start_on_an_unreadable_lock(fleet: HostileFleet) -> None:
    with_good_host(fleet)
    fleet.add("bad", files={"lock.json": BAD_LOCKS["Infinity pid"]})
    result = fleet.cli("apply", "--yes")
    contained(result, "bad", ".fleet/shop/lock.json is not a lease (not JSON",
              "`fleet lock release --force` removes it")
    assert result.exit_code == EXIT_ERROR
    assert not (fleet.hosts["good"].state_dir / "lock.json").exists()  # all or nothing


# -- text from hosts, claims about hosts ------------------------------------------------------

FORGED = "\x1b[2J\x1b]0;owned\x07\nfake-host: web: in sync\r\u202e"


@pytest.mark.parametrize("command", ["check", "plan", "status", "history"])
def test_control_characters_from_a_host_are_never_printed_raw(fleet: HostileFleet,
                                                              command: str) -> None:
    """A host's names, image labels, journal and Docker errors carry ESC sequences and
    newlines: every line fleet prints shows them escaped."""
    with_good_host(fleet)
    forged_entry = JournalEntry(command="apply" + FORGED, service="web", replica=1,
                                revision=1, image="r/web:v1" + FORGED, digest="",
                                spec={"image": "r/web:v1"}, spec_hash="h", outcome="ok",
                                operator="mallory" + FORGED, detail=FORGED)
    fleet.add("bad", FakeDocker({
        "GET /images/json": Reply(b"x", status=500,
                                  content_type="application/json"),
    }, containers=[container(name="shop-web-1" + FORGED,
                             extra_labels={labels.IMAGE: "r/web" + FORGED})]),
        files={"journal.jsonl": encode_entries([forged_entry])})
    result = fleet.cli(command)
    output = contained(result)
    assert "\x1b" not in output and "\r" not in output and "\u202e" not in output
    assert not [line for line in output.splitlines() if line.startswith("fake-host")]


def test_plan_never_calls_unobserved_hosts_in_sync(fleet: HostileFleet) -> None:
    fleet.add("bad", FakeDocker({"GET /containers/json": Reply(b"[" * 100_000)}))
    result = fleet.cli("plan")
    contained(result, "bad", "nested deeper than 64 levels")
    assert result.exit_code == EXIT_ERROR
    assert "No host could be checked (1 unreachable)" in result.output
    assert "every targeted host is in sync" not in result.output


def test_read_only_commands_send_no_registry_credentials(tmp_path: Path) -> None:
    """The playbook has credentials for the image's registry; check, plan and status ask the
    daemon to resolve the tag, and never hand them over."""
    playbook = (f"project: shop\ninventory: inventory.yml\nregistries:\n"
                f"  {IMAGE.split('/')[0]}: {{username: ci, password: s3cret-registry-token}}\n"
                f"services:\n  web:\n    image: {IMAGE}\n")
    with HostileFleet(tmp_path, playbook=playbook) as hosts:
        daemon = FakeDocker({"GET /distribution/*/json": Reply.json(
            {"message": "unauthorized: authentication required"}, status=401)})
        hosts.add("h1", daemon)
        for command in ("check", "plan", "status"):
            contained(hosts.cli(command))
        asked = [h for r, h in zip(daemon.requests, daemon.headers, strict=True)
                 if "/distribution/" in r]
        assert asked and not [h for h in asked if "x-registry-auth" in h]
