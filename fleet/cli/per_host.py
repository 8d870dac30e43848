"""One piece of work on every targeted host: connect, run it (at most `forks` at once), and
keep each host's result or failure apart, in inventory order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from fleet.cli.progress import HostProgress
from fleet.cli.session import with_host_timeout
from fleet.config.inventory import Host
from fleet.engine.run import RunOptions
from fleet.errors import HostError
from fleet.transport import ConnectionPool
from fleet.transport.ssh import HostConnection

T = TypeVar("T")


@dataclass
class PerHost(Generic[T]):
    """One read or change on every targeted host: results in inventory order, and failures."""

    results: dict[str, T] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def failed_json(self) -> list[dict[str, str]]:
        return [{"host": h, "error": e} for h, e in sorted(self.failed.items())]


async def on_every_host_async(hosts: Sequence[Host], forks: int, connect_timeout: float,
                              quiet: bool,
                              work: Callable[[Host, HostConnection], Awaitable[T]], *,
                              host_timeout: float | None = None,
                              title: str = "reading",
                              outcome: PerHost[T] | None = None) -> PerHost[T]:
    """Connect to `hosts` and run `work` on each (at most `forks` at once), each within
    `host_timeout` (default: the command line's --host-timeout; 0: no deadline). Results
    and failures go into `outcome` as they come (one the caller keeps if it cancels)."""
    if host_timeout is None:
        host_timeout = with_host_timeout(RunOptions()).host_timeout
    outcome = PerHost() if outcome is None else outcome
    with HostProgress(title, len(hosts), quiet=quiet, plain_lines=False) as progress:
        async with ConnectionPool(hosts, forks=forks, connect_timeout=connect_timeout) as pool:
            limit = asyncio.Semaphore(forks)

            async def one(host: Host) -> None:
                connection = pool.connected.get(host.name)
                try:
                    if connection is None:
                        outcome.failed[host.name] = pool.failed[host.name].reason
                        return
                    async with limit, asyncio.timeout(host_timeout or None):
                        outcome.results[host.name] = await work(host, connection)
                except TimeoutError:
                    outcome.failed[host.name] = (f"no answer within {host_timeout:g}s "
                                                 "(--host-timeout)")
                except HostError as exc:
                    outcome.failed[host.name] = exc.reason
                finally:
                    progress.host_done(host.name)

            await asyncio.gather(*(one(h) for h in hosts))
    order = [h.name for h in hosts]
    outcome.results = {h: outcome.results[h] for h in order if h in outcome.results}
    return outcome


def on_every_host(hosts: Sequence[Host], forks: int, connect_timeout: float, quiet: bool,
                  work: Callable[[Host, HostConnection], Awaitable[T]]) -> PerHost[T]:
    return asyncio.run(on_every_host_async(hosts, forks, connect_timeout, quiet, work))
