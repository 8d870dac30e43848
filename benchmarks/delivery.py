"""Images without a registry (issue 12): a ≈ 100 MiB image to N hosts, then a v2 that changes
one 1 MiB layer, three ways (run as root):

    python benchmarks/delivery.py [--hosts 30] [--regions 3] [--forks 50]
                                  [--dir /var/lib/fleet-lab-delivery] [--subnet 198.18.9.0/24]

The image: the lab's busybox base and web app layers, four layers of 24 MiB of random bytes
(incompressible, so a registry's gzip saves nothing) and a 1 MiB layer on top; v2 differs
only in that top layer. Each way starts from hosts holding no image, delivers v1 (cold), then
v2 to hosts that hold v1:

- fleet: `fleet apply` with `image_source: {archive: ...}` (the layers each host lacks, over
  its SSH connection); bytes = the `bytes_sent` fleet reports per host, summed;
- fleet with seeds: the same, with the hosts in `--regions` regions and `seeds:` set: each
  region's seed is sent what it lacks, the others pull from it (the seed's registry image
  comes from the controller's Docker daemon: here an extra lab host's, through DOCKER_HOST);
  bytes = `bytes_sent` summed, which is what crossed the controller's links;
- by hand: `ssh HOST docker load < image.tar` for every host at once (what people do without
  a registry); bytes = the archive's size per host;
- registry: `fleet apply` of the same image pushed to the lab registry (each host's dockerd
  pulls what it lacks); bytes = the compressed layers each host lacks, from the manifest.

Every figure is a whole process (or, for "by hand", the set of ssh processes): wall seconds,
CPU seconds (user + system, with children) and the controller process's peak RSS. Containers
and images are removed from every host between the ways; the lab is torn down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import yaml

from fleet.lab import Lab, lab_down, lab_exec, lab_up
from fleet.lab.daemons import docker_socket
from fleet.lab.hosts import host_dir
from fleet.lab.images import (
    SEED_REGISTRY,
    Blob,
    BuiltImage,
    ImageSpec,
    RegistryClient,
    app_layer,
    base_layer,
    file_layer,
    image_config,
    registry_layer,
    sha256_digest,
    write_docker_archive,
)
from fleet.lab.state import LabHost

REPOSITORY = "bench-delivery/web"
SEED_IMAGE = "lab/registry:2.8"
BIG_LAYERS, BIG_MIB, CHANGING_MIB = 4, 24, 1
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
RESET = ("docker ps -aq | xargs -r docker rm -f >/dev/null; "
         "docker images -aq | xargs -r docker rmi -f >/dev/null; true")


@dataclass
class Figure:
    way: str
    version: str
    wall: float
    cpu: float
    rss_mib: float
    bytes_moved: int


def random_layer(seed: int, mib: int, name: str) -> bytes:
    return file_layer({f"data/{name}.bin": random.Random(seed).randbytes(mib * 1024 * 1024)})


def layers(version: int) -> list[bytes]:
    spec = ImageSpec(REPOSITORY, "v1", "web")
    return [base_layer(), app_layer(spec),
            *(random_layer(n, BIG_MIB, f"big{n}") for n in range(BIG_LAYERS)),
            random_layer(1000 + version, CHANGING_MIB, "changing")]


def write_inventory(work: Path, lab: Lab, hosts: list[LabHost], regions: int) -> Path:
    """The lab's inventory with only `hosts`, in `regions` regions of consecutive hosts."""
    doc = yaml.safe_load(lab.inventory_path.read_text())
    size = -(-len(hosts) // regions)
    doc["hosts"] = {h.name: {"address": h.address, "labels": {"region": f"r{i // size + 1}"}}
                    for i, h in enumerate(hosts)}
    path = work / "inventory.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def playbook(work: Path, inventory: Path, image: str, archive: str | None,
             seeds: bool = False) -> Path:
    service: dict[str, object] = {"image": image, "ports": ["8080:8080"]}
    if archive is not None:
        service["image_source"] = {"archive": archive}
    path = work / "delivery.yml"
    path.write_text(json.dumps({"project": "benchdelivery", "inventory": str(inventory),
                                "update": {"batch": "100%", "monitor": "0s"},
                                **({"seeds": {"image": SEED_IMAGE}} if seeds else {}),
                                "services": {"web": service}}))
    return path


