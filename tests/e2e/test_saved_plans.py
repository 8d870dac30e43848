"""Saved plans end to end: `fleet plan --out FILE` then `fleet apply FILE` applies exactly
that plan; a host that moved, a playbook edited since, a plan already applied and a file
that is not a plan are each refused with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e_helpers import docker, fleet, write_playbook

from fleet.lab import Lab

PROJECT = "e2esaved"


def playbook(lab: Lab, path: Path, mark: str) -> Path:
    hosts = ",".join(h.name for h in lab.hosts[:2])
    services = {"app": {"image": f"{lab.registry}/demo/worker:v1", "hosts": hosts,
                        "environment": {"MARK": mark}}}
    return write_playbook(path, PROJECT, lab.inventory_path, services,
                          update={"batch": "100%", "monitor": "0s"})


def marks(lab: Lab) -> dict[str, str]:
    found = {}
    for host in lab.hosts[:2]:
        env: list[str] = json.loads(docker(lab, host.name, "inspect", "--format",
                                           "{{json .Config.Env}}", f"{PROJECT}-app-1"))
        found[host.name] = next(e.split("=", 1)[1] for e in env if e.startswith("MARK="))
    return found


def container_id(lab: Lab, host: str) -> str:
    return docker(lab, host, "inspect", "--format", "{{.Id}}", f"{PROJECT}-app-1").strip()


def saved(path: Path) -> Any:
    return json.loads(path.read_text())


def test_a_saved_plan_is_applied_exactly_or_refused(lab: Lab, tmp_path: Path) -> None:
    first, second = lab.hosts[0].name, lab.hosts[1].name
    try:
        fleet("apply", "--yes", str(playbook(lab, tmp_path / "v1.yml", "v1")), check_rc=0)

        v2, out = playbook(lab, tmp_path / "v2.yml", "v2"), tmp_path / "v2.plan"
        fleet("plan", str(v2), "--out", str(out), check_rc=2)
        data = saved(out)
        assert data["format"] == "fleet-saved-plan/1"
        # Every targeted host is held to what it ran, changed by the plan or not.
        assert {h["host"] for h in data["hosts"]} == {h.name for h in lab.hosts}
        assert all(h["fingerprint"].startswith("sha256:") for h in data["hosts"])
        applied = fleet("apply", str(out), check_rc=0)  # no --yes: the plan was approved
        assert "recreate" in applied.stdout or "replace" in applied.stdout, applied.stdout
        assert marks(lab) == {first: "v2", second: "v2"}
        fleet("check", str(v2), check_rc=0)

        # Applied once, the hosts moved: the same file is refused.
        again = fleet("apply", str(out), check_rc=1)
        assert "changed since the plan was made" in again.stderr
        assert first in again.stderr and second in again.stderr

        # A host changed by hand after the plan: refused, naming it; nothing changes.
        v3, out3 = playbook(lab, tmp_path / "v3.yml", "v3"), tmp_path / "v3.plan"
        fleet("plan", str(v3), "--out", str(out3), check_rc=2)
        docker(lab, first, "stop", "-t", "1", f"{PROJECT}-app-1")
        before = container_id(lab, second)
        refused = fleet("apply", str(out3), "--json", check_rc=1)
        assert f": {first}; nothing was changed" in refused.stderr
        assert second not in refused.stderr.split("made:")[-1]
        assert container_id(lab, second) == before and marks(lab)[second] == "v2"
        docker(lab, first, "start", f"{PROJECT}-app-1")

        # The playbook edited after the plan: refused.
        fleet("plan", str(v3), "--out", str(out3), check_rc=2)
        playbook(lab, v3, "v3-edited")
        edited = fleet("apply", str(out3), check_rc=1)
        assert "not what the plan was made from" in edited.stderr
        assert marks(lab) == {first: "v2", second: "v2"}

        # Targeting flags don't mix with a saved plan; a broken file is an error.
        assert "drop --limit" in fleet("apply", str(out3), "--limit", first, check_rc=2).stderr
        broken = tmp_path / "broken.plan"
        broken.write_text('{"format": "fleet-saved-plan/1", "hosts": 3}')
        failed = fleet("apply", str(broken), check_rc=1)
        assert "broken.plan: not a saved plan" in failed.stderr
        assert "Traceback" not in failed.stderr
    finally:
        empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", str(empty))
