"""A multi-service compose.yaml deployed unchanged to 3 lab hosts, end to end.

A web app and its database reach each other by service name on the implicit PROJECT_default
network; a one-shot migration job runs between them (`depends_on` with `service_healthy` and
`service_completed_successfully`); a config file bind-mounted from beside the compose file, a
`configs:` file and a secret file reach every host with the exact bytes and modes; a named
volume is the project's and keeps its data across a recreate; `${VAR}` comes from the `.env`
beside the file, and fleet's keys sit under `x-fleet:`, so the same file stays valid for
`docker-compose config`.

One deployment serves every test, in order (each leaves the project converged): the changed
config file rolls and `fleet rollback` returns it, a network removed behind fleet's back is
healed, a failing migration blocks web. The secret's value appears in no output of fleet, no
label and no journal: only in the secret's file on the hosts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import docker, fleet

from fleet.lab import Lab, lab_exec

PROJECT = "shopapp"  # the directory's name, as Compose names projects
NETWORK, VOLUME = f"{PROJECT}_default", f"{PROJECT}_data"
WEB, DB, MIGRATE = (f"{PROJECT}-{name}-1" for name in ("web", "db", "migrate"))
SECRET = "pw-e2e-compose-4711"
STATE = f"/root/.fleet/{PROJECT}"  # the lab's SSH user is root; state_dir is ~/.fleet

# Runs as it is with `docker compose up` on a laptop; x-fleet only says where and how to roll.
# The lab images' entrypoint serves their version, so each service names its own.
COMPOSE = """\
x-fleet:
  inventory: ${INVENTORY}
  update: {batch: "100%", monitor: 1s, timeout: 30s}

services:
  web:  # listed against the order the services must start in
    image: ${REGISTRY}/demo/web:v1
    entrypoint: [sh, -c]
    command: ["cp /etc/app/site.conf /www/site.txt && exec httpd -f -p 8080 -h /www"]
    environment:
      DB_HOST: db
      RELEASE: ${RELEASE:-1}
    ports: ["8080:8080"]
    volumes:
      - ./site.conf:/etc/app/site.conf:ro
      - data:/data
    configs:
      - source: motd
        target: /etc/motd
    depends_on:
      db:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
    healthcheck:  # healthy only if `db` resolves on the default network and answers there
      test: ["CMD", "wget", "-qO-", "http://db:5432/"]
      interval: 500ms
      retries: 20
    x-fleet: {hosts: "${HOSTS}"}

  migrate:
    image: ${REGISTRY}/demo/worker:v1
    entrypoint: [sh, -c, "echo migrating; exit ${MIGRATE_EXIT:-0}"]
    depends_on:
      db: {condition: service_healthy}
    x-fleet:
      hosts: "${HOSTS}"
      update: {on_failure: continue, timeout: 20s}

  db:
    image: ${REGISTRY}/demo/web:v1
    entrypoint: [sh, -c]
    command:
      - mkdir -p /d && test -s /run/secrets/db_password && echo db-ok > /d/index.html
        && exec httpd -f -p 5432 -h /d
    secrets: [db_password]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:5432/"]
      interval: 500ms
      retries: 20
    x-fleet:
      hosts: ${HOSTS}

volumes:
  data: {}

configs:
  motd:
    file: ./motd.txt

secrets:
  db_password:
    file: ./db_password.txt
