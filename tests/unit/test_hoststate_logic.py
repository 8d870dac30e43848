"""Host state as pure logic: journal lines, leases, paths, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.config.inventory import load_inventory
from fleet.core import labels
from fleet.core.journal import JournalEntry, decode_journal, encode_entries, settled
from fleet.core.lease import LockInfo, unreadable_lease_is_stale
from fleet.errors import HostStateError, LockHeld
from fleet.hoststate import ProjectPaths, current_operator, new_lease
from fleet.hoststate.multi import _refusal

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def entry(revision: int = 1, outcome: str = "ok", **changes: object) -> JournalEntry:
    base = dict(command="apply", service="web", replica=1, revision=revision,
                image="registry:5000/web:1", digest="sha256:" + "a" * 64,
                spec={"image": "registry:5000/web:1", "environment": {"TOKEN": "hmac:abc"}},
                spec_hash="h" * 64, outcome=outcome, detail="", time="2026-05-01T12:00:00Z",
                operator="alice@ctl")
    base.update(changes)
    return JournalEntry(**base)  # type: ignore[arg-type]


def test_journal_round_trip_is_one_sorted_json_line_per_entry() -> None:
    entries = [entry(1), entry(2, "failed", detail="health check failed")]
    data = encode_entries(entries)
    lines = data.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert list(json.loads(lines[0])) == sorted(json.loads(lines[0]))
    assert decode_journal(data) == (entries, 0)


def test_torn_last_line_is_skipped() -> None:
    data = encode_entries([entry(1), entry(2)])
    torn = data + encode_entries([entry(3)])[:40]
    assert decode_journal(torn) == ([entry(1), entry(2)], 1)


def test_torn_line_in_the_middle_costs_only_itself() -> None:
    # What an append after a torn line leaves: the torn part, a newline, the next entries.
    data = encode_entries([entry(1)]) + b'{"command":"ap' + b"\n" + encode_entries([entry(3)])
    assert decode_journal(data) == ([entry(1), entry(3)], 1)


@pytest.mark.parametrize("line", [b"[]", b'{"outcome":"ok"}', b"\xff\xfe",
                                  json.dumps({**entry().to_json(), "outcome": "meh"}).encode(),
                                  json.dumps({**entry().to_json(), "spec": "x"}).encode()])
def test_lines_that_are_not_entries_are_skipped(line: bytes) -> None:
    assert decode_journal(line + b"\n") == ([], 1)


def test_empty_journal() -> None:
    assert decode_journal(b"") == ([], 0)


def test_entry_from_container_labels_keeps_the_spec_label_as_is() -> None:
    spec = {"environment": {"TOKEN": "hmac-sha256:1234"}, "image": "web:1"}
    container_labels = {labels.PROJECT: "shop", labels.SERVICE: "web", labels.REPLICA: "2",
                        labels.SPEC_HASH: "f" * 64, labels.SPEC: json.dumps(spec),
                        labels.IMAGE: "web:1", labels.IMAGE_DIGEST: "sha256:" + "b" * 64,
                        labels.REVISION: "7"}
    made = JournalEntry.from_labels(container_labels, command="rollback", outcome="ok",
                                    operator=current_operator())
    assert (made.service, made.replica, made.revision, made.image) == ("web", 2, 7, "web:1")
    assert made.spec == spec and made.spec_hash == "f" * 64
    assert made.digest == "sha256:" + "b" * 64 and made.command == "rollback"
    assert made.time.endswith("Z") and "@" in made.operator


def test_operator_defaults_to_user_at_host_and_is_overridable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_OPERATOR", raising=False)
    user, _, host = current_operator().partition("@")
    assert user and host
    monkeypatch.setenv("FLEET_OPERATOR", "ci-pipeline-42")
    assert current_operator() == "ci-pipeline-42"
    assert entry().operator == "alice@ctl"


def lease(**changes: object) -> LockInfo:
    base = new_lease("apply", 600, now=T0, run_id="run-1")
    return LockInfo(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_lease_round_trip_and_expiry() -> None:
    held = lease(owner="alice@ctl", controller_host="ctl", pid=42)
    assert LockInfo.decode(held.encode()) == held
    assert json.loads(held.encode())["expires_at"] == "2026-05-01T12:10:00.000000Z"
    assert not held.expired(T0 + timedelta(seconds=599))
    assert held.expired(T0 + timedelta(seconds=600))
    assert held.owned_by("run-1") and not held.owned_by("run-2")
    later = held.renewed(T0 + timedelta(seconds=200), 600)
    assert later.expires_at == T0 + timedelta(seconds=800)
    assert later.acquired_at == held.acquired_at and later.run_id == held.run_id


@pytest.mark.parametrize("data", [b"", b'{"owner": "a"', b"[]", b'{"owner": "a"}',
                                  b'{"owner":"a","controller_host":"c","pid":"x","command":"c",'
                                  b'"acquired_at":"now","expires_at":"x","run_id":"r"}'])
def test_damaged_lease_is_not_a_lease(data: bytes) -> None:
    with pytest.raises(ValueError):
        LockInfo.decode(data)


def test_unreadable_lease_is_stale_only_when_old() -> None:
    assert not unreadable_lease_is_stale(T0, T0 + timedelta(seconds=5), 600)
    assert unreadable_lease_is_stale(T0, T0 + timedelta(seconds=600), 600)
    assert not unreadable_lease_is_stale(None, T0, 600)


def test_lock_held_names_holder_command_and_since() -> None:
    held = lease(owner="alice@ctl", controller_host="ctl", pid=42)
    message = str(LockHeld("web-1", held))
    assert message == ("web-1: locked by alice@ctl (apply, pid 42 on ctl) since "
                       "2026-05-01T12:00:00Z, until 2026-05-01T12:10:00Z")
    assert "(and on 2 more hosts)" in str(LockHeld("web-1", held, ("a", "b")))


def test_refusal_prefers_the_first_holder_and_counts_the_others() -> None:
    held = lease()
    refusal = _refusal({"b": LockHeld("b", held), "c": HostStateError("c", "denied"),
                        "a": LockHeld("a", held)})
    assert isinstance(refusal, LockHeld) and refusal.host == "a" and refusal.also == ("b",)
    other = _refusal({"c": HostStateError("c", "denied")})
    assert isinstance(other, HostStateError)


@pytest.mark.parametrize(("state_dir", "directory"), [
    (".fleet", ".fleet/shop"), ("~/.fleet", ".fleet/shop"), ("~", "shop"),
    ("/var/lib/fleet", "/var/lib/fleet/shop")])
def test_paths(state_dir: str, directory: str) -> None:
    paths = ProjectPaths(state_dir, "shop")
    assert paths.directory == directory
    assert paths.journal == f"{directory}/journal.jsonl"
    assert paths.lock == f"{directory}/lock.json"


def test_state_dir_in_inventory(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text("defaults: {state_dir: /srv/fleet}\n"
                    "hosts:\n  a: {}\n  b: {state_dir: .deploy-state}\n")
    inventory = load_inventory([str(path)])
    assert inventory.host("a").state_dir == "/srv/fleet"
    assert inventory.host("b").state_dir == ".deploy-state"
    path.write_text("hosts:\n  a: {}\n")
    assert load_inventory([str(path)]).host("a").state_dir == ".fleet"


def test_history_shows_a_started_change_only_until_it_is_concluded() -> None:
    def entry(revision: int, outcome: str) -> JournalEntry:
        return JournalEntry(command="apply", service="web", replica=1, revision=revision,
                            image="r/web:v1", digest="", spec={"image": "r/web:v1"},
                            spec_hash="h", outcome=outcome)  # type: ignore[arg-type]

    entries = [entry(1, "started"), entry(1, "ok"), entry(2, "started"), entry(2, "failed"),
               entry(3, "started")]  # the controller died during revision 3
    assert [(e.revision, e.outcome) for e in settled(entries)] == [
        (1, "ok"), (2, "failed"), (3, "started")]


def test_an_entry_of_a_delivered_image_keeps_its_source_and_others_read_as_before() -> None:
    delivered = entry(image_source="controller")
    line = encode_entries([delivered])
    assert b'"image_source":"controller"' in line
    assert decode_journal(line)[0] == [delivered]
    assert b"image_source" not in encode_entries([entry()])  # a registry image's line
