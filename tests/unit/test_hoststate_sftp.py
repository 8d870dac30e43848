"""Journal and locks over SFTP against a real asyncssh server on loopback (chrooted homes)."""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncssh
import pytest

from fleet.config.inventory import Host
from fleet.core.journal import JournalEntry
from fleet.core.lease import LockInfo, utc_now
from fleet.errors import HostStateError, LockHeld, LockLost
from fleet.hoststate import (
    HostLock,
    Journal,
    fleet_lock,
    new_lease,
    sftp,
)
from fleet.transport import HostConnection


def entry(revision: int) -> JournalEntry:
    return JournalEntry(command="apply", service="web", replica=1, revision=revision,
                        image="web:1", digest="sha256:" + "a" * 64, spec={"image": "web:1"},
                        spec_hash="h" * 64, outcome="ok")


@contextlib.asynccontextmanager
async def host(home: Path, name: str = "h1", server_class: type[asyncssh.SFTPServer] =
               asyncssh.SFTPServer) -> AsyncIterator[HostConnection]:
    """An SSH server whose SFTP root is `home`, and a fleet connection to it."""
    home.mkdir(parents=True, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_key.export_public_key().decode()),
        sftp_factory=lambda chan: server_class(chan, chroot=str(home).encode()),
        allow_pty=False)
    port = server.sockets[0].getsockname()[1]
    ssh = await asyncssh.connect("127.0.0.1", port, username="fleet", client_keys=[client_key],
                                 known_hosts=None)
    connection = HostConnection(Host(name=name, address="127.0.0.1", port=port), ssh)
    try:
        yield connection
    finally:
        await connection.close()
        server.close()
        await server.wait_closed()


def run(tmp_path: Path, body: Callable[[HostConnection], Awaitable[None]]) -> None:
    async def main() -> None:
        async with host(tmp_path / "home") as connection:
            await body(connection)

    asyncio.run(main())


def test_journal_appends_and_reads_back(tmp_path: Path) -> None:
    async def body(connection: HostConnection) -> None:
        journal = Journal(connection, "shop")
        assert await journal.read() == []
        await journal.append([entry(1), entry(2)])
        await journal.append([entry(3)])
        assert [e.revision for e in await journal.read()] == [1, 2, 3]

    run(tmp_path, body)
    directory = tmp_path / "home" / ".fleet" / "shop"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "journal.jsonl").stat().st_mode) == 0o600


def test_append_after_a_torn_line_keeps_the_new_entries(tmp_path: Path) -> None:
    journal_file = tmp_path / "home" / "state" / "shop" / "journal.jsonl"

    async def body(connection: HostConnection) -> None:
        journal = Journal(connection, "shop", state_dir="~/state")
        await journal.append([entry(1)])
        with journal_file.open("ab") as torn:  # a controller killed mid-write
            torn.write(b'{"command": "apply", "serv')
        assert [e.revision for e in await journal.read()] == [1]
        assert journal.skipped == 1
        await journal.append([entry(2)])
        assert [e.revision for e in await journal.read()] == [1, 2]

    run(tmp_path, body)


def test_lock_is_exclusive_and_released_by_its_owner(tmp_path: Path) -> None:
    async def body(connection: HostConnection) -> None:
        lock = HostLock(connection, "shop")
        assert await lock.read() is None
        ours = new_lease("apply", 600)
        assert await lock.acquire(ours) == ours
        assert await lock.read() == ours
        theirs = new_lease("rollback", 600)
        with pytest.raises(LockHeld) as refused:
            await lock.acquire(theirs)
        assert refused.value.info == ours and "apply" in str(refused.value)
        with pytest.raises(LockHeld):
            await lock.release(run_id=theirs.run_id)
        again = await lock.acquire(ours)  # the same run again: renewed, not refused
        assert again.run_id == ours.run_id
        assert await lock.release(run_id=ours.run_id) == again
        assert await lock.read() is None
        assert await lock.release(run_id=ours.run_id) is None

    run(tmp_path, body)


def test_stale_lease_is_taken_over_and_the_old_holder_learns_it(tmp_path: Path) -> None:
    async def body(connection: HostConnection) -> None:
        lock = HostLock(connection, "shop")
        old = await lock.acquire(new_lease("apply", 0.2), ttl=0.2)
        await asyncio.sleep(0.3)
        new = await lock.acquire(new_lease("apply", 600))
        assert await lock.read() == new
        with pytest.raises(LockLost, match="no longer ours"):
            await lock.renew(old)
        renewed = await lock.renew(new, ttl=1200)
        assert renewed.expires_at > new.expires_at
        assert await lock.read() == renewed

    run(tmp_path, body)
    leftovers = sorted(p.name for p in (tmp_path / "home" / ".fleet" / "shop").iterdir())
    assert leftovers == ["lock.json"]


def test_racing_takers_of_a_stale_lease_end_with_one_holder(tmp_path: Path) -> None:
    async def body(connection: HostConnection) -> None:
        lock = HostLock(connection, "shop")
        await lock.acquire(new_lease("apply", 0.1), ttl=0.1)
        await asyncio.sleep(0.2)
        leases = [new_lease("apply", 600) for _ in range(6)]
        results = await asyncio.gather(*(lock.acquire(x) for x in leases),
                                       return_exceptions=True)
        winners = [r for r in results if isinstance(r, LockInfo)]
        assert len(winners) == 1, results
        assert all(isinstance(r, LockHeld) for r in results if r not in winners)
        assert await lock.read() == winners[0]

    run(tmp_path, body)


