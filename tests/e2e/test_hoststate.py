"""Journal and locks end to end on the lab: files on each host over real sshd (internal-sftp).

The lock is taken with the API (as apply does) and inspected and released with the CLI.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from e2e_helpers import fleet, fleet_json, write_playbook

from fleet.config.inventory import load_inventory
from fleet.core.journal import JournalEntry
from fleet.errors import LockHeld
from fleet.hoststate import HostLock, Journal, fleet_lock, new_lease
from fleet.lab import Lab
from fleet.transport import ConnectionPool, HostConnection

PROJECT = "e2estate"


@pytest.fixture(scope="module")
def playbook(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("hoststate")
    yield write_playbook(base / "state.yml", PROJECT, lab.inventory_path,
                         {"web": {"image": f"{lab.registry}/demo/web:v1"}})


@pytest.fixture(autouse=True)
def clean_lock(lab: Lab, playbook: Path) -> Iterator[None]:
    yield
    fleet("lock", "release", "--force", str(playbook), check_rc=0)


@asynccontextmanager
async def connected(lab: Lab) -> AsyncIterator[dict[str, HostConnection]]:
    hosts = load_inventory([str(lab.inventory_path)]).hosts
    async with ConnectionPool(hosts, connect_timeout=5) as pool:
        assert not pool.failed
        yield pool.connected


def home(lab: Lab, host: str) -> Path:
    """The host's /root as seen from the controller (each lab host has its own)."""
    return lab.dir / "hosts" / host / "root"


def entry(service: str, revision: int, outcome: str = "ok") -> JournalEntry:
    return JournalEntry(command="apply", service=service, replica=1, revision=revision,
                        image=f"demo/{service}:v{revision}", digest="sha256:" + "c" * 64,
                        spec={"image": f"demo/{service}:v{revision}",
                              "environment": {"TOKEN": "hmac-sha256:0123"}},
                        spec_hash=str(revision) * 64, outcome=outcome,  # type: ignore[arg-type]
                        operator="alice@ctl", detail="" if outcome == "ok" else "unhealthy")


def test_lock_on_every_host_and_a_second_run_is_refused(
        lab: Lab, playbook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_OPERATOR", "alice@ctl")

    async def main() -> None:
        async with connected(lab) as connections, \
                fleet_lock(connections, PROJECT, "apply") as held:
            assert held.hosts == sorted(h.name for h in lab.hosts)
            for host in lab.hosts:  # one lease per host, in that host's own home
                lease = json.loads((home(lab, host.name) / ".fleet" / PROJECT / "lock.json")
                                   .read_text())
                assert lease["owner"] == "alice@ctl" and lease["run_id"] == held.run_id

            status = await asyncio.to_thread(fleet_json, "lock", "status", str(playbook),
                                             check_rc=0)
            assert [h["host"] for h in status["hosts"]] == [h.name for h in lab.hosts]
            assert all(h["lock"]["owner"] == "alice@ctl" and h["lock"]["command"] == "apply"
                       and not h["lock"]["expired"] for h in status["hosts"])
            text = await asyncio.to_thread(fleet, "lock", "status", str(playbook), check_rc=0)
            assert f"{lab.hosts[0].name}: locked by alice@ctl (apply, pid " in text.stdout

            with pytest.raises(LockHeld) as refused:
                async with fleet_lock(connections, PROJECT, "rollback"):
                    pass
            message = str(refused.value)
            assert "locked by alice@ctl (apply" in message and " since " in message
            assert f"(and on {len(lab.hosts) - 1} more hosts)" in message
            held.check()  # the refused run released nothing of ours

        for host in lab.hosts:  # released on exit
            assert not (home(lab, host.name) / ".fleet" / PROJECT / "lock.json").exists()

    asyncio.run(main())


def test_stale_lease_is_taken_over(lab: Lab) -> None:
    async def main() -> None:
        async with connected(lab) as connections:
            victim = lab.hosts[1].name
            await HostLock(connections[victim], PROJECT).acquire(new_lease("apply", 0.5), 0.5)
            await asyncio.sleep(1.0)
            async with fleet_lock(connections, PROJECT, "apply") as held:
                assert await HostLock(connections[victim], PROJECT).read() == \
                    held.leases[victim]

    asyncio.run(main())


def test_release_only_own_locks_unless_forced(
        lab: Lab, playbook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def take(operator: str) -> None:
        monkeypatch.setenv("FLEET_OPERATOR", operator)
        async with connected(lab) as connections:
            host = connections[lab.hosts[0].name]
            await HostLock(host, PROJECT).acquire(new_lease("apply", 600))

    asyncio.run(take("alice@ctl"))
    monkeypatch.setenv("FLEET_OPERATOR", "bob@elsewhere")
    refused = fleet("lock", "release", str(playbook), check_rc=1)
    assert "held by alice@ctl (apply" in refused.stderr and "--force" in refused.stderr
    forced = fleet_json("lock", "release", "--force", str(playbook), check_rc=0)
    released = [h for h in forced["hosts"] if h["released"]]
    assert [h["host"] for h in released] == [lab.hosts[0].name]
    assert released[0]["released"]["owner"] == "alice@ctl"

    asyncio.run(take("bob@elsewhere"))
    own = fleet("lock", "release", str(playbook), check_rc=0)
    assert f"{lab.hosts[0].name}: released (was bob@elsewhere, apply)" in own.stdout
    status = fleet_json("lock", "status", str(playbook), check_rc=0)
    assert all(h["lock"] is None for h in status["hosts"])


def test_journal_round_trip_through_fleet_history(lab: Lab, playbook: Path) -> None:
    first, second = lab.hosts[0].name, lab.hosts[2].name

    async def main() -> None:
        async with connected(lab) as connections:
            await Journal(connections[first], PROJECT).append(
                [entry("web", 1), entry("worker", 1)])
            await Journal(connections[first], PROJECT).append([entry("web", 2, "failed")])
            await Journal(connections[second], PROJECT).append([entry("web", 1)])

    asyncio.run(main())
    # A controller killed mid-write leaves a torn line: readers skip it.
    with (home(lab, first) / ".fleet" / PROJECT / "journal.jsonl").open("a") as journal:
        journal.write('{"command": "apply", "serv')

    result = fleet_json("history", str(playbook), check_rc=0)
    assert result["project"] == PROJECT and result["unreachable"] == []
    by_host = {h["host"]: h["entries"] for h in result["hosts"]}
    assert [(e["service"], e["revision"], e["outcome"]) for e in by_host[first]] == \
        [("web", 1, "ok"), ("worker", 1, "ok"), ("web", 2, "failed")]
    assert by_host[first][0]["spec"]["environment"] == {"TOKEN": "hmac-sha256:0123"}
    assert [e["revision"] for e in by_host[second]] == [1]
    assert all(by_host[h.name] == [] for h in lab.hosts if h.name not in (first, second))

    only_web = fleet_json("history", "--service", "web", "--last", "1", str(playbook),
                          check_rc=0)
    assert [e["revision"] for e in only_web["hosts"][0]["entries"]] == [2]

    text = fleet("history", "--limit", first, str(playbook), check_rc=0).stdout
    assert text.splitlines()[0] == first
    assert "alice@ctl" in text and "demo/web:v2 @cccccccccccc" in text and "failed" in text
