"""Hooks end to end: a pre_deploy and a post_deploy hook run once per rollout on one host,
journaled there; a no-op apply runs none; a failing pre_deploy hook stops the rollout with
no host changed and its output told."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab

PROJECT = "e2ehooks"


def playbook(lab: Lab, path: Path, mark: str, pre: list[str]) -> Path:
    hosts = [h.name for h in lab.hosts[:2]]
    services = {"app": {"image": f"{lab.registry}/demo/worker:v1", "hosts": ",".join(hosts),
                        "environment": {"MARK": mark}}}
    # The worker image has an entrypoint of its own: the hooks give theirs.
    hooks = {"pre_deploy": [{"name": "migrate", "service": "app", "entrypoint": ["sh", "-c"],
                             "command": pre, "timeout": "30s"}],
             "post_deploy": [{"name": "notify", "service": "app", "entrypoint": ["sh", "-c"],
                              "command": ["echo deployed $$MARK"]}]}
    return write_playbook(path, PROJECT, lab.inventory_path, services, hooks=hooks,
                          update={"batch": "100%", "monitor": "0s"})


def hook_entries(path: Path) -> dict[str, list[dict[str, Any]]]:
    history = fleet_json("history", str(path), check_rc=0)
    return {h["host"]: [e for e in h["entries"] if e["service"].startswith("hook:")]
            for h in history["hosts"]}


def ids(lab: Lab) -> list[str]:
    return [docker(lab, h.name, "inspect", "--format", "{{.Id}}", f"{PROJECT}-app-1").strip()
            for h in lab.hosts[:2]]


def test_hooks_run_once_per_rollout_and_a_failing_one_stops_it(lab: Lab, tmp_path: Path
                                                               ) -> None:
    first, second = lab.hosts[0].name, lab.hosts[1].name
    ok = ["echo migrating to $$MARK"]
    try:
        v1 = playbook(lab, tmp_path / "v1.yml", "v1", ok)
        plan = fleet("plan", str(v1), check_rc=2).stdout
        assert "hook pre_deploy migrate: runs once, in app's new image, on " in plan
        report = json.loads(fleet("apply", "--yes", "--json", str(v1), check_rc=0).stdout)
        assert [(h["name"], h["phase"], h["ok"]) for h in report["hooks"]] == [
            ("migrate", "pre_deploy", True), ("notify", "post_deploy", True)]
        ran_on = report["hooks"][0]["host"]
        assert ran_on in (first, second)
        entries = hook_entries(v1)
        assert [e["service"] for e in entries[ran_on]] == ["hook:migrate", "hook:notify"]
        assert all(e["outcome"] == "ok" for e in entries[ran_on])
        other = second if ran_on == first else first
        assert entries[other] == []
        assert f"{PROJECT}-hook-migrate" not in docker(lab, ran_on, "ps", "-a", "--format",
                                                       "{{.Names}}")

        again = fleet("apply", "--yes", str(v1), check_rc=0)  # nothing to roll: no hook
        assert "hook " not in again.stdout + again.stderr

        before = ids(lab)
        broken = playbook(lab, tmp_path / "v2.yml", "v2",
                          ["echo cannot migrate $$MARK >&2; exit 3"])
        failed = fleet("apply", "--yes", str(broken), check_rc=1)
        assert f"hook pre_deploy migrate on {ran_on}: failed" in failed.stderr
        assert "cannot migrate v2" in failed.stderr
        assert "no host was changed" in failed.stderr
        assert ids(lab) == before
        fleet("check", str(v1), check_rc=0)
        assert hook_entries(v1)[ran_on][-1]["outcome"] == "failed"
    finally:
        empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", str(empty))
