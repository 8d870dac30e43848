"""`secret_commands:`: a secret's value printed by a command on the controller, run once,
never shown, its failure an error at the key that needed it before any host is contacted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from config_support import load, only_error, playbook, problems

from fleet.cli.config_cmds import render_json
from fleet.cli.secret_runner import run_secret_command
from fleet.config.secrets import reveal

PY = sys.executable


def header(commands: str) -> str:
    return f"project: shop\nsecret_commands:\n{commands}"


SERVICE = """\
web:
  image: shop/web:1
  hosts: web
  environment: {DB_PASSWORD: "{{ secret('DB_PASSWORD') }}"}
"""


def test_the_value_is_what_the_command_printed_and_it_runs_once(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    script = f"open({str(counter)!r}, 'a').write('x'); print('s3cret')"
    pb = playbook(tmp_path, SERVICE, header=header(
        f"  DB_PASSWORD: [{PY}, -c, {json.dumps(script)}]\n"))
    state = load(tmp_path, pb, secret_runner=run_secret_command)
    container = state.containers["web1"][0]
    env = reveal(container.options["environment"], state.secrets)
    assert env["DB_PASSWORD"] == "s3cret"  # less its final newline
    assert counter.read_text() == "x"  # two hosts, digests and all: one run
    assert "s3cret" not in json.dumps(render_json(state))


def test_a_declared_command_is_not_shadowed_by_the_environment(tmp_path: Path) -> None:
    pb = playbook(tmp_path, SERVICE, header=header(f"  DB_PASSWORD: [{PY}, -c, 'print(1)']\n"))
    state = load(tmp_path, pb, environ={"DB_PASSWORD": "stray"},
                 secret_runner=run_secret_command)
    assert reveal(state.containers["web1"][0].options["environment"],
                  state.secrets)["DB_PASSWORD"] == "1"


@pytest.mark.parametrize(("script", "timeout", "expected"), [
    ("import sys; sys.stderr.write('not signed in\\n'); print('leak'); sys.exit(3)", "5s",
     "exited with status 3: not signed in"),
    ("import time; time.sleep(30)", "1s", "did not finish within 1s"),
    ("print(end='')", "5s", "printed nothing"),
    ("print('x' * 2_000_000)", "5s", "printed more than 1024 KiB"),
])
def test_a_failing_command_is_an_error_at_the_key_that_needs_it(
        tmp_path: Path, script: str, timeout: str, expected: str) -> None:
    pb = playbook(tmp_path, SERVICE, header=header(
        f"  DB_PASSWORD: {{command: [{PY}, -c, {json.dumps(script)}], timeout: {timeout}}}\n"))
    problem = only_error(tmp_path, pb, secret_runner=run_secret_command)
    assert problem.path[:3] == ("services", "web", "environment")
    assert "secret 'DB_PASSWORD' (secret_commands.DB_PASSWORD)" in problem.message
    assert expected in problem.message
    assert "leak" not in problem.message


def test_a_missing_program_is_named(tmp_path: Path) -> None:
    pb = playbook(tmp_path, SERVICE, header=header(
        "  DB_PASSWORD: [/nonexistent/op, read, 'op://prod/db']\n"))
    problem = only_error(tmp_path, pb, secret_runner=run_secret_command)
    assert "cannot run /nonexistent/op" in problem.message


def test_a_command_is_a_list_never_a_shell_string(tmp_path: Path) -> None:
    pb = playbook(tmp_path, SERVICE, header=header("  DB_PASSWORD: op read op://prod/db\n"))
    found = [p for p in problems(tmp_path, pb, secret_runner=run_secret_command)
             if p.severity == "error"]
    assert found[0].path[:2] == ("secret_commands", "DB_PASSWORD")
    assert "without a shell" in found[0].message
    assert found[0].line == 3


def test_a_compose_secret_and_the_hash_key_can_come_from_commands(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        web:
          image: shop/web:1
          hosts: web
          secrets: [api_token]
        """, header=header(f"  API_TOKEN: [{PY}, -c, 'print(\"tok\")']\n"
                           f"  FLEET_SECRET_KEY: [{PY}, -c, 'print(\"k\")']\n"
                           "secrets:\n  api_token: {environment: API_TOKEN}\n"))
    state = load(tmp_path, pb, secret_runner=run_secret_command)
    assert state.secrets.keyed
    delivered = state.files["web1"]
    assert any(unit.what.startswith("secret") for unit in delivered.values())
