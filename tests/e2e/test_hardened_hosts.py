"""Hardened sshd on lab hosts: forwarding refused (AllowTcpForwarding no, DisableForwarding
yes), and no SFTP subsystem. Three hosts of the lab get those sshd options for this module
and their own back afterwards.

fleet reaches dockerd there through `docker system dial-stdio`; probes, which need a
direct-tcpip channel, are made by the host's own tools instead; without SFTP, check and status
work and the commands that need the journal or the lock say what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab, lab_restart_sshd

PROJECT = "e2ehard"
HARDENING: list[dict[str, str | None]] = [
    {"AllowTcpForwarding": "no"},  # OpenSSH 9.2 refuses docker.sock forwarding with it too
    {"DisableForwarding": "yes"},
    {"Subsystem": None},
]


def web(registry: str, **more: Any) -> dict[str, Any]:
    return {"image": f"{registry}/demo/web:v1", "ports": ["8080:8080"],
            "update": {"monitor": "1s", "timeout": "20s"}, **more}


@pytest.fixture(scope="module")
def hardened(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Names of the hosts hardened as in HARDENING, in that order."""
    if len(lab.hosts) < len(HARDENING):
        pytest.skip(f"needs a lab of {len(HARDENING)} hosts")
    names = [host.name for host in lab.hosts[:len(HARDENING)]]
    base = tmp_path_factory.mktemp("hardened")
    try:
        for name, options in zip(names, HARDENING, strict=True):
            lab_restart_sshd(lab.dir, name, options)
        yield names
    finally:
        for name in names:
            lab_restart_sshd(lab.dir, name, {})
        empty = write_playbook(base / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", "--limit", ",".join(names), str(empty))


def playbook(lab: Lab, tmp_path: Path, **services: dict[str, Any]) -> str:
    return str(write_playbook(tmp_path / "hard.yml", PROJECT, lab.inventory_path, services))


def test_the_hosts_really_refuse_forwarding(lab: Lab, hardened: list[str]) -> None:
    async def main() -> None:
        for name in hardened[:2]:
            async with asyncssh.connect(lab.host(name).address, username="root",
                                        client_keys=[str(lab.ssh_key)],
                                        known_hosts=str(lab.known_hosts)) as ssh:
                with pytest.raises(asyncssh.ChannelOpenError):
                    await ssh.open_unix_connection("/var/run/docker.sock")
                with pytest.raises(asyncssh.ChannelOpenError) as tcp:
                    await ssh.open_connection("127.0.0.1", 8080)
                assert tcp.value.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED

    asyncio.run(main())


def test_apply_and_check_work_through_dial_stdio(lab: Lab, hardened: list[str],
                                                 tmp_path: Path) -> None:
    limit = ",".join(hardened[:2])
    book = playbook(lab, tmp_path, web=web(lab.registry))
    result = fleet_json("apply", "--yes", "--limit", limit, book, check_rc=0)
    assert result["converged"] is True
    for name in hardened[:2]:
        assert docker(lab, name, "ps", "--format", "{{.Names}}").split() == [f"{PROJECT}-web-1"]
    assert fleet_json("check", "--limit", limit, book, check_rc=0)["in_sync"] is True
    assert fleet_json("plan", "--limit", limit, book, check_rc=0)["changes"] is False
    fleet("status", "--limit", limit, book, check_rc=0)
    fleet("history", "--limit", limit, book, check_rc=0)


def test_a_probe_where_tcp_forwarding_is_refused_is_made_by_the_host(
        lab: Lab, hardened: list[str], tmp_path: Path) -> None:
    """sshd refuses the direct-tcpip channel; the host's own curl (or bash, for TCP) makes the
    probe, from its loopback as always."""
    def probed(version: str, probe: dict[str, Any]) -> dict[str, Any]:
        return web(lab.registry, ports=[], environment={"VERSION": version},
                   update={"monitor": "1s", "timeout": "20s", "probe": probe})

    both = ",".join(hardened[:2])  # AllowTcpForwarding no, DisableForwarding yes
    book = playbook(lab, tmp_path, web=web(lab.registry),
                    probed=probed("1", {"http": "http://127.0.0.1:8080/health"}))
    fleet_json("apply", "--yes", "--limit", both, book, check_rc=0)
    book = playbook(lab, tmp_path, web=web(lab.registry), probed=probed("2", {"tcp": 8080}))
    fleet_json("apply", "--yes", "--limit", both, book, check_rc=0)
    book = playbook(lab, tmp_path, web=web(lab.registry),
                    probed=probed("3", {"tcp": 9}))  # nothing listens there
    result = fleet_json("apply", "--yes", "--limit", both, book, check_rc=1)
    errors = [h["error"] for h in result["hosts"] if not h["ok"]]
    assert errors and all("run by the host: its sshd refuses TCP forwarding" in error
                          for error in errors), result


def test_without_sftp_check_and_status_work_and_the_rest_says_why_not(
        lab: Lab, hardened: list[str], tmp_path: Path) -> None:
    host = hardened[2]
    book = playbook(lab, tmp_path, web=web(lab.registry))
    check = fleet_json("check", "--limit", host, book, check_rc=2)  # web is missing there
    assert check["unreachable"] == [] and check["hosts_checked"] == 1
    fleet("status", "--limit", host, book, check_rc=0)
    advice = (f"sshd on {host} offers no SFTP subsystem, which fleet needs for the project's "
              "journal and lock")
    for command in (["plan"], ["apply", "--yes"], ["history"], ["lock", "status"]):
        result = fleet(*command, "--limit", host, book)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        output = result.stdout + result.stderr
        assert advice in output and "Subsystem sftp internal-sftp" in output, (command, output)
    assert docker(lab, host, "ps", "-aq").split() == []  # apply changed nothing
