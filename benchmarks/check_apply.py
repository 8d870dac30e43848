"""`fleet check` and a cold `fleet apply` against their floors, on a lab of N hosts (run as root).

    python benchmarks/check_apply.py [--sizes 10,30] [--runs 5] [--forks 50]
                                     [--dir /var/lib/fleet-lab-bench2] [--subnet 198.18.3.0/24]

Per size, on a lab of its own and a generated playbook (`web` from the lab registry's
demo/web:v1 with container port 8080 on every host, `worker` with 2 replicas on the hetzner
hosts; one batch, no monitoring window, so the rollout policy adds no waiting of its own):

- floor: connect + GET /containers/json on every host, in parallel (transport_floor.py);
- check: `fleet check` in-process (load + connect + observe + diff: the CLI's library path,
  without interpreter start-up), on the converged fleet; and `python -m fleet check` wall time;
- apply: a cold `fleet apply` in-process (load + connect + lock + observe + plan + rollout,
  journal included), with no containers and no images on the hosts;
- floor+pull+start: connect, list, pull the images and create + start the same containers
  directly through the transport's DockerClient, every host and call in parallel.

Times are medians of --runs runs (connection close excluded, as in transport_floor.py).
Containers and images are removed from every host between cold runs; the lab is torn down at
the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from transport_floor import floor_once

from fleet.config.inventory import Host, load_inventory
from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import desired_state
from fleet.core.diff import Kind
from fleet.core.plan import ActionKind
from fleet.docker.client import DockerClient
from fleet.docker.wire import MAX_API_VERSION
from fleet.engine.rollout import Rollout
from fleet.engine.run import Run, RunOptions
from fleet.hoststate.multi import fleet_lock, state_dirs
from fleet.lab import Lab, lab_down, lab_exec, lab_up
from fleet.transport import ConnectionPool, HostConnection
from fleet.transport.ssh import DEFAULT_FORKS

PROJECT = "bench"
WORKER_HOSTS = "cloud=hetzner"
WORKER_REPLICAS = 2
REPO_ROOT = Path(__file__).resolve().parent.parent

PLAYBOOK = """\
project: {project}
inventory: {inventory}
update: {{batch: "100%", monitor: 0s}}
services:
  web:
    image: {registry}/demo/web:v1
    ports: ["8080"]
    environment:
      CLOUD: "{{{{ host.labels.cloud }}}}"
    restart: unless-stopped
  worker:
    image: {registry}/demo/worker:v1
    hosts: "{worker_hosts}"
    replicas: {replicas}
    restart: unless-stopped
"""


# -- the lab ------------------------------------------------------------------------------

def write_playbook(directory: Path, lab: Lab) -> Path:
    path = directory / "bench.yml"
    path.write_text(PLAYBOOK.format(project=PROJECT, inventory=lab.inventory_path,
                                     registry=lab.registry, worker_hosts=WORKER_HOSTS,
                                     replicas=WORKER_REPLICAS))
    return path


def _docker(lab: Lab, host: str, *argv: str) -> str:
    return lab_exec(lab, host, ["docker", *argv], check=True).stdout


def clean_host(lab: Lab, host: str) -> None:
    """No containers and no images left on the host: the next apply is cold."""
    ids = _docker(lab, host, "ps", "-aq").split()
    if ids:
        _docker(lab, host, "rm", "-f", "-v", *ids)
    _docker(lab, host, "image", "prune", "-a", "-f")
    left = (_docker(lab, host, "ps", "-aq") + _docker(lab, host, "images", "-q")).split()
    if left:
        raise RuntimeError(f"{host}: still there after cleaning: {left}")


def clean_lab(lab: Lab) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda h: clean_host(lab, h.name), lab.hosts))


# -- what is measured ---------------------------------------------------------------------

async def check_once(playbook: Path, forks: int) -> float:
    """`fleet check`'s library path; the fleet must be in sync."""
    started = time.perf_counter()
    state = desired_state(read_project(ProjectFiles([str(playbook)])))
    async with Run(state, RunOptions(forks=forks)) as run:
        observation = await run.observe()
        findings = run.diff(observation)
        elapsed = time.perf_counter() - started
    drift = [f for fs in findings.values() for f in fs if f.kind != Kind.IN_SYNC]
    if drift or observation.unreachable or len(findings) != len(state.targeted_hosts):
        raise RuntimeError(f"check: not in sync: {drift[:3]} {observation.unreachable}")
    return elapsed


