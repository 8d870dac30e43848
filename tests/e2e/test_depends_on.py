"""depends_on end to end on the lab: a database with a healthcheck, a one-shot migration job and
a web service waiting for both (service_healthy, service_completed_successfully). One
deployment serves every assertion: the plan's order, the start order on every host, the
exited job in sync, and a failing job blocking web, saying why."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab

PROJECT = "e2edeps"


def services(registry: str, *, migrate_exit: int = 0, web_env: str = "1") -> dict[str, Any]:
    web = f"{registry}/demo/web:v1"
    return {  # listed against the order they must start in
        "web": {"image": web, "environment": {"RELEASE": web_env},
                "depends_on": {"db": {"condition": "service_healthy"},
                               "migrate": {"condition": "service_completed_successfully"}}},
        "migrate": {"image": f"{registry}/demo/worker:v1",
                    "entrypoint": ["sh", "-c", f"echo migrating; exit {migrate_exit}"],
                    "depends_on": {"db": {"condition": "service_healthy"}},
                    "update": {"on_failure": "continue", "batch": "100%", "timeout": "20s"}},
        "db": {"image": web,
               "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"],
                               "interval": "1s", "retries": 3}},
    }


def _time(text: str) -> datetime:
    # Docker gives nanoseconds; Python parses at most microseconds.
    head, _, rest = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00")


def _states(lab: Lab, host: str) -> dict[str, dict[str, Any]]:
    names = [f"{PROJECT}-{s}-1" for s in ("db", "migrate", "web")]
    found = json.loads(docker(lab, host, "inspect", *names))
    return {c["Name"].lstrip("/").split("-")[1]: c["State"] for c in found}


def test_dependencies_start_first_a_job_stays_done_and_a_failed_one_blocks(
        lab: Lab, tmp_path: Path) -> None:
    top = {"update": {"monitor": "1s", "timeout": "30s", "batch": "100%"}}
    playbook = write_playbook(tmp_path / "deps.yml", PROJECT, lab.inventory_path,
                              services(lab.registry), **top)
    try:
        plan = fleet_json("plan", str(playbook), check_rc=2)
        assert plan["order"] == ["db", "migrate", "web"]
        creates = {a["target"]: a["cause"] for a in plan["hosts"][0]["actions"]
                   if a["kind"] == "create"}
        assert creates[f"{PROJECT}-web-1"] == (
            "missing; after db (healthy), migrate (completed successfully)")

        result = fleet_json("apply", "--yes", str(playbook), check_rc=0)
        assert result["converged"] is True
        for host in lab.hosts:
            states = _states(lab, host.name)
            db, migrate, web = states["db"], states["migrate"], states["web"]
            assert db["Health"]["Status"] == "healthy" and web["Status"] == "running"
            assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0)
            # migrate started once db was healthy (its first check is 1s after start), and
            # web only after migrate had finished.
            assert _time(db["StartedAt"]) < _time(migrate["StartedAt"])
            assert _time(migrate["FinishedAt"]) <= _time(web["StartedAt"])

        # The exited job is in sync.
        assert fleet_json("check", str(playbook), check_rc=0)["findings"] == []

        # A new release whose migration fails: web is not changed on any host, and says why.
        failing = write_playbook(tmp_path / "failing.yml", PROJECT, lab.inventory_path,
                                 services(lab.registry, migrate_exit=1, web_env="2"), **top)
        web_before = {h.name: _states(lab, h.name)["web"]["StartedAt"] for h in lab.hosts}
        text = fleet("apply", "--yes", str(failing), check_rc=1).stderr
        for host in lab.hosts:
            failed = (f"{host.name}: migrate: failed: recreate {PROJECT}-migrate-1: did not "
                      "complete successfully: container exited with code 1; last log lines: "
                      "migrating")
            assert failed in text
            assert (f"{host.name}: web: blocked: by dependency migrate "
                    "(service_completed_successfully): it failed on this host "
                    f"({failed.partition('failed: ')[2]})") in text
            states = _states(lab, host.name)
            assert states["web"]["StartedAt"] == web_before[host.name]  # untouched
            # The previous run of the job stays: exited 0, in sync with the old playbook.
            assert (states["migrate"]["Status"], states["migrate"]["ExitCode"]) == (
                "exited", 0)
        # Each run of the job is a revision in the journal, the failed one too.
        history = fleet_json("history", "--service", "migrate", str(failing), check_rc=0)
        for row in history["hosts"]:
            assert [(e["revision"], e["outcome"]) for e in row["entries"]] == [
                (1, "ok"), (2, "failed")]
    finally:
        empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", str(empty))
