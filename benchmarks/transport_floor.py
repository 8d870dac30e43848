"""The transport floor: one SSH connection per host plus one Docker API call each, in parallel.

    python benchmarks/transport_floor.py /var/lib/fleet-lab/inventory.yml [--forks 50] [--runs 3]

This is the least any fleet command that reads every host can cost; `fleet check` is
measured against it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from fleet.config.inventory import Host, load_inventory
from fleet.docker.client import DockerClient
from fleet.docker.wire import MAX_API_VERSION
from fleet.transport import ConnectionPool, HostConnection
from fleet.transport.ssh import DEFAULT_FORKS


async def list_containers(host: HostConnection) -> int:
    # The version is pinned so that the floor is exactly one API call; fleet commands
    # negotiate it (GET /version), one round trip more per host.
    docker = DockerClient.over_ssh(host, api_version=MAX_API_VERSION)
    try:
        return len(await docker.list_containers(all=True))
    finally:
        await docker.aclose()


async def floor_once(targets: list[Host], forks: int) -> tuple[float, int, list[str]]:
    """Seconds for connect + GET /containers/json on every host; containers seen; failures."""
    started = time.perf_counter()
    async with ConnectionPool(targets, forks=forks) as pool:
        counts = await asyncio.gather(*(list_containers(h) for h in pool.connected.values()))
        elapsed = time.perf_counter() - started
        failures = [str(error) for error in pool.failed.values()]
    return elapsed, sum(counts), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("inventory", help="inventory file (e.g. the lab's inventory.yml)")
    parser.add_argument("--forks", type=int, default=DEFAULT_FORKS)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    targets = list(load_inventory([args.inventory]).hosts)
    timings = []
    for run in range(1, args.runs + 1):
        elapsed, containers, failures = asyncio.run(floor_once(targets, args.forks))
        timings.append(elapsed)
        print(f"run {run}: {len(targets)} hosts, {containers} containers, "
              f"{len(failures)} unreachable, {elapsed:.3f} s")
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
    print(f"floor: median {statistics.median(timings):.3f} s, best {min(timings):.3f} s "
          f"({len(targets)} hosts, forks {args.forks})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
