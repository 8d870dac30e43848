"""CLI rules of the commands that change hosts, checked before any host is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet.cli import cli
from fleet.cli.common import CONNECT_TIMEOUT, FORKS
from fleet.cli.session import warn_unkeyed_secrets
from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import desired_state


def project(tmp_path: Path) -> Path:
    # Port 1 on loopback: if anything tried to connect, it would fail at once (and stay local).
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 127.0.0.1, port: 1}\n")
    playbook = tmp_path / "pb.yml"
    playbook.write_text("project: p\ninventory: inv.yml\nservices:\n  web: {image: busybox}\n")
    return playbook


def test_apply_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["apply", str(project(tmp_path))])
    assert result.exit_code == 1
    assert "pass --yes" in result.output
    assert "connect" not in result.output.lower()


def test_rollback_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["rollback", "--service", "web", str(project(tmp_path))])
    assert result.exit_code == 1 and "pass --yes" in result.output


def test_rollback_of_an_unknown_service_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["rollback", "--service", "nope", "--yes",
                                      str(project(tmp_path))])
    assert result.exit_code == 2 and "no service 'nope'" in result.output


def test_bad_lock_wait_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["apply", "--yes", "--lock-wait", "soon",
                                      str(project(tmp_path))])
    assert result.exit_code == 2 and "bad duration" in result.output


def test_invalid_playbook_touches_no_host(tmp_path: Path) -> None:
    playbook = project(tmp_path)
    playbook.write_text(playbook.read_text().replace("{image: busybox}",
                                                     "{image: busybox, replicas: many}"))
    result = CliRunner().invoke(cli, ["apply", "--yes", str(playbook)])
    assert result.exit_code == 1
    assert "services.web.replicas" in result.output and "nothing was changed" in result.output


def test_no_command_calls_a_host_in_sync_that_it_did_not_observe(tmp_path: Path) -> None:
    playbook = str(project(tmp_path))
    for command in (["plan"], ["apply", "--yes"], ["check"]):
        result = CliRunner().invoke(cli, [*command, "--connect-timeout", "2", playbook])
        assert result.exit_code == 1, (command, result.output)
        assert "in sync" not in result.output.replace("known to be in sync", ""), result.output
        assert "h1: unreachable" in result.output
    planned = CliRunner().invoke(cli, ["plan", playbook])
    assert "No host could be checked (1 unreachable)" in planned.output


def test_unkeyed_secret_digests_are_noted_once(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 198.18.9.1}\n")
    (tmp_path / "pb.yml").write_text(
        "project: p\ninventory: inv.yml\nservices:\n"
        "  web: {image: busybox, environment: {T: \"{{ secret('T') }}\"}}\n")
    files = ProjectFiles([str(tmp_path / "pb.yml")])
    unkeyed = desired_state(read_project(files, environ={"T": "v"}))
    keyed = desired_state(read_project(files, environ={"T": "v", "FLEET_SECRET_KEY": "k"}))
    warn_unkeyed_secrets(unkeyed)
    warn_unkeyed_secrets(keyed)
    assert capsys.readouterr().err.count("FLEET_SECRET_KEY is not set") == 1


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "3601", "soon", "1e400"])
def test_connect_timeout_must_be_a_finite_positive_number(tmp_path: Path, value: str) -> None:
    for command in (["plan"], ["apply", "--yes"], ["status"], ["rollback", "--service", "web",
                                                               "--yes"]):
        result = CliRunner().invoke(cli, [*command, f"--connect-timeout={value}",
                                          str(project(tmp_path))])
        assert result.exit_code == 2, (command, result.output)
        assert "Invalid value for '--connect-timeout'" in result.output
        assert "is not a number of seconds above 0 and at most 3600" in result.output
        assert "Traceback" not in result.output and "unreachable" not in result.output


@pytest.mark.parametrize("value", ["0", "-3", "1001", "many", "1.5"])
def test_forks_must_be_a_count_from_1(tmp_path: Path, value: str) -> None:
    result = CliRunner().invoke(cli, ["plan", f"--forks={value}", str(project(tmp_path))])
    assert result.exit_code == 2 and "Invalid value for '--forks'" in result.output
    assert "unreachable" not in result.output


def test_connect_timeout_and_forks_types_accept_good_values() -> None:
    assert CONNECT_TIMEOUT.convert("2.5", None, None) == 2.5
    assert CONNECT_TIMEOUT.convert(3600, None, None) == 3600.0
    assert FORKS.convert("1", None, None) == 1 and FORKS.convert("1000", None, None) == 1000


def test_a_limit_that_matches_no_host_is_not_in_sync(tmp_path: Path) -> None:
    playbook = str(project(tmp_path))
    for command, words in ((["check"], "no host is targeted"),
                           (["plan"], "No host is targeted: nothing was planned.")):
        result = CliRunner().invoke(cli, [*command, "--limit", "typo*", playbook])
        assert result.exit_code == 1, (command, result.output)
        assert words in result.output and "matches no host" in result.output
    checked = CliRunner().invoke(cli, ["check", "--json", "--limit", "typo*", playbook])
    assert '"in_sync": false' in checked.output
