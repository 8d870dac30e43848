"""`secret_commands:` end to end: the value a command prints reaches the container's
environment and nothing else; a failing command stops the run before any host changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from e2e_helpers import docker, fleet, write_playbook

from fleet.lab import Lab

PROJECT = "e2esecretcmd"
VALUE = "pw-from-the-vault-7f3a"


def project(lab: Lab, path: Path, script: str) -> tuple[Path, str]:
    host = lab.hosts[0].name
    services = {"app": {"image": f"{lab.registry}/demo/worker:v1", "hosts": host,
                        "environment": {"DB_PASSWORD": "{{ secret('DB_PASSWORD') }}"}}}
    return write_playbook(path, PROJECT, lab.inventory_path, services,
                          secret_commands={"DB_PASSWORD": [sys.executable, "-c", script]},
                          update={"monitor": "0s"}), host


def env_of(lab: Lab, host: str) -> list[str]:
    found: list[str] = json.loads(docker(lab, host, "inspect", "--format",
                                         "{{json .Config.Env}}", f"{PROJECT}-app-1"))
    return found


def test_the_value_reaches_the_container_only_and_a_failure_changes_nothing(
        lab: Lab, tmp_path: Path) -> None:
    path, host = project(lab, tmp_path / "pb.yml", f"print({VALUE!r})")
    try:
        outputs = [fleet("apply", "--yes", str(path), check_rc=0),
                   fleet("check", str(path), check_rc=0),
                   fleet("status", str(path), "--json", check_rc=0),
                   fleet("render", str(path), check_rc=0)]
        assert f"DB_PASSWORD={VALUE}" in env_of(lab, host)
        for result in outputs:
            assert VALUE not in result.stdout + result.stderr
        before = docker(lab, host, "inspect", "--format", "{{.Id}}", f"{PROJECT}-app-1")

        broken, _ = project(lab, tmp_path / "broken.yml",
                            "import sys; sys.stderr.write('vault sealed\\n'); sys.exit(2)")
        failed = fleet("apply", "--yes", str(broken), check_rc=1)
        assert "broken.yml:" in failed.stderr
        assert "secret 'DB_PASSWORD' (secret_commands.DB_PASSWORD)" in failed.stderr
        assert "exited with status 2: vault sealed" in failed.stderr
        assert docker(lab, host, "inspect", "--format", "{{.Id}}",
                      f"{PROJECT}-app-1") == before
        fleet("check", str(path), check_rc=0)  # still what the working playbook wants
    finally:
        empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", str(empty))
