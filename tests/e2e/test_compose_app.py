"""A multi-service compose.yaml deployed unchanged to 3 lab hosts: a web app and its database
reaching each other by service name on the implicit default network, a config file
bind-mounted from beside the compose file, a secret file, `depends_on` with
`service_healthy`, `${VAR}` from a `.env` file. The same file stays valid for
`docker-compose config`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from e2e_helpers import docker, fleet

from fleet.lab import Lab

SECRET = "pw-e2e-compose-4711"

COMPOSE = """\
# Runs as it is with `docker compose up` on a laptop; x-fleet only adds where it runs.
x-fleet:
  inventory: ${INVENTORY}

services:
  db:
    image: ${REGISTRY}/demo/web:v1
    command:
      - sh
      - -c
      - mkdir -p /d && test -s /run/secrets/db_password && echo db-ok > /d/index.html
        && exec httpd -f -p 5432 -h /d
    secrets: [db_password]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:5432/"]
      interval: 500ms
      retries: 20
    x-fleet:
      hosts: ${HOSTS}

  web:
    x-fleet: {hosts: "${HOSTS}"}
    image: ${REGISTRY}/demo/web:v1
    command: ["sh", "-c", "cp /etc/app/site.conf /www/site.txt && exec httpd -f -p 8080 -h /www"]
    environment:
      DB_HOST: db
    ports: ["8080:8080"]
    volumes:
      - ./site.conf:/etc/app/site.conf:ro
    depends_on:
      db:
        condition: service_healthy
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://db:5432/"]
      interval: 500ms
      retries: 20

secrets:
  db_password:
    file: ./db_password.txt
"""


@pytest.fixture(scope="module")
def app(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compose project in a directory named as Compose names projects."""
    folder = tmp_path_factory.mktemp("e2e") / "shopapp"
    folder.mkdir()
    (folder / "compose.yaml").write_text(COMPOSE)
    three = ",".join(h.name for h in lab.hosts[:3])
    (folder / ".env").write_text(f"REGISTRY={lab.registry}\nINVENTORY={lab.inventory_path}\n"
                                 f"HOSTS={three}\n")
    (folder / "site.conf").write_text("site v1\n")
    (folder / "db_password.txt").write_text(SECRET + "\n")
    return folder


def test_a_compose_app_deploys_unchanged_and_its_services_reach_each_other(
        lab: Lab, app: Path) -> None:
    compose = str(app / "compose.yaml")
    fleet("validate", compose, check_rc=0)
    applied = fleet("apply", "--yes", compose, check_rc=0)
    hosts = [h.name for h in lab.hosts[:3]]
    for host in hosts:
        names = docker(lab, host, "ps", "--format", "{{.Names}}").split()
        assert {"shopapp-db-1", "shopapp-web-1"} <= set(names), names
        # web reaches db by its service name on shopapp_default
        assert docker(lab, host, "exec", "shopapp-web-1", "wget", "-qO-",
                      "http://db:5432/").strip() == "db-ok"
        assert docker(lab, host, "exec", "shopapp-web-1", "cat",
                      "/www/site.txt").strip() == "site v1"
        networks = json.loads(docker(lab, host, "inspect", "-f",
                                     "{{json .NetworkSettings.Networks}}", "shopapp-web-1"))
        assert list(networks) == ["shopapp_default"]
        secret_file = docker(lab, host, "exec", "shopapp-db-1", "cat",
                             "/run/secrets/db_password").strip()
        assert secret_file == SECRET
        env = docker(lab, host, "inspect", "-f", "{{json .Config.Env}}", "shopapp-db-1")
        assert SECRET not in env  # a file, not an environment value
        labels = docker(lab, host, "inspect", "-f", "{{json .Config.Labels}}", "shopapp-db-1")
        assert SECRET not in labels
        # the database was healthy before web started
        started = {name: docker(lab, host, "inspect", "-f", "{{.State.StartedAt}}",
                                f"shopapp-{name}-1").strip() for name in ("db", "web")}
        assert started["db"] < started["web"], started
    assert SECRET not in applied.stdout + applied.stderr
    fleet("check", compose, check_rc=0)

    # A changed config file beside the compose file is drift, and apply rolls it.
    (app / "site.conf").write_text("site v2\n")
    fleet("check", compose, check_rc=2)
    fleet("apply", "--yes", compose, check_rc=0)
    for host in hosts:
        assert docker(lab, host, "exec", "shopapp-web-1", "cat",
                      "/www/site.txt").strip() == "site v2"
    fleet("check", compose, check_rc=0)
    fleet("apply", "--yes", str(_empty(app)), check_rc=0)


def _empty(app: Path) -> Path:
    """The same project with no services: apply removes what the test made."""
    empty = app / "empty" / "compose.yaml"
    empty.parent.mkdir(exist_ok=True)
    empty.write_text("name: shopapp\nx-fleet:\n  inventory: ${INVENTORY}\nservices: {}\n")
    shutil.copy(app / ".env", empty.parent / ".env")
    return empty


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_the_same_file_is_valid_for_docker_compose(lab: Lab, app: Path) -> None:
    done = subprocess.run(["docker-compose", "-f", str(app / "compose.yaml"), "config", "-q"],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=app, env={"PATH": "/usr/bin:/bin", "DOCKER_HOST":
                                        "unix:///nonexistent/docker.sock"})
    assert done.returncode == 0, done.stderr
