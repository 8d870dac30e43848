"""fleet at scale, as a user measures it: whole processes, alternating with their floor.

    python benchmarks/scale.py [--sizes 10,30] [--simulated-sizes 1000] [--runs 5]
                               [--rollout 100 [--rollout-simulated]]
                               [--forks 50] [--dir /var/lib/fleet-lab-scale]
                               [--subnet 198.18.5.0/24]
                               [--simulated-subnet 198.18.128.0/20]

Per size, on a lab of its own (real hosts: sshd + dockerd each; simulated: sshd each and one
Engine API simulator, `fleet lab up --simulated`) and the job of the issue: `web`
on a fixed host port with one environment variable per host, and a 2-replica `worker` on the
hetzner hosts. The fleet is converged once (`fleet apply`, timed as "cold apply"), then each
run alternates, as separate processes, interpreter start-up and imports included:

- floor: benchmarks/floor.py, asyncssh alone: connect to every host and GET /containers/json
  (the same concurrency limit as fleet's default --forks);
- check, plan: `python -m fleet check|plan` on the converged fleet (exit 0);
- no-op apply: `python -m fleet apply --yes` (lock and journal included; exit 0).

For each: the median wall seconds, CPU seconds (user + system) and peak RSS over the runs,
and the ratio of wall time to the floor's.

`--rollout N`: on N real hosts converged on v1, a v1 -> v2 rollout of `web` with `batch:
10%, monitor: 2s` (stop-first: a fixed host port), timed as a process, against what its
policy implies: batches x (swap + monitor), where swap is one host's v1 -> v2 change with no
monitor (`apply --limit` of one host, minus a no-op `apply --limit` of it: the process's own
cost) and the health gate inside it. "RSS/host" is (check's peak RSS - `fleet validate`'s)
/ hosts: what the controller holds per host above its baseline. The lab is torn down at the
end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from fleet.config.inventory import load_inventory
from fleet.lab import Lab, lab_down, lab_up

HERE = Path(__file__).resolve().parent
PLAYBOOK = """\
project: scale
inventory: {inventory}
update: {{batch: "100%", monitor: 0s}}
services:
  web:
    image: {registry}/demo/web:v1
    ports: ["8080:8080"]
    environment:
      HOST_NAME: "{{{{ host.name }}}}"
    restart: unless-stopped
  worker:
    image: {registry}/demo/worker:v1
    hosts: "cloud=hetzner"
    replicas: 2
    restart: unless-stopped
