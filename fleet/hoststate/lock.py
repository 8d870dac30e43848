"""A project's lease lock on one host: `<state_dir>/<project>/lock.json`.

Acquire creates the file exclusively (O_CREAT|O_EXCL over SFTP), so of two controllers racing
for a free lock exactly one wins. A stale (expired) lease is first renamed aside under a name
unique to the taker, then the lock is created exclusively again: of two takers racing, one
rename finds the file gone, and the exclusive create decides between them. If a slow taker
renamed aside a lease that a faster one had just created, it puts it back and gives way.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import asyncssh

from fleet.core.lease import (
    DEFAULT_TTL,
    MAX_LEASE_FILE,
    LockInfo,
    unreadable_lease_is_stale,
    utc_now,
)
from fleet.errors import HostStateError, LockHeld, LockLost
from fleet.hoststate import sftp as files
from fleet.hoststate.lease import holder_is_gone
from fleet.hoststate.paths import DEFAULT_STATE_DIR, ProjectPaths
from fleet.transport.ssh import HostConnection

ATTEMPTS = 6  # rounds of create/inspect before giving up on a lock that keeps changing
MID_WRITE_PAUSE = 0.2  # a holder writes its lease right after creating the file


class HostLock:
    """The project's lock on one host. Every method raises HostStateError on SFTP failures."""

    def __init__(self, connection: HostConnection, project: str,
                 state_dir: str = DEFAULT_STATE_DIR) -> None:
        self.connection = connection
        self.paths = ProjectPaths(state_dir, project)

    @property
    def host(self) -> str:
        return self.connection.name

    def _session(self, what: str) -> AbstractAsyncContextManager[files.Sftp]:
        return files.sftp_session(self.connection, f"cannot {what} {self.paths.lock}")

    def _unreadable(self, why: ValueError) -> HostStateError:
        return HostStateError(self.host, f"{self.paths.lock} is not a lease ({why}); "
                                         "`fleet lock release --force` removes it")

    async def read(self) -> LockInfo | None:
        """The lease on the lock, None if the lock is free. Raises HostStateError if damaged."""
        async with self._session("read") as sftp:
            data = await files.read_file(sftp, self.paths.lock, MAX_LEASE_FILE)
        if data is None:
            return None
        try:
            return LockInfo.decode(data)
        except ValueError as exc:
            raise self._unreadable(exc) from None

    async def acquire(self, lease: LockInfo, ttl: float = DEFAULT_TTL) -> LockInfo:
        """Take the lock with `lease` (the same run may take it again: it is renewed).

        Raises LockHeld when another run holds an unexpired lease.
        """
        async with self._session("take") as sftp:
            await files.ensure_dir(sftp, self.paths.directory)
            unreadable: ValueError | None = None  # why the last lease seen was not one
            for _ in range(ATTEMPTS):
                unreadable = None
                if await files.create_exclusive(sftp, self.paths.lock, lease.encode()):
                    return lease
                data = await files.read_file(sftp, self.paths.lock, MAX_LEASE_FILE)
                if data is None:
                    continue  # released meanwhile
                now = utc_now()
                try:
                    held: LockInfo | None = LockInfo.decode(data)
                except ValueError as exc:
                    held, unreadable = None, exc
                if held is None:
                    modified = await files.modified_at(sftp, self.paths.lock)
                    if not unreadable_lease_is_stale(modified, now, ttl):
                        await asyncio.sleep(MID_WRITE_PAUSE)
                        continue
                elif held.owned_by(lease.run_id):
                    renewed = held.renewed(now, ttl)
                    await files.replace_file(sftp, self.paths.lock, renewed.encode(),
                                             self.paths.aside(f"renew-{lease.run_id}"))
                    return renewed
                elif not held.expired(now) and not holder_is_gone(held):
                    raise LockHeld(self.host, held)
                await self._take_over(sftp, held, lease.run_id)
        if unreadable is not None:  # not a lease, and too recent to be a crashed writer's
            raise HostStateError(self.host, f"{self.paths.lock} is not a lease ({unreadable}) "
                                            "and was written less than a lease's TTL ago; "
                                            "`fleet lock release --force` removes it")
        raise HostStateError(self.host, f"{self.paths.lock} kept changing; try again")

    async def _take_over(self, sftp: files.Sftp, seen: LockInfo | None, run_id: str) -> None:
        """Move a stale lease out of the way (the caller then creates the lock anew)."""
        aside = self.paths.aside(f"stale-{run_id}")
        if not await files.rename_new(sftp, self.paths.lock, aside):
            return  # another taker moved it first
        data = await files.read_file(sftp, aside, MAX_LEASE_FILE) or b""
        try:
            moved: LockInfo | None = LockInfo.decode(data)
        except ValueError:
            moved = None
        fresh = moved is not None and moved != seen and not moved.expired(utc_now())
        # A faster taker's fresh lease, not the stale one we judged: give it back.
        if fresh and moved is not None and await self._put_back(sftp, aside):
            raise LockHeld(self.host, moved)
        await files.remove(sftp, aside)

    async def _put_back(self, sftp: files.Sftp, aside: str) -> bool:
        try:
            return await files.rename_new(sftp, aside, self.paths.lock)
        except asyncssh.SFTPError:  # a third run created the lock meanwhile
            return False

    async def renew(self, lease: LockInfo, ttl: float = DEFAULT_TTL) -> LockInfo:
        """Extend our lease. Raises LockLost if the lock is no longer ours."""
        async with self._session("renew") as sftp:
            data = await files.read_file(sftp, self.paths.lock, MAX_LEASE_FILE)
            try:
                held = LockInfo.decode(data) if data is not None else None
            except ValueError:
                held = None
            if held is None or not held.owned_by(lease.run_id):
                now_held = f"now held by {held.describe()}" if held else "it was removed"
                raise LockLost(self.host, f"the lock {self.paths.lock} is no longer ours: "
                                          f"{now_held}")
            renewed = held.renewed(utc_now(), ttl)
            await files.replace_file(sftp, self.paths.lock, renewed.encode(),
                                     self.paths.aside(f"renew-{lease.run_id}"))
            return renewed

    async def release(self, *, run_id: str | None = None, owner: str | None = None,
                      force: bool = False) -> LockInfo | None:
        """Remove the lock if it is ours (same run_id, or same owner), or any with `force`.

        Returns the lease removed (None if the lock was free or damaged and forced).
        Raises LockHeld if the lock belongs to someone else.
        """
        async with self._session("release") as sftp:
            data = await files.read_file(sftp, self.paths.lock, MAX_LEASE_FILE)
            if data is None:
                return None
            try:
                held: LockInfo | None = LockInfo.decode(data)
            except ValueError as exc:
                if not force:
                    raise self._unreadable(exc) from None
                held = None
            mine = held is not None and ((run_id is not None and held.owned_by(run_id))
                                         or (owner is not None and held.owner == owner))
            if held is not None and not (force or mine):
                raise LockHeld(self.host, held)
            await files.remove(sftp, self.paths.lock)
            return held
