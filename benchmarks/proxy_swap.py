"""Zero-downtime swaps (issue 13): failed requests and latency during a rollout on a fixed host
port, through fleet's per-host proxy and without it (stop-first), side by side (run as root):

    python benchmarks/proxy_swap.py [--hosts 6] [--runs 3] [--rate 25]
                                    [--dir /var/lib/fleet-lab-proxy] [--subnet 198.18.10.0/24]

The job: `web` (demo/web, a healthcheck every 500 ms) on port 8080 of every host, rolled
v1 -> v2 -> v1 ... with `batch: 100%` and `monitor: 1s`, while the controller sends `--rate`
requests a second to each host's port, each on a new connection (2 s timeout). One way
publishes 8080 itself (fleet then replaces it stop-first); the other is served through the
proxy (`proxy: {ports: [8080], container_port: 8080, drain: 1s}`). The ways alternate, one
rollout each per run; a run's window is the whole `fleet apply` process. Printed per way:
requests sent, failed (refused, reset, timed out or not 200), the p50/p99/max latency of
the answered ones, and the apply's wall seconds; medians over the runs. The lab is torn down
at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.lab import lab_down, lab_up

PORT = 8080
PROJECT = "benchproxy"


@dataclass
class Window:
    sent: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)


def load(addresses: list[str], rate: float, stop: threading.Event, window: Window) -> None:
    lock = threading.Lock()

    def one(address: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            ok = False
            try:
                connection = http.client.HTTPConnection(address, PORT, timeout=2.0)
                connection.request("GET", "/")
                response = connection.getresponse()
                response.read()
                connection.close()
                ok = response.status == 200
            except OSError:
                pass
            took = time.monotonic() - started
            with lock:
                window.sent += 1
                if ok:
                    window.latencies.append(took)
                else:
                    window.failed += 1
            stop.wait(max(0.0, 1 / rate - took))

    threads = [threading.Thread(target=one, args=(a,), daemon=True) for a in addresses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def playbook(work: Path, inventory: Path, registry: str, way: str, version: str) -> Path:
    service: dict[str, Any] = {
        "image": f"{registry}/demo/web:{version}",
        "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"],
                        "interval": "500ms", "retries": 2},
        "update": {"batch": "100%", "monitor": "1s", "timeout": "30s"},
    }
    top: dict[str, Any] = {}
    if way == "proxy":
        service["proxy"] = {"ports": [PORT], "container_port": 8080, "drain": "1s"}
        top["proxy"] = {"image": f"{registry}/lab/caddy:2.6"}
    else:
        service["ports"] = [f"{PORT}:8080"]
    path = work / f"{way}-{version}.yml"
    path.write_text(json.dumps({"project": PROJECT, "inventory": str(inventory), **top,
                                "services": {"web": service}}))
    return path


def fleet(*argv: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "fleet", *argv], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"fleet {' '.join(argv)} failed:\n{result.stdout[-2000:]}\n"
                         f"{result.stderr[-2000:]}")
    return time.perf_counter() - started


def measured_rollout(path: Path, addresses: list[str], rate: float) -> tuple[Window, float]:
    window, stop = Window(), threading.Event()
    thread = threading.Thread(target=load, args=(addresses, rate, stop, window))
    thread.start()
    try:
        wall = fleet("apply", "--yes", str(path))
    finally:
        stop.set()
        thread.join()
    return window, wall


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/fleet-lab-proxy"))
    parser.add_argument("--subnet", default="198.18.10.0/24")
    args = parser.parse_args()
    lab = lab_up(args.dir, hosts=args.hosts, subnet=args.subnet)
    addresses = [h.address for h in lab.hosts]
    figures: dict[str, list[tuple[Window, float]]] = {"stop-first": [], "proxy": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            empty = work / "empty.yml"
            empty.write_text(json.dumps({"project": PROJECT, "inventory": str(lab.inventory_path),
                                         "services": {}}))
            for run in range(args.runs):
                for way in figures:
                    fleet("apply", "--yes", str(empty))  # port 8080 free for the other way
                    fleet("apply", "--yes", str(playbook(work, lab.inventory_path,
                                                         lab.registry, way, "v1")))
                    window, wall = measured_rollout(
                        playbook(work, lab.inventory_path, lab.registry, way, "v2"),
                        addresses, args.rate)
                    figures[way].append((window, wall))
                    print(f"run {run + 1} {way}: {window.sent} requests, {window.failed} "
                          f"failed, p99 {percentile(window.latencies, 0.99) * 1000:.1f} ms, "
                          f"apply {wall:.1f} s", flush=True)
            fleet("apply", "--yes", str(empty))
    finally:
        lab_down(args.dir)
    print(f"\n{args.hosts} hosts, {args.rate:g} requests/s per host, v1 -> v2 with batch 100%; "
          f"medians of {args.runs} runs")
    print(f"{'way':<12}{'requests':>10}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'apply s':>9}")
    for way, runs in figures.items():
        def median(values: list[float]) -> float:
            return statistics.median(values)
        print(f"{way:<12}{median([w.sent for w, _ in runs]):>10.0f}"
              f"{median([w.failed for w, _ in runs]):>8.0f}"
              f"{median([percentile(w.latencies, 0.5) * 1000 for w, _ in runs]):>9.1f}"
              f"{median([percentile(w.latencies, 0.99) * 1000 for w, _ in runs]):>9.1f}"
              f"{median([max(w.latencies, default=0) * 1000 for w, _ in runs]):>9.1f}"
              f"{median([wall for _, wall in runs]):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