def run_fleet(argv: list[str], env: dict[str, str] | None = None
              ) -> tuple[float, float, float, str]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "fleet", *argv], stdout=out,
                                   stderr=errors, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise SystemExit(f"fleet {' '.join(argv)} failed:\n{text[-2000:]}\n"
                             f"{errors.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def by_hand(lab: Lab, hosts: list[LabHost], archive: Path, forks: int) -> tuple[float, float]:
    """`ssh HOST docker load < archive` for every host, `forks` at once."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    for host in hosts:
        while len(running) >= forks:
            running.pop(0).wait()
        with archive.open("rb") as stdin:
            running.append(subprocess.Popen(
                ["ssh", "-i", str(lab.ssh_key), "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={lab.known_hosts}",
                 f"root@{host.address}", "docker", "load"],
                stdin=stdin, stdout=subprocess.DEVNULL))
    codes = [p.wait() for p in running]
    wall = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"ssh ... docker load failed on {sum(1 for c in codes if c)} host(s)")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def reset(lab: Lab, hosts: list[LabHost]) -> None:
    for host in hosts:
        lab_exec(lab, host.name, ["sh", "-c", RESET], timeout=300, check=True)


def push(registry: str, tag: str, raw: list[bytes]) -> list[int]:
    spec = ImageSpec(REPOSITORY, tag, "web")
    config = image_config(spec, [sha256_digest(layer) for layer in raw])
    built = BuiltImage(spec, Blob(config, CONFIG_TYPE), tuple(raw))
    client = RegistryClient(registry)
    for blob in (*built.layers, built.config):
        client.push_blob(REPOSITORY, blob)
    client.push_manifest(REPOSITORY, tag, built.manifest())
    return [len(blob.data) for blob in built.layers]


def prepare(work: Path, registry: str) -> None:
    """Write both archives, push both images to the lab registry, and note what a pull of
    each moves (made.json)."""
    raw = {1: layers(1), 2: layers(2)}
    for version, layer_list in raw.items():
        write_docker_archive(work / f"web-v{version}.tar", ImageSpec(REPOSITORY, "v1", "web"),
                             f"{REPOSITORY}:v{version}", layer_list)
    compressed = {version: push(registry, f"v{version}", raw[version]) for version in raw}
    pulled = {1: sum(compressed[1]), 2: sum(
        size for size, layer in zip(compressed[2], raw[2], strict=True) if layer not in raw[1])}
    (work / "made.json").write_text(json.dumps({"pulled": pulled, "layers": len(raw[1])}))
    write_docker_archive(work / "registry.tar", SEED_REGISTRY, SEED_IMAGE,
                         [base_layer(), registry_layer()])


def main() -> int:
    if sys.argv[1:2] == ["--prepare"]:
        prepare(Path(sys.argv[2]), sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/fleet-lab-delivery"))
    parser.add_argument("--subnet", default="198.18.9.0/24")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    figures: list[Figure] = []
    try:
        lab_down(args.dir)
        # One host more, whose dockerd stands in for the controller's (the seeds' registry).
        lab = lab_up(args.dir, hosts=args.hosts + 1, subnet=args.subnet)
        hosts, controller = lab.hosts[:-1], lab.hosts[-1]
        work = Path(tempfile.mkdtemp(prefix="fleet-delivery-"))
        inventory = write_inventory(work, lab, hosts, args.regions)
        # Made in a process of its own: a child forked from a large process counts the pages
        # it shares with it in its peak RSS until it execs, so this one stays small.
        subprocess.run([sys.executable, __file__, "--prepare", str(work), lab.registry],
                       check=True)
        made = json.loads((work / "made.json").read_text())
        archives = {v: work / f"web-v{v}.tar" for v in (1, 2)}
        sizes = {v: archives[v].stat().st_size for v in (1, 2)}
        pulled = {int(v): n for v, n in made["pulled"].items()}
        print(f"image: {sizes[1] / 2**20:.1f} MiB as a docker-archive, "
              f"{made['layers']} layers; {args.hosts} hosts", file=sys.stderr)

        lab_exec(lab, controller.name, ["docker", "load", "-i", str(work / "registry.tar")],
                 timeout=300, check=True)
        daemon = {"DOCKER_HOST": f"unix://{docker_socket(host_dir(lab.dir, controller.name))}",
                  "XDG_CACHE_HOME": str(work / "cache")}

        for way, seeds in (("fleet", False), ("fleet with seeds", True)):
            reset(lab, hosts)
            for version in (1, 2):
                pb = playbook(work, inventory, f"{REPOSITORY}:v{version}",
                              archives[version].name, seeds)
                wall, cpu, rss, out = run_fleet(["apply", "--yes", "--json", "--forks",
                                                 str(args.forks), str(pb)], daemon)
                sent = sum(d["bytes_sent"] for row in json.loads(out)["hosts"]
                           for d in row["images_loaded"])
                figures.append(Figure(way, f"v{version}", wall, cpu, rss, sent))
                print(f"{way} v{version}: {wall:.1f} s", file=sys.stderr)

        reset(lab, hosts)
        for version in (1, 2):
            wall, cpu = by_hand(lab, hosts, archives[version], args.forks)
            figures.append(Figure("by hand", f"v{version}", wall, cpu, 0.0,
                                  sizes[version] * len(hosts)))
            print(f"by hand v{version}: {wall:.1f} s", file=sys.stderr)

        reset(lab, hosts)
        for version in (1, 2):
            pb = playbook(work, inventory, f"{lab.registry}/{REPOSITORY}:v{version}", None)
            wall, cpu, rss, _ = run_fleet(["apply", "--yes", "--json", "--forks",
                                           str(args.forks), str(pb)])
            figures.append(Figure("registry", f"v{version}", wall, cpu, rss,
                                  pulled[version] * len(hosts)))
            print(f"registry v{version}: {wall:.1f} s", file=sys.stderr)
        reset(lab, hosts)
    finally:
        lab_down(args.dir)
    print(f"\n{args.hosts} hosts ({args.regions} regions for seeds); one run each; wall and "
          "CPU in seconds, RSS and bytes in MiB\n")
    print("| way | version | wall | CPU | peak RSS | MiB over the controller's links |")
    print("|:----|:--------|-----:|----:|---------:|---------:|")
    for f in figures:
        shown_rss = f"{f.rss_mib:.0f}" if f.rss_mib else "—"
        print(f"| {f.way} | {f.version} | {f.wall:.1f} | {f.cpu:.1f} | {shown_rss} | "
              f"{f.bytes_moved / 2**20:.1f} |")
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
