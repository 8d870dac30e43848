"""Files next to the compose file reach the hosts: a config file bind-mounted from beside the
compose file, a `configs:` entry with `content:` and a secret file are delivered to each host
over its SSH connection and seen by the container with the exact bytes, at the right paths,
with the right modes. A changed config file is drift (`check` exits 2) that `apply` rolls,
and `fleet rollback` returns to the file before.
The secret's value appears in no output of fleet, no label and no journal: only in the
secret's file on the hosts. One deployment serves every assertion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import docker, fleet

from fleet.lab import Lab, lab_exec

PROJECT = "e2efiles"
WEB = f"{PROJECT}-web-1"
SECRET = "pw-e2e-files-5521"
STATE = f"/root/.fleet/{PROJECT}"  # the lab's SSH user is root; state_dir is ~/.fleet

COMPOSE = """\
name: e2efiles
x-fleet:
  inventory: {inventory}
  update: {{batch: "100%", monitor: 1s}}
services:
  web:
    image: {registry}/demo/web:v1
    volumes:
      - ./site.conf:/etc/app/site.conf:ro
    configs:
      - source: motd
        target: /etc/motd
    secrets:
      - db_password
    x-fleet: {{hosts: "{hosts}"}}
configs:
  motd:
    content: "welcome to e2efiles\\n"
secrets:
  db_password:
    file: ./db_password.txt
"""


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("e2efiles")
    hosts = ",".join(h.name for h in lab.hosts[:3])
    (folder / "compose.yaml").write_text(COMPOSE.format(
        inventory=lab.inventory_path, registry=lab.registry, hosts=hosts))
    (folder / "site.conf").write_text("site v1\n")
    (folder / "db_password.txt").write_text(SECRET)
    try:
        yield folder
    finally:
        empty = folder / "empty" / "compose.yaml"
        empty.parent.mkdir(exist_ok=True)
        empty.write_text(f"name: {PROJECT}\nx-fleet: {{inventory: {lab.inventory_path}}}\n"
                         "services: {}\n")
        fleet("apply", "--yes", str(empty))
        for host in lab.hosts[:3]:
            lab_exec(lab, host.name, ["rm", "-rf", STATE])


def in_web(lab: Lab, host: str, *argv: str) -> str:
    return docker(lab, host, "exec", WEB, *argv)


def test_files_reach_the_containers_drift_rolls_and_the_secret_stays_a_file(
        lab: Lab, project: Path) -> None:
    compose = str(project / "compose.yaml")
    hosts = [h.name for h in lab.hosts[:3]]
    said: list[str] = []

    def run(*args: str, rc: int) -> str:
        done = fleet(*args, check_rc=rc)
        said.append(done.stdout + done.stderr)
        return done.stdout

    plan = run("plan", compose, rc=2)
    assert "deliver ./site.conf (8 B): needed by e2efiles-web-1" in plan
    assert "deliver config 'motd' (20 B): needed by e2efiles-web-1" in plan
    assert "deliver secret 'db_password' (mode 0400, uid 0): needed by e2efiles-web-1" in plan
    run("apply", "--yes", compose, rc=0)
    for host in hosts:
        assert in_web(lab, host, "cat", "/etc/app/site.conf") == "site v1\n"
        assert in_web(lab, host, "cat", "/etc/motd") == "welcome to e2efiles\n"
        assert in_web(lab, host, "cat", "/run/secrets/db_password") == SECRET
        modes = in_web(lab, host, "stat", "-c", "%n %a %u %g", "/etc/app/site.conf",
                       "/etc/motd", "/run/secrets/db_password").splitlines()
        assert modes == ["/etc/app/site.conf 444 0 0", "/etc/motd 444 0 0",
                         "/run/secrets/db_password 400 0 0"]
        units = lab_exec(lab, host, ["ls", "-A", f"{STATE}/files"], check=True).stdout.split()
        assert len(units) == 3 and not [u for u in units if u.startswith(".")]
    run("check", compose, rc=0)

    # A changed file beside the compose file is drift, and apply rolls it.
    (project / "site.conf").write_text("site v2\n")
    checked = json.loads(run("check", "--json", compose, rc=2))
    assert {(f["host"], f["kind"]) for f in checked["findings"]} == {
        (host, "config_changed") for host in hosts}
    assert "deliver ./site.conf (8 B)" in run("plan", compose, rc=2)
    run("apply", "--yes", compose, rc=0)
    for host in hosts:
        assert in_web(lab, host, "cat", "/etc/app/site.conf") == "site v2\n"

    # The value is in the secret's file on each host, and nowhere else fleet writes or says
    # (plain `plan` and `check` ran above; `check --json` here also finds the roll done)
    for args in (("plan", "--json"), ("render",), ("render", "--json"), ("status",),
                 ("status", "--json"), ("history",), ("history", "--json"),
                 ("check", "--json")):
        run(*args, compose, rc=0)

    # A rollback returns to the release before: its file is still on every host.
    run("rollback", "--service", "web", "--yes", compose, rc=0)
    for host in hosts:
        assert in_web(lab, host, "cat", "/etc/app/site.conf") == "site v1\n"
        assert in_web(lab, host, "cat", "/run/secrets/db_password") == SECRET
    assert not [text for text in said if SECRET in text]
    for host in hosts:
        inspect = docker(lab, host, "inspect", WEB)
        assert SECRET not in inspect
        journal = lab_exec(lab, host, ["cat", f"{STATE}/journal.jsonl"], check=True).stdout
        assert journal and SECRET not in journal
        holding = lab_exec(lab, host, ["grep", "-rl", SECRET, STATE], check=False).stdout
        assert len(holding.split()) == 1, holding  # the secret's file itself, 0400
        assert lab_exec(lab, host, ["stat", "-c", "%a", holding.strip()],
                        check=True).stdout.strip() == "400"
