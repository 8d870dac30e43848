"""The same job with fleet, Ansible + community.docker and pyinfra, side by side (issue 11).

    python benchmarks/peers/run.py [--sizes 30,100] [--runs 3] [--forks 50]
                                   [--work /var/lib/fleet-peers]
                                   [--dir /var/lib/fleet-lab-peers] [--subnet 198.18.60.0/24]

As root. Each peer gets its own virtualenv under --work (`pip install ansible docker requests`,
`pip install pyinfra`; skipped when present). Per size, a real lab of its own (torn down at the
end, also on error or Ctrl-C) and the job of benchmarks/scale.py's PLAYBOOK: `web`
(demo/web:v1, host port 8080, HOST_NAME = the host's name, restart unless-stopped) on every
host, `worker` (demo/worker:v1, worker-1 and worker-2) on the cloud=hetzner hosts.

Each run goes through the tools in turn (alternating), each on hosts reset to nothing (no
containers, no images, no fleet state: not timed), as whole processes:

- cold: fleet `apply --yes` (batch 100%, monitor 0s), fleet with its default policy,
  `ansible-playbook`, `pyinfra -y`;
- no-op: the same again on the converged hosts;
- check: `fleet check`, `ansible-playbook --check`, `pyinfra --dry`;
- stopped: one host's web container stopped by hand (docker stop), then the check again:
  does the tool's output or exit code say so?

Concurrency 50 for all (`--forks 50`, `-f 50`, `--parallel 50`). Figures: medians over the
runs of wall seconds, CPU seconds (user + system of the process and every descendant, daemons
it left behind included: this process is their subreaper and reaps them after each run), the
peak RSS of the largest process (wait4) and of the whole process tree (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import compileall
import ctypes
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from scale import PLAYBOOK, ROLLOUT_POLICY  # noqa: E402  (benchmarks/ is not a package)

from fleet.config.inventory import load_inventory  # noqa: E402
from fleet.lab import Lab, lab_down, lab_exec, lab_up  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
PAGE = os.sysconf("SC_PAGE_SIZE")
TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # what an INI value may be without quoting
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.MULTILINE)
TOOLS = ("fleet", "fleet defaults", "ansible", "pyinfra")
PHASES = ("cold", "no-op", "check", "stopped")


# ---------------------------------------------------------------- measuring whole processes

@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float  # the largest process's peak
    tree_mib: float  # the whole tree's peak, sampled


@dataclass
class Result:
    sample: Sample
    code: int
    output: str


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found.extend(int(p) for p in listing.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def _tree_rss(roots: Sequence[int]) -> int:
    total, stack, seen = 0, list(roots), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        stack.extend(_children(pid))
    return total


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _left_behind(before: set[int]) -> list[int]:
    """Daemons a measured run left, reparented to us (its subreaper): ssh ControlPersist
    masters. Containers' shims are reparented here too (dockerd is our child): not the tool's."""
    return [pid for pid in set(_children(os.getpid())) - before if _comm(pid) == "ssh"]


def measure(argv: Sequence[str], env: dict[str, str] | None = None,
            expect: Sequence[int] = (0,)) -> Result:
    """Run a process to its end; CPU of everything it started, daemons left behind included."""
    before_children = set(_children(os.getpid()))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, env=env)
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_rss([process.pid, *_left_behind(before_children)]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        _end(_left_behind(before_children))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        output.seek(0)
        text = output.read().decode(errors="replace")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode not in expect:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}, expected "
                         f"{'/'.join(map(str, expect))}:\n{text[-3000:]}")
    largest = usage.ru_maxrss / 1024  # a sample can miss the peak: the tree holds at least it
    return Result(Sample(wall, cpu, largest, max(largest, peak[0] / 2**20)),
                  process.returncode, text)


def _end(pids: Sequence[int]) -> None:
    """End and reap them, so that their CPU counts and the next run starts from nothing, as
    a new process would."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def reap_exited_shims() -> None:
    """Containers' shims that exited after we adopted them (on reset) are ours to reap."""
    for pid in _children(os.getpid()):
        if _comm(pid).startswith("containerd-shim"):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    state = stat.read().rsplit(")", 1)[1].split()[0]
                if state == "Z":
                    os.waitpid(pid, 0)
            except (FileNotFoundError, ChildProcessError, IndexError):
                pass


# ---------------------------------------------------------------- the peers' virtualenvs

# The hosts see the controller's filesystem but not its /root (where pyenv's interpreters
# live): the peers' venvs are made from the system interpreter, so that Ansible's modules can
# run on the hosts with the ansible venv's python (and its docker SDK).
BASE_PYTHON = Path("/usr/bin/python3")