def check_cli(playbook: Path, forks: int) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fleet", "check", "--forks", str(forks),
                           str(playbook)], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"fleet check exited {done.returncode}: {done.stdout}{done.stderr}")
    return elapsed


async def apply_once(playbook: Path, forks: int, expected_pulls: int) -> float:
    """`fleet apply --yes`'s library path (lock, observe, plan, rollout with its journal), on
    hosts with no containers and no images."""
    started = time.perf_counter()
    state = desired_state(read_project(ProjectFiles([str(playbook)])))
    async with Run(state, RunOptions(forks=forks)) as run, fleet_lock(
            run.pool.connected, state.project, "apply",
            state_dirs=state_dirs(state.targeted_hosts)):
        observation = await run.observe(for_changes=True)
        plan = run.plan(observation)
        result = await Rollout(run, plan).execute()
        elapsed = time.perf_counter() - started
    pulls = sum(1 for a in plan.actions if a.kind == ActionKind.PULL)
    if not result.ok or plan.unreachable or pulls != expected_pulls:
        raise RuntimeError(f"apply: not a clean cold apply: {pulls} pulls (expected "
                           f"{expected_pulls}), stopped {result.stopped!r}, "
                           f"unreachable {dict(plan.unreachable)}, {result.reports[:3]}")
    return elapsed


@dataclass(frozen=True)
class Wanted:
    """What one host should run: images, and containers as (name, image, create body)."""

    images: tuple[str, ...]
    containers: tuple[tuple[str, dict[str, Any]], ...] = ()


