"""Day-two commands end to end on the lab: `fleet logs` (merged, since, tail, followed across
a rollout and a container removed mid-follow) and `fleet exec` (argv as given, exit codes,
one host, failures), with an unreachable host among the reachable ones."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab

PROJECT = "e2eops"
# A process that says which host it is on and ticks five times a second ($$: a literal $ in
# a playbook, whose ${VAR} are the controller's).
TICKER = ('echo "started on $$HOST_NAME $$MARK"; i=0; '
          'while :; do echo "tick $$i on $$HOST_NAME $$MARK"; i=$$((i+1)); sleep 0.2; done')


def ticker(lab: Lab, mark: str) -> dict[str, Any]:
    return {"ticker": {
        "image": f"{lab.registry}/demo/worker:v1",
        "entrypoint": ["sh", "-c", TICKER],
        "environment": {"HOST_NAME": "{{ host.name }}", "MARK": mark},
        "hosts": "cloud=hetzner",
        "replicas": 2,
    }}


def exec_json(*args: str, check_rc: int) -> Any:
    """`fleet exec --json ARGS`: --json goes before the `--` that ARGS holds."""
    return json.loads(fleet("exec", "--json", *args, check_rc=check_rc).stdout)


@pytest.fixture(scope="module")
def hetzner(lab: Lab) -> list[str]:
    return [h.name for h in lab.hosts if h.labels.get("cloud") == "hetzner"]


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("ops")
    playbook = write_playbook(base / "ops.yml", PROJECT, lab.inventory_path, ticker(lab, "v1"),
                              update={"batch": "100%", "monitor": "0s"})
    fleet("apply", "--yes", str(playbook), check_rc=0)
    time.sleep(1.5)  # a few ticks in every log
    yield playbook
    empty = write_playbook(base / "empty.yml", PROJECT, lab.inventory_path, {})
    fleet("apply", "--yes", str(empty))


def test_logs_of_every_replica_merge_in_time_order(project: Path, hetzner: list[str]) -> None:
    report = fleet_json("logs", "ticker", str(project), "--tail", "3", check_rc=0)
    lines = report["lines"]
    sources = {(line["host"], line["replica"]) for line in lines}
    assert sources == {(host, replica) for host in hetzner for replica in (1, 2)}
    assert all(sum(1 for line in lines if (line["host"], line["replica"]) == source) == 3
               for source in sources)
    times = [line["time"] for line in lines]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)
    assert all(line["text"].startswith("tick ") and line["host"] in line["text"]
               for line in lines)

    text = fleet("logs", "ticker", str(project), "--tail", "1", check_rc=0).stdout
    width = max(len(h) for h in hetzner)
    assert sorted(text.splitlines()) == sorted(text.splitlines())
    for host in hetzner:
        assert sum(1 for line in text.splitlines()
                   if line.startswith(f"{host:<{width}} ticker/")) == 2
    assert all(" | tick " in line for line in text.splitlines())


def test_logs_since_and_host_narrow_what_is_read(project: Path, hetzner: list[str]) -> None:
    everything = fleet_json("logs", "ticker", str(project), "--tail", "all", check_rc=0)
    assert any(line["text"].startswith("started on") for line in everything["lines"])
    recent = fleet_json("logs", "ticker", str(project), "--tail", "all", "--since", "1s",
                        "--host", hetzner[0], check_rc=0)
    assert recent["lines"] and {line["host"] for line in recent["lines"]} == {hetzner[0]}
    assert not any(line["text"].startswith("started on") for line in recent["lines"])
    assert len(recent["lines"]) < len(everything["lines"]) / 2


def test_logs_and_exec_refuse_what_is_not_there(project: Path) -> None:
    unknown = fleet("logs", "nosuch", str(project))
    assert unknown.returncode == 1 and "no service 'nosuch'" in unknown.stderr
    nowhere = fleet("exec", "ticker", str(project), "--host", "cloud=aws", "--", "true")
    assert nowhere.returncode == 1 and "runs ticker" in nowhere.stderr
    bad_since = fleet("logs", "ticker", str(project), "--since", "yesterday")
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr


def test_exec_runs_the_argv_as_given_in_every_replica(project: Path, hetzner: list[str]) -> None:
    # Shell syntax in an argument stays a literal: no shell is built from it.
    report = exec_json("ticker", str(project), "--", "echo", "a; echo pwned",
                        check_rc=0)
    results = report["results"]
    assert {(r["host"], r["replica"]) for r in results} == {
        (h, n) for h in hetzner for n in (1, 2)}
    assert all(r["stdout"] == "a; echo pwned\n" and r["exit_code"] == 0 for r in results)

    text = fleet("exec", "ticker", str(project), "--host", hetzner[0], "-e", "WHO=ops",
                 "--", "sh", "-c", 'echo "$WHO on $HOST_NAME"', check_rc=0).stdout
    assert sorted(text.splitlines()) == [
        f"{hetzner[0]} ticker/{n} | ops on {hetzner[0]}" for n in (1, 2)]


def test_exec_fails_when_the_command_fails_anywhere(project: Path, hetzner: list[str]) -> None:
    failing = fleet("exec", "ticker", str(project), "--", "sh", "-c",
                    f'echo oops >&2; [ "$HOST_NAME" = "{hetzner[0]}" ]')
    assert failing.returncode == 1
    assert f"{hetzner[1]} ticker/1: exit 1" in failing.stderr
    assert f"{hetzner[1]} ticker/1 | oops" in failing.stderr
    missing = exec_json("ticker", str(project), "--", "/no/such/binary", check_rc=1)
    assert all(r["exit_code"] not in (0, None) or r["error"] for r in missing["results"])
    slow = exec_json("ticker", str(project), "--host", hetzner[0], "--timeout", "1s",
                      "--", "sleep", "30", check_rc=1)
    assert all("no answer within 1s" in r["error"] for r in slow["results"])


def test_an_unreachable_host_fails_alone(lab: Lab, project: Path, hetzner: list[str],
                                         tmp_path: Path) -> None:
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    inventory["hosts"]["hetzner-ghost"] = {"address": "198.18.0.250",
                                           "labels": {"cloud": "hetzner"}}
    (tmp_path / "ghost.yml").write_text(yaml.safe_dump(inventory))
    args = ("-i", str(tmp_path / "ghost.yml"), "--connect-timeout", "2", str(project))
    logs = fleet_json("logs", "ticker", *args, "--tail", "1", check_rc=1)
    assert {line["host"] for line in logs["lines"]} == set(hetzner)
    assert [u["host"] for u in logs["unreachable"]] == ["hetzner-ghost"]
    ran = exec_json("ticker", *args, "--", "true", check_rc=1)
    assert len(ran["results"]) == 4 and all(r["exit_code"] == 0 for r in ran["results"])
    assert [u["host"] for u in ran["unreachable"]] == ["hetzner-ghost"]


class Follower:
    """`fleet logs --follow --json` in the background, its lines collected as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fleet", "logs", "--follow", "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(stream, sink), daemon=True)
                         for stream, sink in ((self.process.stdout, self._line),
                                              (self.process.stderr, self.notes.append))]
        for thread in self._threads:
            thread.start()

    def _line(self, text: str) -> None:
        self.lines.append(json.loads(text))

    @staticmethod
    def _read(stream: Any, sink: Any) -> None:
        for text in stream:
            sink(text.rstrip("\n"))

    def wait_for(self, predicate: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.process.poll() is None, f"follow ended: {self.notes}"
            time.sleep(0.2)
        raise AssertionError(f"not seen within {timeout}s; notes: {self.notes}; "
                             f"last lines: {self.lines[-5:]}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        for thread in self._threads:
            thread.join(timeout=5)
        return code


def test_follow_survives_a_rollout_and_a_replica_gone(lab: Lab, project: Path,
                                                      hetzner: list[str]) -> None:
    follower = Follower("ticker", str(project), "--tail", "0", "--host", hetzner[0])
    try:
        follower.wait_for(lambda: any("v1" in line["text"] for line in follower.lines))
        # A container removed under the follower: told, and the others go on.
        docker(lab, hetzner[0], "rm", "-f", f"{PROJECT}-ticker-2")
        follower.wait_for(lambda: any("ticker/2" in note and "stopped" in note
                                      for note in follower.notes))
        seen = len(follower.lines)
        follower.wait_for(lambda: len(follower.lines) > seen + 3)
        # A rollout replaces both: the new containers' lines arrive through the same follow.
        v2 = project.with_name("ops-v2.yml")
        v2.write_text(project.read_text().replace("MARK: v1", "MARK: v2"))
        fleet("apply", "--yes", str(v2), check_rc=0)
        follower.wait_for(lambda: {line["replica"] for line in follower.lines
                                   if "v2" in line["text"]} == {1, 2})
        assert all(line["host"] == hetzner[0] for line in follower.lines)
        assert any("appeared" in note for note in follower.notes)
    finally:
        code = follower.stop()
    assert code == 0, follower.notes
    fleet("apply", "--yes", str(project), check_rc=0)
