"""The project's lock on many hosts at once, held for the length of a run.

    async with fleet_lock(pool.connected, "shop", "apply", state_dirs=dirs, wait=60) as lock:
        ...  # every host's lease is renewed in the background
        lock.check()  # before each step that changes something

All or nothing: if any host refuses, the leases already taken are released and LockHeld is
raised (with `wait`, retried with backoff until the wait has elapsed). Leases are released on
exit, also on errors and cancellation; a controller killed outright leaves leases that expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from fleet.config.inventory import Host
from fleet.core.lease import DEFAULT_TTL, LockInfo
from fleet.errors import HostError, HostStateError, LockHeld, LockLost
from fleet.hoststate.lease import new_lease
from fleet.hoststate.lock import HostLock
from fleet.hoststate.paths import DEFAULT_STATE_DIR
from fleet.transport.ssh import HostConnection

FIRST_BACKOFF, MAX_BACKOFF = 0.5, 5.0
RELEASE_TIMEOUT = 10.0


def state_dirs(hosts: Iterable[Host]) -> dict[str, str]:
    """Host name -> its state_dir setting, as fleet_lock and Journal take them."""
    return {host.name: host.state_dir for host in hosts}


@dataclass
class FleetLock:
    """The leases a run holds, kept up to date by the renewer."""

    project: str
    command: str
    run_id: str
    leases: dict[str, LockInfo]
    lost: dict[str, LockLost] = field(default_factory=dict)
    renew_failures: dict[str, HostError] = field(default_factory=dict)  # last one, per host

    @property
    def hosts(self) -> list[str]:
        return sorted(self.leases)

    def check(self) -> None:
        """Raises LockLost if a host's lease was removed or taken over during the run."""
        for host in sorted(self.lost):
            raise self.lost[host]


def _refusal(errors: Mapping[str, BaseException]) -> BaseException:
    """One error for a failed round: LockHeld naming the first holder, else the first error."""
    held = {h: e for h, e in sorted(errors.items()) if isinstance(e, LockHeld)}
    if held:
        first, *others = held
        return LockHeld(first, held[first].info, tuple(others))
    return next(e for _, e in sorted(errors.items()))


async def _release_all(locks: Mapping[str, HostLock], run_id: str) -> None:
    async def one(lock: HostLock) -> None:
        # Not ours any more, or the host is gone: nothing to do (a lease left behind expires).
        with contextlib.suppress(LockHeld, HostStateError):
            await lock.release(run_id=run_id)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(one(lock) for lock in locks.values())),
                               RELEASE_TIMEOUT)


async def _acquire_all(locks: Mapping[str, HostLock], lease: LockInfo,
                       ttl: float) -> dict[str, LockInfo]:
    names = list(locks)
    try:
        results = await asyncio.gather(*(locks[h].acquire(lease, ttl) for h in names),
                                       return_exceptions=True)
    except BaseException:  # cancelled midway: some hosts may be ours already
        await asyncio.shield(_release_all(locks, lease.run_id))
        raise
    errors = {h: r for h, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
    if errors:
        await asyncio.shield(_release_all(locks, lease.run_id))
        raise _refusal(errors)
    return {h: r for h, r in zip(names, results, strict=True) if isinstance(r, LockInfo)}


async def _renew_forever(handle: FleetLock, locks: Mapping[str, HostLock], ttl: float) -> None:
    while True:
        await asyncio.sleep(ttl / 3)

        async def one(host: str) -> None:
            try:
                handle.leases[host] = await locks[host].renew(handle.leases[host], ttl)
                handle.renew_failures.pop(host, None)
            except LockLost as exc:
                handle.lost[host] = exc
            except HostError as exc:  # try again next round; the lease outlives two misses
                handle.renew_failures[host] = exc

        await asyncio.gather(*(one(h) for h in handle.leases if h not in handle.lost))


@contextlib.asynccontextmanager
async def fleet_lock(connections: Mapping[str, HostConnection], project: str, command: str, *,
                     ttl: float = DEFAULT_TTL, wait: float | None = None,
                     state_dirs: Mapping[str, str] | None = None,
                     on_wait: Callable[[LockHeld], None] | None = None,
                     ) -> AsyncIterator[FleetLock]:
    """Hold the project's lock on every host in `connections` (name -> open connection).

    `wait`: seconds to keep retrying while another run holds a lock (None: fail at once);
    `on_wait` is told about each refusal before the retry. `state_dirs`: name -> state_dir
    (default ".fleet"). Raises LockHeld, or HostStateError when a host's files are unusable.
    """
    dirs = state_dirs or {}
    locks = {name: HostLock(conn, project, dirs.get(name, DEFAULT_STATE_DIR))
             for name, conn in sorted(connections.items())}
    run_id = uuid.uuid4().hex
    deadline = None if wait is None else time.monotonic() + wait
    backoff = FIRST_BACKOFF
    while True:
        try:
            leases = await _acquire_all(locks, new_lease(command, ttl, run_id=run_id), ttl)
            break
        except LockHeld as refused:
            remaining = 0.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise
            if on_wait is not None:
                on_wait(refused)
            # Jitter: two waiting controllers must not retry in lockstep.
            await asyncio.sleep(min(remaining, backoff * random.uniform(1.0, 1.5)))
            backoff = min(backoff * 2, MAX_BACKOFF)
    handle = FleetLock(project, command, run_id, leases)
    renewer = asyncio.create_task(_renew_forever(handle, locks, ttl))
    try:
        yield handle
    finally:
        renewer.cancel()
        try:
            # A renewal cut short could still land after the release and revive the lease.
            await asyncio.wait([renewer], timeout=RELEASE_TIMEOUT)
        finally:
            await asyncio.shield(_release_all(locks, run_id))