"""
COMMANDS = ("floor", "check", "plan", "no-op apply")


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float


@dataclass
class Figures:
    hosts: int
    simulated: bool
    cold_apply: float = 0.0
    baseline_rss_mib: float = 0.0
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def median(self, what: str, attribute: str) -> float:
        return float(statistics.median(getattr(s, attribute) for s in self.samples[what]))


def measure(argv: list[str], expect: int = 0) -> Sample:
    """Run a process to its end: wall time, and from wait4 its CPU time and peak RSS."""
    # stderr to a file, not a pipe: a thousand hosts' progress lines would fill a pipe that
    # nobody reads until the end, and block the process.
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != expect:
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
            raise SystemExit(f"{' '.join(argv)} exited {code}, expected {expect}:\n"
                             f"{stderr[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def fleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleet", *args]


def prepare(lab: Lab, work: Path) -> tuple[Path, Path]:
    playbook = work / "scale.yml"
    playbook.write_text(PLAYBOOK.format(inventory=lab.inventory_path, registry=lab.registry))
    hosts = [{"address": h.address, "port": h.port, "user": h.user or "root",
              "key": h.ssh_key, "known_hosts": h.known_hosts}
             for h in load_inventory([str(lab.inventory_path)]).hosts]
    floor_hosts = work / "hosts.json"
    floor_hosts.write_text(json.dumps(hosts))
    return playbook, floor_hosts


def bring_up(lab_dir: Path, size: int, subnet: str, simulated: bool) -> Lab:
    return lab_up(lab_dir, hosts=size, subnet=subnet, simulated=simulated)


def bench(size: int, simulated: bool, lab_dir: Path, subnet: str, runs: int,
          forks: int) -> Figures:
    lab_down(lab_dir)
    figures = Figures(size, simulated)
    try:
        started = time.perf_counter()
        lab = bring_up(lab_dir, size, subnet, simulated)
        print(f"  {size} hosts: lab up in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
        playbook, floor_hosts = prepare(lab, lab_dir)
        forks_flag = ["--forks", str(forks)]
        figures.cold_apply = measure(fleet("apply", "--yes", *forks_flag, str(playbook))).wall
        figures.baseline_rss_mib = measure(fleet("validate", str(playbook))).rss_mib
        steps = {
            "floor": [sys.executable, str(HERE / "floor.py"), str(floor_hosts),
                      "--forks", str(forks)],
            "check": fleet("check", *forks_flag, str(playbook)),
            "plan": fleet("plan", *forks_flag, str(playbook)),
            "no-op apply": fleet("apply", "--yes", *forks_flag, str(playbook)),
        }
        for run in range(runs):
            for what, argv in steps.items():
                figures.samples.setdefault(what, []).append(measure(argv))
            print(f"  {size} hosts: run {run + 1}/{runs} done", file=sys.stderr, flush=True)
    finally:
        lab_down(lab_dir)
    return figures


ROLLOUT_POLICY = 'update: {batch: "100%", monitor: 0s}'


def rollout_bench(size: int, lab_dir: Path, subnet: str, simulated: bool) -> None:
    lab_down(lab_dir)
    lab = bring_up(lab_dir, size, subnet, simulated)
    kind = "simulated" if simulated else "real"
    try:
        v1, _ = prepare(lab, lab_dir)
        text = v1.read_text()
        v2 = lab_dir / "v2-one.yml"
        v2.write_text(text.replace("demo/web:v1", "demo/web:v2"))
        rolling = lab_dir / "v2-rolling.yml"
        rolling.write_text(text.replace("demo/web:v1", "demo/web:v2").replace(
            ROLLOUT_POLICY, 'update: {batch: "10%", monitor: 2s}'))
        back = lab_dir / "v1-rolling.yml"
        back.write_text(text.replace(ROLLOUT_POLICY, 'update: {batch: "100%", monitor: 0s}'))
        measure(fleet("apply", "--yes", str(v1)))
        first = lab.hosts[0].name
        # One host's first v1 -> v2 pulls the image: the pull phase's floor (all hosts pull
        # at once in a rollout).
        pull_and_swap = measure(fleet("apply", "--yes", "--limit", first, str(v2))).wall
        measure(fleet("apply", "--yes", "--limit", first, str(v1)))
        swaps = []
        for _ in range(3):
            noop = measure(fleet("apply", "--yes", "--limit", first, str(v1))).wall
            one = measure(fleet("apply", "--yes", "--limit", first, str(v2))).wall
            measure(fleet("apply", "--yes", "--limit", first, str(v1)))
            swaps.append(one - noop)
        swap = statistics.median(swaps)
        pull = max(0.0, pull_and_swap - noop - swap)
        batches = -(-size // max(1, size // 10))
        implied = batches * (swap + 2.0)
        cold = measure(fleet("apply", "--yes", str(rolling)))  # hosts lack v2: pulls first
        measure(fleet("apply", "--yes", str(back)))
        warm = measure(fleet("apply", "--yes", str(rolling)))  # every host has v2 already
        print(f"\nrollout v1 -> v2 on {size} {kind} hosts (batch 10%, monitor 2s); implied by "
              f"the policy: {batches} batches x ({swap:.2f} s one-host swap + 2 s monitor) = "
              f"{implied:.1f} s; one host's pull {pull:.2f} s")
        for name, took, allowed in (("images to pull", cold, implied + pull),
                                    ("images present", warm, implied)):
            print(f"  {name}: {took.wall:.1f} s wall, {took.cpu:.1f} CPU-s, "
                  f"{took.rss_mib:.0f} MiB peak; ratio to the policy "
                  f"{took.wall / implied:.2f}x (to policy + one pull: "
                  f"{took.wall / allowed:.2f}x)")
    finally:
        lab_down(lab_dir)


def print_table(all_figures: list[Figures], runs: int) -> None:
    print(f"\nmedians of {runs} alternating runs; wall and CPU in seconds, RSS in MiB\n")
    print("| hosts | lab | cold apply | command | wall | CPU | peak RSS | wall/floor |")
    print("|------:|:----|-----------:|:--------|-----:|----:|---------:|-----------:|")
    for figures in all_figures:
        floor = figures.median("floor", "wall")
        for what in COMMANDS:
            wall = figures.median(what, "wall")
            print(f"| {figures.hosts} | {'simulated' if figures.simulated else 'real'} | "
                  f"{figures.cold_apply:.2f} | {what} | {wall:.2f} | "
                  f"{figures.median(what, 'cpu'):.2f} | {figures.median(what, 'rss_mib'):.0f} | "
                  f"{wall / floor:.2f}× |")
        per_host = (figures.median("check", "rss_mib") - figures.baseline_rss_mib) / figures.hosts
        print(f"| {figures.hosts} | | | RSS/host above `validate` "
              f"({figures.baseline_rss_mib:.0f} MiB) | | | {per_host:.2f} | |")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10,30")
    parser.add_argument("--simulated-sizes", default="")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rollout", type=int, default=0, help="hosts of the rollout run")
    parser.add_argument("--rollout-simulated", action="store_true",
                        help="run the rollout on simulated hosts")
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/fleet-lab-scale"))
    parser.add_argument("--subnet", default="198.18.5.0/24")
    parser.add_argument("--simulated-subnet", default="198.18.128.0/20")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    signal.signal(signal.SIGTERM, _terminate)
    # As installed from a wheel: byte-compiled. An editable install under
    # PYTHONDONTWRITEBYTECODE would compile every module in every measured process.
    compileall.compile_dir(str(HERE.parent / "fleet"), quiet=1)
    plan = [(int(n), False) for n in args.sizes.split(",") if n] + [
        (int(n), True) for n in args.simulated_sizes.split(",") if n]
    results = [bench(size, simulated, args.dir,
                     args.simulated_subnet if simulated else args.subnet, args.runs, args.forks)
               for size, simulated in plan]
    if results:
        print_table(results, args.runs)
    if args.rollout:
        rollout_bench(args.rollout, args.dir,
                      args.simulated_subnet if args.rollout_simulated else args.subnet,
                      args.rollout_simulated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