"""


@dataclass
class App:
    folder: Path
    hosts: list[str]
    said: list[str] = field(default_factory=list)  # every output of fleet, for the secret

    @property
    def compose(self) -> str:
        return str(self.folder / "compose.yaml")

    def run(self, *args: str, rc: int) -> str:
        done = fleet(*args, check_rc=rc)
        self.said.append(done.stdout + done.stderr)
        return done.stdout + done.stderr

    def json(self, *args: str, rc: int) -> Any:
        done = fleet(*args, "--json", check_rc=rc)
        self.said.append(done.stdout + done.stderr)
        return json.loads(done.stdout)


def env_text(lab: Lab, hosts: list[str], **extra: str) -> str:
    values = {"REGISTRY": lab.registry, "INVENTORY": str(lab.inventory_path),
              "HOSTS": ",".join(hosts), **extra}
    return "".join(f"{key}={value}\n" for key, value in values.items())


@pytest.fixture(scope="module")
def app(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("e2e") / PROJECT
    folder.mkdir()
    hosts = [h.name for h in lab.hosts[:3]]
    (folder / "compose.yaml").write_text(COMPOSE)
    (folder / ".env").write_text(env_text(lab, hosts))
    (folder / "site.conf").write_text("site v1\n")
    (folder / "motd.txt").write_text("welcome to shopapp\n")
    (folder / "db_password.txt").write_text(SECRET + "\n")
    found = App(folder, hosts)
    try:
        yield found
    finally:
        empty = folder / "empty" / "compose.yaml"
        empty.parent.mkdir(exist_ok=True)
        empty.write_text(f"name: {PROJECT}\nx-fleet:\n  inventory: ${{INVENTORY}}\n"
                         "services: {}\n")
        shutil.copy(folder / ".env", empty.parent / ".env")
        fleet("apply", "--yes", str(empty))
        for host in hosts:
            for argv in (["docker", "network", "rm", NETWORK], ["docker", "volume", "rm", VOLUME],
                         ["rm", "-rf", STATE]):
                lab_exec(lab, host, argv)


def in_web(lab: Lab, host: str, *argv: str) -> str:
    return docker(lab, host, "exec", WEB, *argv)


def _time(text: str) -> datetime:
    # Docker gives nanoseconds; Python parses at most microseconds.
    head, _, rest = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00")


def states(lab: Lab, host: str) -> dict[str, dict[str, Any]]:
    found = json.loads(docker(lab, host, "inspect", DB, MIGRATE, WEB))
    return {c["Name"].lstrip("/").split("-")[1]: c["State"] for c in found}


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_the_file_is_valid_for_docker_compose(app: App) -> None:
    done = subprocess.run(["docker-compose", "-f", app.compose, "config", "-q"],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=app.folder, env={"PATH": "/usr/bin:/bin", "DOCKER_HOST":
                                               "unix:///nonexistent/docker.sock"})
    assert done.returncode == 0, done.stderr


def test_the_app_deploys_unchanged_and_its_services_reach_each_other(lab: Lab,
                                                                    app: App) -> None:
    app.run("validate", app.compose, rc=0)
    plan = app.json("plan", app.compose, rc=2)
    assert plan["order"] == ["db", "migrate", "web"]
    first = plan["hosts"][0]["actions"]
    creates = {a["target"]: a["cause"] for a in first if a["kind"] == "create"}
    assert creates[WEB] == "missing; after db (healthy), migrate (completed successfully)"
    text = app.run("plan", app.compose, rc=2)
    assert f"deliver ./site.conf (8 B): needed by {WEB}" in text
    assert f"deliver config 'motd' (19 B): needed by {WEB}" in text
    assert f"deliver secret 'db_password' (mode 0400, uid 0): needed by {DB}" in text

    assert app.json("apply", "--yes", app.compose, rc=0)["converged"] is True
    for host in app.hosts:
        # web reaches db by its service name and its container name on shopapp_default
        assert in_web(lab, host, "wget", "-qO-", "http://db:5432/").strip() == "db-ok"
        assert in_web(lab, host, "wget", "-qO-", f"http://{DB}:5432/").strip() == "db-ok"
        network = json.loads(docker(lab, host, "network", "inspect", NETWORK))[0]
        assert network["Labels"] == {"fleet.project": PROJECT}
        assert {c["Name"] for c in network["Containers"].values()} == {WEB, DB}
        attached = json.loads(docker(lab, host, "inspect", "-f",
                                     "{{json .NetworkSettings.Networks}}", WEB))
        assert list(attached) == [NETWORK]
        # the files, with the exact bytes and modes
        assert in_web(lab, host, "cat", "/www/site.txt") == "site v1\n"
        assert in_web(lab, host, "cat", "/etc/motd") == "welcome to shopapp\n"
        assert docker(lab, host, "exec", DB, "cat", "/run/secrets/db_password") == SECRET + "\n"
        assert in_web(lab, host, "stat", "-c", "%n %a %u", "/etc/app/site.conf",
                      "/etc/motd").splitlines() == ["/etc/app/site.conf 444 0",
                                                    "/etc/motd 444 0"]
        assert docker(lab, host, "exec", DB, "stat", "-c", "%a %u",
                      "/run/secrets/db_password").strip() == "400 0"
        # db was healthy before migrate started, and migrate had finished before web started
        found = states(lab, host)
        assert found["db"]["Health"]["Status"] == "healthy"
        assert found["web"]["Status"] == "running"
        assert (found["migrate"]["Status"], found["migrate"]["ExitCode"]) == ("exited", 0)
        assert _time(found["db"]["StartedAt"]) < _time(found["migrate"]["StartedAt"])
        assert _time(found["migrate"]["FinishedAt"]) <= _time(found["web"]["StartedAt"])
        units = lab_exec(lab, host, ["ls", "-A", f"{STATE}/files"], check=True).stdout.split()
        assert len(units) == 3 and not [u for u in units if u.startswith(".")]
        volume = json.loads(docker(lab, host, "volume", "inspect", VOLUME))[0]
        assert volume["Labels"] == {"fleet.project": PROJECT}
    # the exited job is in sync
    assert app.json("check", app.compose, rc=0)["findings"] == []


def test_a_changed_file_rolls_keeps_the_volume_and_rolls_back(lab: Lab, app: App) -> None:
    for host in app.hosts:
        in_web(lab, host, "sh", "-c", "echo kept > /data/proof")
    before = {h: docker(lab, h, "inspect", "-f", "{{.Id}}", WEB).strip() for h in app.hosts}
    (app.folder / "site.conf").write_text("site v2\n")
    checked = app.json("check", app.compose, rc=2)
    assert {(f["host"], f["kind"]) for f in checked["findings"]} == {
        (host, "config_changed") for host in app.hosts}
    assert "deliver ./site.conf (8 B)" in app.run("plan", app.compose, rc=2)
    app.run("apply", "--yes", app.compose, rc=0)
    for host in app.hosts:
        assert docker(lab, host, "inspect", "-f", "{{.Id}}", WEB).strip() != before[host]
        assert in_web(lab, host, "cat", "/www/site.txt") == "site v2\n"
        assert in_web(lab, host, "cat", "/data/proof") == "kept\n"
    for args in (("plan", "--json"), ("render",), ("render", "--json"), ("status",),
                 ("status", "--json"), ("history",), ("history", "--json"),
                 ("check", "--json")):
        app.run(*args, app.compose, rc=0)

    # A rollback returns to the release before: its file is still on every host.
    app.run("rollback", "--service", "web", "--yes", app.compose, rc=0)
    for host in app.hosts:
        assert in_web(lab, host, "cat", "/www/site.txt") == "site v1\n"
    (app.folder / "site.conf").write_text("site v1\n")
    app.run("check", app.compose, rc=0)  # what it returned to is what the files say again


def test_a_network_removed_behind_fleets_back_is_drift_and_is_healed(lab: Lab,
                                                                     app: App) -> None:
    host = app.hosts[1]
    docker(lab, host, "stop", "-t", "1", WEB, DB)  # a network in use can't be removed
    docker(lab, host, "network", "rm", NETWORK)
    check = app.json("check", app.compose, rc=2)
    assert (host, "config_changed", f"network {NETWORK} is not on the host") in {
        (f["host"], f["kind"], f["detail"]) for f in check["findings"]}
    plan = app.json("plan", app.compose, rc=2)
    actions = [(a["kind"], a["target"]) for h in plan["hosts"] if h["host"] == host
               for a in h["actions"]]
    assert actions[0] == ("network", NETWORK)
    app.run("apply", "--yes", app.compose, rc=0)
    assert in_web(lab, host, "wget", "-qO-", "http://db:5432/").strip() == "db-ok"
    app.run("check", app.compose, rc=0)


def test_a_failing_migration_blocks_web_and_says_why(lab: Lab, app: App) -> None:
    failing = app.folder / "failing.env"
    failing.write_text(env_text(lab, app.hosts, MIGRATE_EXIT="1", RELEASE="2"))
    web_before = {h: states(lab, h)["web"]["StartedAt"] for h in app.hosts}
    text = app.run("apply", "--yes", "--env-file", str(failing), app.compose, rc=1)
    for host in app.hosts:
        failed = (f"{host}: migrate: failed: recreate {MIGRATE}: did not complete "
                  "successfully: container exited with code 1; last log lines: migrating")
        assert failed in text
        assert (f"{host}: web: blocked: by dependency migrate "
                "(service_completed_successfully): it failed on this host "
                f"({failed.partition('failed: ')[2]})") in text
        found = states(lab, host)
        assert found["web"]["StartedAt"] == web_before[host]  # untouched
        # The previous run of the job stays: exited 0, in sync with the file as it was.
        assert (found["migrate"]["Status"], found["migrate"]["ExitCode"]) == ("exited", 0)
    history = app.json("history", "--service", "migrate", app.compose, rc=0)
    rows = {row["host"]: row for row in history["hosts"]}
    for row in (rows[host] for host in app.hosts):
        # each run of the job is a revision, the failed one too
        assert [e["outcome"] for e in row["entries"]][-2:] == ["ok", "failed"]
    app.run("check", app.compose, rc=0)


def test_the_secret_is_only_in_its_file(lab: Lab, app: App) -> None:
    assert app.said and not [text for text in app.said if SECRET in text]
    for host in app.hosts:
        for name in (WEB, DB):
            inspect = docker(lab, host, "inspect", name)
            assert SECRET not in inspect
        journal = lab_exec(lab, host, ["cat", f"{STATE}/journal.jsonl"], check=True).stdout
        assert journal and SECRET not in journal
        holding = lab_exec(lab, host, ["grep", "-rl", SECRET, STATE], check=False).stdout
        assert len(holding.split()) == 1, holding  # the secret's file itself, 0400
        assert lab_exec(lab, host, ["stat", "-c", "%a", holding.strip()],
                        check=True).stdout.strip() == "400"
