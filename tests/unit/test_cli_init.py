"""`fleet init` and `fleet completion`, as a user runs them (the whole process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def fleet(*args: str, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=60,
                          check=False)


def test_init_writes_a_project_that_validates_and_never_overwrites(tmp_path: Path) -> None:
    made = fleet("init", str(tmp_path / "app"))
    assert made.returncode == 0, made.stderr
    assert "wrote" in made.stdout
    valid = fleet("validate", str(tmp_path / "app" / "playbook.yml"))
    assert valid.returncode == 0 and "valid: project 'myapp'" in valid.stdout, valid.stderr
    (tmp_path / "app" / "playbook.yml").write_text("# mine\n")
    again = fleet("init", str(tmp_path / "app"))
    assert again.returncode == 1 and "already exist" in again.stderr
    assert (tmp_path / "app" / "playbook.yml").read_text() == "# mine\n"
    assert fleet("init", "--force", str(tmp_path / "app")).returncode == 0
    assert "project: myapp" in (tmp_path / "app" / "playbook.yml").read_text()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    script = fleet("completion", shell)
    assert script.returncode == 0 and "_FLEET_COMPLETE" in script.stdout


def test_completion_completes_commands_and_options() -> None:
    commands = fleet(env={"_FLEET_COMPLETE": "bash_complete", "COMP_WORDS": "fleet lo",
                          "COMP_CWORD": "1"})
    assert commands.stdout.split() == ["plain,lock", "plain,logs"]
    options = fleet(env={"_FLEET_COMPLETE": "bash_complete",
                         "COMP_WORDS": "fleet logs web p.yml --fo", "COMP_CWORD": "4"})
    assert "plain,--follow" in options.stdout.split()
