"""Time and memory to bring up a lab of 6 and of 30 hosts (run as root).

    python benchmarks/lab_up.py [--sizes 6,30] [--dir /var/lib/fleet-lab-bench]
                                [--subnet 198.18.4.0/24]

For each size: a cold `up` (from nothing; keys and registry data kept from earlier runs), a
second `up` (nothing to do), the resident memory of the lab's daemons, and `down`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fleet.lab import lab_down, lab_up
from fleet.lab.hosts import protected
from fleet.lab.leftovers import select_processes
from fleet.lab.system import process_table

T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def rss_by_daemon(lab_dir: Path) -> dict[str, float]:
    """MiB of resident memory per process name, over every process of the lab."""
    table = process_table()
    pids = set(select_processes(table, set(), lab_dir, *protected()))
    totals: dict[str, float] = {}
    for info in table:
        if info.pid not in pids:
            continue
        try:
            status = Path(f"/proc/{info.pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                totals[info.comm] = totals.get(info.comm, 0.0) + int(line.split()[1]) / 1024
    return totals


def bench(size: int, lab_dir: Path, subnet: str) -> None:
    lab_down(lab_dir)
    _, cold = timed(lambda: lab_up(lab_dir, hosts=size, subnet=subnet))
    _, warm = timed(lambda: lab_up(lab_dir, hosts=size, subnet=subnet))
    time.sleep(2)  # let the daemons settle after start-up
    memory = rss_by_daemon(lab_dir)
    _, down = timed(lambda: lab_down(lab_dir))
    total = sum(memory.values())
    per_daemon = ", ".join(f"{name} {mib:.0f}" for name, mib in sorted(memory.items()))
    print(f"{size} hosts: up {cold:.1f} s, second up {warm:.1f} s, down {down:.1f} s")
    print(f"  RSS {total:.0f} MiB total, {total / size:.0f} MiB per host ({per_daemon})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,30")
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/fleet-lab-bench"))
    parser.add_argument("--subnet", default="198.18.4.0/24")
    options = parser.parse_args()
    try:
        for size in (int(s) for s in options.sizes.split(",")):
            bench(size, options.dir, options.subnet)
    finally:
        lab_down(options.dir, purge=True)


if __name__ == "__main__":
    main()