def wanted_on(lab: Lab, worker_hosts: set[str]) -> dict[str, Wanted]:
    web, worker = f"{lab.registry}/demo/web:v1", f"{lab.registry}/demo/worker:v1"
    web_body = {"Image": web, "Env": ["CLOUD=x"], "ExposedPorts": {"8080/tcp": {}},
                "HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": ""}]},
                               "RestartPolicy": {"Name": "unless-stopped"}}}
    worker_body = {"Image": worker, "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}}
    result = {}
    for host in lab.hosts:
        containers = [("floor-web-1", web_body)]
        images = [web]
        if host.name in worker_hosts:
            images.append(worker)
            containers += [(f"floor-worker-{i}", worker_body)
                           for i in range(1, WORKER_REPLICAS + 1)]
        result[host.name] = Wanted(tuple(images), tuple(containers))
    return result


async def pull_and_start(host: HostConnection, wanted: Wanted) -> None:
    # One client for every call, its version pinned as in transport_floor (no negotiation).
    docker = DockerClient.over_ssh(host, api_version=MAX_API_VERSION)
    try:
        await docker.list_containers(all=True)
        await asyncio.gather(*(docker.pull_image(image) for image in wanted.images))

        async def create_and_start(name: str, body: dict[str, Any]) -> None:
            created = await docker.create_container(name, body)
            await docker.start_container(str(created["Id"]))

        await asyncio.gather(*(create_and_start(n, b) for n, b in wanted.containers))
    finally:
        await docker.aclose()


async def floor_pull_start_once(targets: Sequence[Host], forks: int,
                                wanted: dict[str, Wanted]) -> float:
    started = time.perf_counter()
    async with ConnectionPool(targets, forks=forks) as pool:
        if pool.failed:
            raise RuntimeError(f"unreachable: {pool.failed}")
        await asyncio.gather(*(pull_and_start(h, wanted[name])
                               for name, h in pool.connected.items()))
        return time.perf_counter() - started


async def floor_seconds(targets: list[Host], forks: int) -> float:
    elapsed, _, failures = await floor_once(targets, forks)
    if failures:
        raise RuntimeError(f"floor: unreachable: {failures}")
    return elapsed


# -- the benchmark ------------------------------------------------------------------------

@dataclass
class Figures:
    hosts: int
    timings: dict[str, list[float]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)

    def add(self, what: str, seconds: float) -> None:
        self.timings.setdefault(what, []).append(seconds)

    def median(self, what: str) -> float:
        return statistics.median(self.timings[what])


def timed_runs(figures: Figures, runs: int, steps: dict[str, Callable[[], float]],
               before: Callable[[], None] | None = None) -> None:
    """Interleaved: every step once per run, so load changes hit them alike."""
    for run in range(1, runs + 1):
        line = []
        for what, step in steps.items():
            if before is not None:
                before()
            seconds = step()
            figures.add(what, seconds)
            line.append(f"{what} {seconds:.3f}")
        print(f"  run {run}: " + ", ".join(line), flush=True)


def bench(size: int, lab_dir: Path, subnet: str, runs: int, forks: int) -> Figures:
    figures = Figures(size, load=[os.getloadavg()[0]])
    lab_down(lab_dir)
    lab = lab_up(lab_dir, hosts=size, subnet=subnet)
    targets = list(load_inventory([str(lab.inventory_path)]).hosts)
    worker_hosts = {h.name for h in lab.hosts if h.labels.get("cloud") == "hetzner"}
    wanted = wanted_on(lab, worker_hosts)
    pulls = sum(len(w.images) for w in wanted.values())
    containers = sum(len(w.containers) for w in wanted.values())
    print(f"{size} hosts ({len(worker_hosts)} with workers): {containers} containers, "
          f"{pulls} pulls", flush=True)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        playbook = write_playbook(Path(tmp), lab)
        print(" cold apply vs floor+pull+start:", flush=True)
        timed_runs(figures, runs, {
            "apply": lambda: asyncio.run(apply_once(playbook, forks, pulls)),
            "floor+pull+start": lambda: asyncio.run(
                floor_pull_start_once(targets, forks, wanted)),
        }, before=lambda: clean_lab(lab))
        clean_lab(lab)
        asyncio.run(apply_once(playbook, forks, pulls))  # converged: what check looks at
        asyncio.run(floor_seconds(targets, forks))  # warm-up (page cache, key loading)
        asyncio.run(check_once(playbook, forks))
        print(" check vs floor (converged fleet):", flush=True)
        timed_runs(figures, runs, {
            "floor": lambda: asyncio.run(floor_seconds(targets, forks)),
            "check": lambda: asyncio.run(check_once(playbook, forks)),
            "check (CLI)": lambda: check_cli(playbook, forks),
        })
        clean_lab(lab)
    figures.load.append(os.getloadavg()[0])
    return figures


def print_table(all_figures: list[Figures], runs: int) -> None:
    print(f"\nmedians of {runs} runs, seconds; load average (1 min) at start/end of each size")
    print("| hosts | floor | check | check/floor | check CLI | CLI/floor "
          "| floor+pull+start | cold apply | apply/(floor+pull+start) | load |")
    print("|------:|------:|------:|------:|------:|------:|------:|------:|------:|------|")
    for f in all_figures:
        floor, check, cli = f.median("floor"), f.median("check"), f.median("check (CLI)")
        direct, apply = f.median("floor+pull+start"), f.median("apply")
        load = "–".join(f"{value:.1f}" for value in f.load)
        print(f"| {f.hosts} | {floor:.3f} | {check:.3f} | {check / floor:.2f}× | {cli:.3f} "
              f"| {cli / floor:.2f}× | {direct:.3f} | {apply:.3f} | {apply / direct:.2f}× "
              f"| {load} |")
    print("\nranges (min–max):")
    for f in all_figures:
        spans = ", ".join(f"{what} {min(ts):.3f}–{max(ts):.3f}"
                          for what, ts in f.timings.items())
        print(f"  {f.hosts} hosts: {spans}")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the teardown below


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,30")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--forks", type=int, default=DEFAULT_FORKS)
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/fleet-lab-bench2"))
    parser.add_argument("--subnet", default="198.18.3.0/24")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    results = []
    try:
        for size in (int(s) for s in options.sizes.split(",")):
            results.append(bench(size, options.dir, options.subnet, options.runs,
                                 options.forks))
    finally:
        # A second Ctrl-C must not cut the teardown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        lab_down(options.dir, purge=True)
    print_table(results, options.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