def ensure_venv(venv: Path, packages: Sequence[str], probe: str) -> None:
    python = venv / "bin" / "python"
    config = venv / "pyvenv.cfg"
    made_from_base = config.exists() and f"home = {BASE_PYTHON.parent}\n" in config.read_text()
    if made_from_base and subprocess.run([str(python), "-c", probe],
                                         capture_output=True).returncode == 0:
        return
    print(f"installing {' '.join(packages)} into {venv}", file=sys.stderr, flush=True)
    subprocess.run([str(BASE_PYTHON), "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)


def versions(work: Path) -> list[str]:
    def dist(venv: str, *names: str) -> str:
        script = ("import importlib.metadata as m, sys\n"
                  "print(' '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))")
        return subprocess.run([str(work / venv / "bin" / "python"), "-c", script, *names],
                              capture_output=True, text=True, check=True).stdout.strip()

    manifests = sorted((work / "ansible").glob(
        "lib/python*/site-packages/ansible_collections/community/docker/MANIFEST.json"))
    docker_collection = (json.loads(manifests[0].read_text())["collection_info"]["version"]
                         if manifests else "missing")
    head = subprocess.run(["git", "-C", str(HERE), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True).stdout.strip()
    return [f"fleet at {head}",
            f"{dist('ansible', 'ansible', 'ansible-core', 'docker', 'requests')}, "
            f"community.docker {docker_collection}",
            dist("pyinfra", "pyinfra", "paramiko", "gevent")]


# ---------------------------------------------------------------- the job for each tool

@dataclass
class Job:
    """Where each tool's inputs are, and how each is run."""

    lab: Lab
    work: Path
    forks: int
    fleet_playbook: Path = Path()
    fleet_defaults: Path = Path()
    ansible_inventory: Path = Path()
    pyinfra_hosts: Path = Path()

    def env(self, tool: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        if tool == "ansible":
            control = self.work / "ansible-cp"
            control.mkdir(exist_ok=True)
            env.update({
                "ANSIBLE_CONFIG": str(self.work / "none.cfg"),  # no /etc/ansible, no ./
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                "ANSIBLE_PIPELINING": "True",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"),
                "ANSIBLE_DEPRECATION_WARNINGS": "False",
            })
        if tool == "pyinfra":
            env["PEERS_HOSTS_JSON"] = str(self.pyinfra_hosts)
        return env

    def argv(self, tool: str, phase: str) -> list[str]:
        forks = str(self.forks)
        check = phase in ("check", "stopped")
        if tool.startswith("fleet"):
            playbook = self.fleet_defaults if tool == "fleet defaults" else self.fleet_playbook
            if check:
                return [sys.executable, "-m", "fleet", "check", "--forks", forks, str(playbook)]
            return [sys.executable, "-m", "fleet", "apply", "--yes", "--forks", forks,
                    str(playbook)]
        if tool == "ansible":
            return [str(self.work / "ansible" / "bin" / "ansible-playbook"), "-f", forks,
                    "-i", str(self.ansible_inventory), *(["--check"] if check else []),
                    str(HERE / "playbook.yml")]
        return [str(self.work / "pyinfra" / "bin" / "pyinfra"), "--parallel", forks,
                "--dry" if check else "-y", str(HERE / "inventory.py"), str(HERE / "deploy.py")]

    def expect(self, tool: str, phase: str) -> tuple[int, ...]:
        if tool.startswith("fleet") and phase == "stopped":
            return (0, 2)  # 2: drift found
        return (0,)

    def noticed(self, tool: str, result: Result, stopped_host: str) -> bool:
        """Did the check say the stopped container is out of line?"""
        if tool.startswith("fleet"):
            return result.code == 2
        if tool == "ansible":
            recap = {m[0]: int(m[2]) for m in RECAP.findall(result.output)}
            return recap.get(stopped_host, 0) > 0
        return pyinfra_changes(result.output) > 0  # only that host's web is out of line


def pyinfra_changes(output: str) -> int:
    """Operations pyinfra would change (--dry: the Change column of its 'Detected changes'
    table) or changed (-y: its '[host] Success' lines; unchanged ones say 'No changes')."""
    total, in_table = 0, False
    for line in output.splitlines():
        if line.startswith("--> "):
            in_table = line.startswith("--> Detected changes")
            continue
        if in_table:
            cells = re.split(r"\s{2,}", line.strip())
            if len(cells) >= 2 and (count := re.match(r"(\d+)\b", cells[1])):
                total += int(count[1])
        elif re.match(r"^\s*\[\S+\]\s+Success\b", line):
            total += 1
    return total


def prepare(lab: Lab, work: Path, forks: int) -> Job:
    job = Job(lab, work, forks)
    (work / "ansible-tmp").mkdir(exist_ok=True)
    (work / "none.cfg").write_text("[defaults]\n")
    job.fleet_playbook = work / "fleet.yml"
    job.fleet_playbook.write_text(PLAYBOOK.format(inventory=lab.inventory_path,
                                                  registry=lab.registry))
    job.fleet_defaults = work / "fleet-defaults.yml"
    job.fleet_defaults.write_text(job.fleet_playbook.read_text().replace(ROLLOUT_POLICY + "\n",
                                                                         ""))
    if job.fleet_defaults.read_text() == job.fleet_playbook.read_text():
        raise SystemExit("scale.py's PLAYBOOK no longer has its update: line")
    inventory = load_inventory([str(lab.inventory_path)])
    python = work / "ansible" / "bin" / "python"
    lines, hosts = ["[all]"], []
    for host in inventory.hosts:
        labels = dict(host.labels)
        for value in (host.name, host.address, *labels, *labels.values()):
            if not TOKEN.match(value):
                raise SystemExit(f"{lab.inventory_path}: {value!r} is not a plain token")
        lines.append(" ".join([host.name, f"ansible_host={host.address}",
                               f"ansible_port={host.port}",
                               *(f"{k}={v}" for k, v in labels.items())]))
        hosts.append({"name": host.name, "data": {
            "ssh_hostname": host.address, "ssh_port": host.port, "ssh_user": host.user or "root",
            "ssh_key": str(host.ssh_key), "ssh_known_hosts_file": str(host.known_hosts),
            "ssh_strict_host_key_checking": "yes", "ssh_allow_agent": False,
            "ssh_look_for_keys": False, "registry": lab.registry, **labels}})
    first = inventory.hosts[0]
    lines += ["", "[all:vars]", f"ansible_user={first.user or 'root'}",
              f"ansible_ssh_private_key_file={first.ssh_key}",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={first.known_hosts} "
              f"-o StrictHostKeyChecking=yes'",
              f"ansible_python_interpreter={python}", f"registry={lab.registry}"]
    job.ansible_inventory = work / "inventory.ini"
    job.ansible_inventory.write_text("\n".join(lines) + "\n")
    job.pyinfra_hosts = work / "pyinfra-hosts.json"
    job.pyinfra_hosts.write_text(json.dumps(hosts, indent=1))
    return job


# ---------------------------------------------------------------- resetting hosts (not timed)

def _on_every_host(lab: Lab, action: Callable[[str], None]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(action, [host.name for host in lab.hosts]))


def reset(lab: Lab) -> None:
    """No containers, no images, no fleet state: a host as a cold deploy finds it."""
    def one(name: str) -> None:
        for listing, remove in ((["docker", "ps", "-aq"], ["docker", "rm", "-f"]),
                                (["docker", "images", "-q"], ["docker", "rmi", "-f"])):
            ids = sorted(set(lab_exec(lab, name, listing, check=True).stdout.split()))
            if ids:
                lab_exec(lab, name, [*remove, *ids], check=True)
        lab_exec(lab, name, ["rm", "-rf", "/root/.fleet"], check=True)

    _on_every_host(lab, one)
    reap_exited_shims()


def stop_web(lab: Lab) -> str:
    name = lab.hosts[len(lab.hosts) // 2].name
    ids = lab_exec(lab, name, ["docker", "ps", "-q", "--filter", "publish=8080"],
                   check=True).stdout.split()
    if len(ids) != 1:
        raise SystemExit(f"{name}: expected one running web container, found {ids}")
    lab_exec(lab, name, ["docker", "stop", ids[0]], check=True)
    return name


# ---------------------------------------------------------------- a size, every tool

@dataclass
class Figures:
    hosts: int
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    noticed: dict[str, list[bool]] = field(default_factory=dict)

    def median(self, tool: str, phase: str, attribute: str) -> float | None:
        samples = self.samples.get((tool, phase))
        if not samples:
            return None
        return float(statistics.median(getattr(s, attribute) for s in samples))


def bench(size: int, args: argparse.Namespace, tools: Sequence[str]) -> Figures:
    lab_down(args.dir)
    started = time.perf_counter()
    lab = lab_up(args.dir, hosts=size, subnet=args.subnet)
    print(f"{size} hosts: lab up in {time.perf_counter() - started:.0f} s", file=sys.stderr,
          flush=True)
    figures = Figures(size)
    try:
        job = prepare(lab, args.work, args.forks)
        for run in range(args.runs):
            for tool in tools:
                reset(lab)
                # The default policy changes only how apply rolls: its no-op and check are
                # fleet's own, measured once.
                phases = ("cold",) if tool == "fleet defaults" else PHASES
                for phase in phases:
                    stopped = stop_web(lab) if phase == "stopped" else ""
                    result = measure(job.argv(tool, phase), job.env(tool),
                                     job.expect(tool, phase))
                    figures.samples.setdefault((tool, phase), []).append(result.sample)
                    if phase == "stopped":
                        figures.noticed.setdefault(tool, []).append(
                            job.noticed(tool, result, stopped))
                    if phase in ("no-op", "check"):
                        _require_quiet(tool, phase, job, result)
                    log = args.work / f"{size}-{tool.replace(' ', '-')}-{phase}-{run + 1}.log"
                    log.write_text(result.output)
                    print(f"  {size} hosts, run {run + 1}/{args.runs}: {tool} {phase} "
                          f"{result.sample.wall:.1f} s, {result.sample.cpu:.1f} CPU-s",
                          file=sys.stderr, flush=True)
    finally:
        lab_down(args.dir)
    return figures


def _require_quiet(tool: str, phase: str, job: Job, result: Result) -> None:
    """A no-op or a check on converged hosts must report no change, or it measures nothing."""
    if tool == "ansible":
        changed = {h: int(c) for h, _, c, _, _ in RECAP.findall(result.output) if int(c)}
    elif tool == "pyinfra":
        changed = {"operations": n} if (n := pyinfra_changes(result.output)) else {}
    else:
        return
    if changed:
        print(f"  warning: {tool} {phase} on converged hosts reports changes: "
              f"{dict(list(changed.items())[:5])}", file=sys.stderr, flush=True)


def print_table(all_figures: list[Figures], runs: int) -> None:
    print(f"\nmedians of {runs} alternating runs; wall and CPU (process tree) in seconds; "
          "peak RSS in MiB: largest process / whole tree (sampled)\n")
    print("| hosts | tool | cold | no-op | check | notices a stopped container | "
          "cold CPU | no-op CPU | check CPU | peak RSS (cold) |")
    print("|------:|:-----|-----:|------:|------:|:---|-----:|-----:|-----:|-----:|")

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    for figures in all_figures:
        for tool in TOOLS:
            if (tool, "cold") not in figures.samples:
                continue
            seen = figures.noticed.get(tool)
            noticed = "(as fleet)" if seen is None else (
                "yes" if all(seen) else "no" if not any(seen) else f"{sum(seen)}/{len(seen)}")
            rss = figures.median(tool, "cold", "rss_mib")
            tree = figures.median(tool, "cold", "tree_mib")
            print(f"| {figures.hosts} | {tool} | "
                  + " | ".join(cell(figures.median(tool, p, "wall"))
                               for p in ("cold", "no-op", "check"))
                  + f" | {noticed} | "
                  + " | ".join(cell(figures.median(tool, p, "cpu"))
                               for p in ("cold", "no-op", "check"))
                  + f" | {rss:.0f} / {tree:.0f} |")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="30,100")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--work", type=Path, default=Path("/var/lib/fleet-peers"))
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/fleet-lab-peers"))
    parser.add_argument("--subnet", default="198.18.60.0/24")
    args = parser.parse_args()
    # fleet as installed from a wheel, byte-compiled (the peers' venvs are, by pip)
    compileall.compile_dir(str(HERE.parent.parent / "fleet"), quiet=1)
    tools = [t for t in args.tools.split(",") if t]
    if unknown := set(tools) - set(TOOLS):
        raise SystemExit(f"unknown tools {sorted(unknown)}; known: {', '.join(TOOLS)}")
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    signal.signal(signal.SIGTERM, _terminate)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")
    args.work.mkdir(parents=True, exist_ok=True)
    ensure_venv(args.work / "ansible", ["ansible", "docker", "requests"],
                "import ansible, docker, requests, ansible_collections.community.docker")
    ensure_venv(args.work / "pyinfra", ["pyinfra"], "import pyinfra.operations.docker")
    for line in versions(args.work):
        print(line)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    results = [bench(int(n), args, tools) for n in args.sizes.split(",") if n]
    print_table(results, args.runs)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
