"""What a compromised host can and cannot make fleet do, end to end on the lab: a forged
journal asking a rollback for controller secrets gets none, and nothing changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import docker, write_playbook

from fleet.lab import Lab

PROJECT = "e2ehostile"
CONTROLLER_SECRETS = {"E2E_TOKEN": "tok-given-to-web", "FLEET_SECRET_KEY": "hash-key-0042",
                      "E2E_OTHER": "never-declared-anywhere"}


def run_fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, **CONTROLLER_SECRETS})


def web(lab: Lab, version: str) -> dict[str, object]:
    return {"web": {"image": f"{lab.registry}/demo/web:{version}",
                    "environment": {"TOKEN": "{{ secret('E2E_TOKEN') }}"},
                    "update": {"batch": "100%", "monitor": "0s", "timeout": "20s"}}}


@pytest.fixture()
def playbook(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    path = write_playbook(tmp_path / "hostile.yml", PROJECT, lab.inventory_path, web(lab, "v1"))
    assert run_fleet("apply", "--yes", str(path)).returncode == 0
    yield path
    write_playbook(path, PROJECT, lab.inventory_path, {})
    run_fleet("apply", "--yes", str(path))


def _journal(lab: Lab, host: str) -> Path:
    return lab.dir / "hosts" / host / "root" / ".fleet" / PROJECT / "journal.jsonl"


def _env_of(lab: Lab, host: str) -> list[str]:
    return list(json.loads(docker(lab, host, "inspect", f"{PROJECT}-web-1"))[0]["Config"]["Env"])


def test_a_forged_journal_gets_no_controller_secret_and_nothing_changes(
        lab: Lab, playbook: Path) -> None:
    write_playbook(playbook, PROJECT, lab.inventory_path, web(lab, "v2"))
    assert run_fleet("apply", "--yes", str(playbook)).returncode == 0
    forged_host = lab.hosts[0].name
    journal = _journal(lab, forged_host)
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    for entry in entries:  # the host rewrites the spec of revision 1, which rollback returns to
        if entry["service"] == "web" and entry["image"].endswith(":v1"):
            entry["spec"]["environment"].update({
                "STOLEN_KEY": "<secret:FLEET_SECRET_KEY:0000000000000000>",
                "STOLEN_OTHER": "<secret:E2E_OTHER:0000000000000000>",
                "LOOKS_LIKE_A_TOKEN": "⟦secret:E2E_OTHER⟧"})
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries))
    before = {h.name: _env_of(lab, h.name) for h in lab.hosts}

    refused = run_fleet("rollback", "--service", "web", "--yes", str(playbook))

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "cannot roll back; nothing was changed" in refused.stderr
    assert forged_host in refused.stderr and "'E2E_OTHER', 'FLEET_SECRET_KEY'" in refused.stderr
    assert "Traceback" not in refused.stderr
    after = {h.name: _env_of(lab, h.name) for h in lab.hosts}
    assert after == before  # no host changed, the forged one included
    printed = refused.stdout + refused.stderr
    assert not any(value in printed for value in CONTROLLER_SECRETS.values())


def test_no_secret_value_is_printed_or_stored_anywhere(lab: Lab, playbook: Path) -> None:
    """Every command's output (plain and --json), every journal, and every container's labels
    and inspect answer (but its environment, where the values belong) hold no secret value."""
    env_file = playbook.parent / "web.env"
    env_file.write_text("FROM_FILE=env-file-value-77\n")
    secret_values = [CONTROLLER_SECRETS["E2E_TOKEN"], CONTROLLER_SECRETS["FLEET_SECRET_KEY"],
                     "env-file-value-77", "bare-key-value-55"]

    def services(version: str) -> dict[str, object]:
        service = web(lab, version)
        service["web"]["env_file"] = [env_file.name]  # type: ignore[index]
        service["web"]["environment"]["BARE"] = None  # type: ignore[index]
        return service

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                              text=True, timeout=300, check=False,
                              env={**os.environ, **CONTROLLER_SECRETS,
                                   "BARE": "bare-key-value-55"})
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout + done.stderr

    printed = []
    for version in ("v2", "v1"):
        write_playbook(playbook, PROJECT, lab.inventory_path, services(version))
        for as_json in ((), ("--json",)):
            printed += [run("plan", *as_json, str(playbook)),
                        run("render", *as_json, str(playbook))]
        printed.append(run("apply", "--yes", str(playbook)))
        for as_json in ((), ("--json",)):
            printed += [run(command, *as_json, str(playbook))
                        for command in ("check", "status", "history")]
    # Each rollback returns to v2 (a second one in a row would go a release further back).
    printed.append(run("rollback", "--service", "web", "--yes", str(playbook)))
    printed.append(run("apply", "--yes", str(playbook)))
    printed.append(run("rollback", "--service", "web", "--yes", "--json", str(playbook)))
    stored = [_journal(lab, h.name).read_text() for h in lab.hosts]
    for host in lab.hosts:
        inspect = json.loads(docker(lab, host.name, "inspect", f"{PROJECT}-web-1"))[0]
        env = inspect["Config"].pop("Env")
        assert "FROM_FILE=env-file-value-77" in env and "BARE=bare-key-value-55" in env
        stored.append(json.dumps(inspect))
    for value in secret_values:
        assert not [text for text in printed if value in text], value
        assert not [text for text in stored if value in text], value
