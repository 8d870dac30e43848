"""`fleet watch` end to end: drift told as it appears and resolves (JSON events and the
Prometheus textfile), `--heal` converging a drifted host, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from e2e_helpers import docker, fleet, write_playbook

from fleet.lab import Lab

PROJECT = "e2ewatch"


class Watch:
    """`fleet watch --json` in the background, its events read as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "fleet", "watch", "--json", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, event: str, host: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if found["event"] == event and found["host"] == host:
                return found
        raise AssertionError(f"no {event} event for {host} within {timeout}s")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def test_watch_tells_drift_heals_it_and_stops_cleanly(lab: Lab, tmp_path: Path) -> None:
    hosts = [h.name for h in lab.hosts[:2]]
    path = write_playbook(tmp_path / "pb.yml", PROJECT, lab.inventory_path, {
        "app": {"image": f"{lab.registry}/demo/worker:v1", "hosts": ",".join(hosts)}},
        update={"monitor": "0s"})
    gauges = tmp_path / "fleet.prom"
    try:
        fleet("apply", "--yes", str(path), check_rc=0)
        watch = Watch(str(path), "--interval", "1s", "--textfile", str(gauges))
        try:
            deadline = time.monotonic() + 60
            while not gauges.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert f'fleet_service_in_sync{{project="{PROJECT}",host="{hosts[0]}",' \
                   f'service="app"}} 1' in gauges.read_text()
            docker(lab, hosts[0], "stop", "-t", "1", f"{PROJECT}-app-1")
            drift = watch.wait_for("drift", hosts[0])
            assert (drift["service"], drift["replica"], drift["kind"]) == ("app", 1, "stopped")
            time.sleep(1.5)  # the round after has written its gauges
            text = gauges.read_text()
            assert f'host="{hosts[0]}",service="app"}} 0' in text
            assert f'fleet_drift_findings{{project="{PROJECT}",host="{hosts[0]}",' \
                   f'kind="stopped"}} 1' in text
            docker(lab, hosts[0], "start", f"{PROJECT}-app-1")
            watch.wait_for("resolved", hosts[0])
        finally:
            code, err = watch.stop()
        assert code == 0, err
        assert "Traceback" not in err

        docker(lab, hosts[1], "stop", "-t", "1", f"{PROJECT}-app-1")
        healer = Watch(str(path), "--interval", "1s", "--heal")
        try:
            healer.wait_for("drift", hosts[1])
            healer.wait_for("healed", hosts[1])
            healer.wait_for("resolved", hosts[1])
        finally:
            code, err = healer.stop()
        assert code == 0, err
        fleet("check", str(path), check_rc=0)
        assert fleet("watch", str(path), "--rounds", "1", check_rc=0).stdout == ""
    finally:
        empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", str(empty))
