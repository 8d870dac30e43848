"""Hardened hosts against a real asyncssh server on loopback: sshd refusing forwarding
(AllowTcpForwarding no, DisableForwarding yes, AllowStreamLocalForwarding no) and sshd
without an SFTP subsystem.

The server refuses the channels as OpenSSH 9.2 does (a direct-streamlocal channel with
"open failed", a direct-tcpip one as administratively prohibited) and runs one command,
`docker system dial-stdio`, by relaying the session to a fake dockerd's unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from test_transport_over_ssh import FakeDockerd

from fleet.config.inventory import Host
from fleet.core.journal import JournalEntry
from fleet.docker.client import DockerClient
from fleet.errors import DockerError, HostStateError
from fleet.hoststate import HostLock, Journal, new_lease
from fleet.transport import HostConnection

LOOPBACK = "127.0.0.1"
SETTINGS = "AllowStreamLocalForwarding no, AllowTcpForwarding no or DisableForwarding yes"
NO_SFTP = ("sshd on hardened offers no SFTP subsystem, which fleet needs for the project's "
           "journal and lock and the files it delivers (hardened sshd_config files often "
           "drop it); add `Subsystem sftp internal-sftp` to its sshd_config and reload sshd "
           "(`fleet check` and `fleet status` work without it, unless the project "
           "delivers files next to its compose file)")


@dataclass
class Sshd:
    """What the fake sshd allows, and what it was asked."""

    dockerd_socket: Path
    streamlocal_refusal: int | None = asyncssh.OPEN_CONNECT_FAILED  # None: allowed
    docker_cli: bool = True
    streamlocal_requests: int = 0
    commands: list[str] = field(default_factory=list)

    def server(self) -> asyncssh.SSHServer:
        sshd = self

        class Hardened(asyncssh.SSHServer):
            def unix_connection_requested(self, dest_path: str) -> bool:
                sshd.streamlocal_requests += 1
                if sshd.streamlocal_refusal is not None:
                    raise asyncssh.ChannelOpenError(sshd.streamlocal_refusal, "open failed")
                return True

            def connection_requested(self, *args: Any) -> bool:
                raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                                "open failed")

        return Hardened()

    async def session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command or ""
        self.commands.append(command)
        if command != "docker system dial-stdio" or not self.docker_cli:
            process.stderr.write(f"bash: line 1: {command.split()[0]}: command not found\n"
                                 .encode())
            process.exit(127)
            return
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.dockerd_socket))
        except OSError:
            process.stderr.write(b"Cannot connect to the Docker daemon at "
                                 b"unix:///var/run/docker.sock. Is the docker daemon running?\n")
            process.exit(1)
            return

        async def up() -> None:
            while data := await process.stdin.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()

        async def down() -> None:
            while data := await reader.read(65536):
                process.stdout.write(data)
                await process.stdout.drain()

        with contextlib.suppress(OSError, asyncssh.Error):
            await asyncio.gather(up(), down())
        writer.close()
        process.exit(0)


@contextlib.asynccontextmanager
async def hardened_host(sshd: Sshd, **target: Any) -> AsyncIterator[HostConnection]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        sshd.server, LOOPBACK, 0, server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_key.export_public_key().decode()),
        process_factory=sshd.session, encoding=None, allow_pty=False)  # and no sftp_factory
    port = server.sockets[0].getsockname()[1]
    ssh = await asyncssh.connect(LOOPBACK, port, username="fleet", client_keys=[client_key],
                                 known_hosts=None)
    connection = HostConnection(Host(name="hardened", address=LOOPBACK, port=port, **target),
                                ssh)
    try:
        yield connection
    finally:
        await connection.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def fake(tmp_path: Path) -> Any:
    fake = FakeDockerd(tmp_path / "docker.sock")
    server = fake.serve()
    yield fake
    server.shutdown()
    server.server_close()


# -- the Docker API through `docker system dial-stdio` -------------------------------------------


@pytest.mark.parametrize("refusal", [asyncssh.OPEN_CONNECT_FAILED,  # OpenSSH 9.2
                                     asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED])
def test_refused_socket_forwarding_falls_back_to_dial_stdio(fake: FakeDockerd,
                                                            refusal: int) -> None:
    sshd = Sshd(fake.socket_path, streamlocal_refusal=refusal)

    async def main() -> None:
        async with hardened_host(sshd) as host:
            docker = DockerClient.over_ssh(host)
            assert await docker.api_version() == "1.41"
            answers = await asyncio.gather(*(docker.list_containers() for _ in range(30)))
            assert answers == [[]] * 30
            await docker.aclose()
            tried = sshd.streamlocal_requests
            # The connection remembers: another client goes straight to dial-stdio.
            again = DockerClient.over_ssh(host)
            assert await again.list_containers() == []
            await again.aclose()
            assert sshd.streamlocal_requests == tried

    asyncio.run(main())
    assert set(sshd.commands) == {"docker system dial-stdio"}  # constant: no inventory data
    assert 1 < fake.max_open_connections <= 8  # one dial-stdio session per HTTP connection


def test_streamlocal_is_used_where_allowed(fake: FakeDockerd) -> None:
    sshd = Sshd(fake.socket_path, streamlocal_refusal=None)

    async def main() -> None:
        async with hardened_host(sshd, docker_socket=str(fake.socket_path)) as host:
            assert await DockerClient.over_ssh(host).list_containers() == []

    asyncio.run(main())
    assert sshd.commands == []


def test_no_docker_cli_for_the_fallback_names_the_sshd_settings(fake: FakeDockerd) -> None:
    sshd = Sshd(fake.socket_path, docker_cli=False)

    async def main() -> None:
        async with hardened_host(sshd) as host:
            with pytest.raises(DockerError) as caught:
                await DockerClient.over_ssh(host).list_containers()
            message = str(caught.value)
            assert ("sshd did not open a channel to /var/run/docker.sock (open failed: dockerd "
                    f"is not running there, or sshd_config refuses forwarding with {SETTINGS})"
                    ", and `docker system dial-stdio` exited 127: bash: line 1: docker: "
                    "command not found") in message, message

    asyncio.run(main())


def test_no_daemon_behind_the_fallback_says_so(tmp_path: Path) -> None:
    sshd = Sshd(tmp_path / "nothing.sock")

    async def main() -> None:
        async with hardened_host(sshd) as host:
            with pytest.raises(DockerError) as caught:
                await DockerClient.over_ssh(host).api_version()
            assert ("`docker system dial-stdio` exited 1: Cannot connect to the Docker daemon "
                    "at unix:///var/run/docker.sock") in str(caught.value)

    asyncio.run(main())


def test_no_fallback_for_a_socket_other_than_the_default(fake: FakeDockerd) -> None:
    sshd = Sshd(fake.socket_path)

    async def main() -> None:
        async with hardened_host(sshd, docker_socket="/srv/docker.sock") as host:
            with pytest.raises(DockerError) as caught:
                await DockerClient.over_ssh(host).api_version()
            message = str(caught.value)
            assert f"sshd_config refuses forwarding with {SETTINGS}" in message
            assert "reaches only the default /var/run/docker.sock" in message

    asyncio.run(main())
    assert sshd.commands == []


# -- no SFTP subsystem: the journal and the lock say what is missing -----------------------------


def test_no_sftp_subsystem_is_a_clear_error_and_docker_still_works(fake: FakeDockerd) -> None:
    sshd = Sshd(fake.socket_path, streamlocal_refusal=None)
    entry = JournalEntry(command="apply", service="web", replica=1, revision=1, image="web:1",
                         digest="sha256:" + "a" * 64, spec={"image": "web:1"},
                         spec_hash="h" * 64, outcome="ok")

    async def main() -> None:
        async with hardened_host(sshd, docker_socket=str(fake.socket_path)) as host:
            with pytest.raises(HostStateError) as read:
                await Journal(host, "shop").read()
            assert str(read.value) == (f"hardened: cannot read .fleet/shop/journal.jsonl: "
                                       f"{NO_SFTP}")
            with pytest.raises(HostStateError) as append:
                await Journal(host, "shop").append([entry])
            assert str(append.value).endswith(NO_SFTP)
            with pytest.raises(HostStateError) as lock:
                await HostLock(host, "shop").acquire(new_lease("apply"))
            assert str(lock.value).endswith(NO_SFTP)
            # what check and status need still works
            assert await DockerClient.over_ssh(host).list_containers() == []

    asyncio.run(main())