def test_damaged_lock_file(tmp_path: Path) -> None:
    lock_file = tmp_path / "home" / ".fleet" / "shop" / "lock.json"

    async def body(connection: HostConnection) -> None:
        lock_file.parent.mkdir(parents=True)
        lock_file.write_text("{")
        lock = HostLock(connection, "shop")
        with pytest.raises(HostStateError, match="not a lease"):
            await lock.read()
        with pytest.raises(HostStateError, match=r"not a lease .* less than a lease.s TTL"):
            await lock.acquire(new_lease("apply", 600))  # fresh: maybe mid-write
        assert await lock.release(force=True) is None
        assert not lock_file.exists()

    run(tmp_path, body)


def test_release_by_owner_name_or_force(tmp_path: Path) -> None:
    async def body(connection: HostConnection) -> None:
        lock = HostLock(connection, "shop")
        held = await lock.acquire(new_lease("apply", 600))
        with pytest.raises(LockHeld):
            await lock.release(owner="somebody@else")
        assert await lock.release(owner=held.owner) == held
        held = await lock.acquire(new_lease("apply", 600))
        assert await lock.release(force=True) == held

    run(tmp_path, body)


def test_unwritable_state_dir_is_a_host_state_error(tmp_path: Path) -> None:
    async def body(connection: HostConnection) -> None:
        (tmp_path / "home" / "file").write_text("")
        with pytest.raises(HostStateError) as caught:
            await Journal(connection, "shop", state_dir="file").append([entry(1)])
        assert caught.value.host == "h1" and "file/shop/journal.jsonl" in str(caught.value)

    run(tmp_path, body)


def test_fleet_lock_is_all_or_nothing_and_waits(tmp_path: Path) -> None:
    async def main() -> None:
        async with host(tmp_path / "a", "a") as a, host(tmp_path / "b", "b") as b:
            connections = {"a": a, "b": b}
            blocker = await HostLock(b, "shop").acquire(new_lease("rollback", 600))
            with pytest.raises(LockHeld) as refused:
                async with fleet_lock(connections, "shop", "apply"):
                    pass
            assert refused.value.host == "b" and refused.value.info == blocker
            assert await HostLock(a, "shop").read() is None  # a was given back

            waits: list[LockHeld] = []

            async def release_soon() -> None:
                await asyncio.sleep(0.6)
                await HostLock(b, "shop").release(run_id=blocker.run_id)

            releaser = asyncio.create_task(release_soon())
            async with fleet_lock(connections, "shop", "apply", wait=10,
                                  on_wait=waits.append) as lock:
                assert lock.hosts == ["a", "b"] and waits
                assert (await HostLock(a, "shop").read()) == lock.leases["a"]
            await releaser
            assert await HostLock(a, "shop").read() is None
            assert await HostLock(b, "shop").read() is None

    asyncio.run(main())


def test_fleet_lock_renews_in_the_background_and_notices_loss(tmp_path: Path) -> None:
    async def main() -> None:
        async with host(tmp_path / "a", "a") as a, \
                fleet_lock({"a": a}, "shop", "apply", ttl=0.6) as lock:
            first = lock.leases["a"].expires_at
            await asyncio.sleep(0.5)
            assert lock.leases["a"].expires_at > first
            lock.check()
            await HostLock(a, "shop").release(force=True)
            await asyncio.sleep(0.4)
            with pytest.raises(LockLost):
                lock.check()

    asyncio.run(main())


def test_fleet_lock_releases_on_error_and_cancellation(tmp_path: Path) -> None:
    async def main() -> None:
        async with host(tmp_path / "a", "a") as a:
            with pytest.raises(RuntimeError):
                async with fleet_lock({"a": a}, "shop", "apply"):
                    raise RuntimeError("boom")
            assert await HostLock(a, "shop").read() is None

            entered = asyncio.Event()

            async def holder() -> None:
                async with fleet_lock({"a": a}, "shop", "apply"):
                    entered.set()
                    await asyncio.sleep(60)

            task = asyncio.create_task(holder())
            await entered.wait()
            assert await HostLock(a, "shop").read() is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert await HostLock(a, "shop").read() is None

    asyncio.run(main())


def test_wait_gives_up_after_the_wait(tmp_path: Path) -> None:
    async def main() -> None:
        async with host(tmp_path / "a", "a") as a:
            await HostLock(a, "shop").acquire(new_lease("apply", 600))
            started = utc_now()
            with pytest.raises(LockHeld):
                async with fleet_lock({"a": a}, "shop", "apply", wait=0.8):
                    pass
            assert utc_now() - started < timedelta(seconds=3)

    asyncio.run(main())


class DripFeeding(asyncssh.SFTPServer):
    """Opens files, then never answers a read: a host holding a run hostage."""

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        await asyncio.sleep(3600)
        return b""


def test_a_host_that_never_answers_a_read_is_given_up_on(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp, "SESSION_DEADLINE", 0.5)
    home = tmp_path / "home"
    (home / ".fleet" / "p").mkdir(parents=True)
    (home / ".fleet" / "p" / "journal.jsonl").write_bytes(b"{}\n")

    async def main() -> None:
        async with host(home, server_class=DripFeeding) as connection:
            with pytest.raises(HostStateError, match=r"no answer within 0\.5s"):
                await asyncio.wait_for(Journal(connection, "p").read(), 10)

    asyncio.run(main())
